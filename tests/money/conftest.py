"""The money tests' fakes of the providers' APIs (tests/money/fakes.py), and providers that
talk to them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stagecast.money.providers import StripeConnectPayouts, StripeProvider
from tests.money.fakes import FakeApi, fake_hyperswitch_server, fake_stripe_server

API_KEY = "sk_test_51StagecastFakeKey"
WEBHOOK_SECRET = "whsec_test_stagecast"


@pytest.fixture
async def fake_stripe() -> AsyncIterator[FakeApi]:
    async with fake_stripe_server() as fake:
        yield fake


@pytest.fixture
async def fake_hyperswitch() -> AsyncIterator[FakeApi]:
    async with fake_hyperswitch_server() as fake:
        yield fake


@pytest.fixture
async def stripe_provider(fake_stripe: FakeApi) -> AsyncIterator[StripeProvider]:
    provider = StripeProvider(
        API_KEY, WEBHOOK_SECRET, api_base=fake_stripe.base_url, max_network_retries=0
    )
    yield provider
    await provider.aclose()


@pytest.fixture
async def connect_payouts(fake_stripe: FakeApi) -> AsyncIterator[StripeConnectPayouts]:
    payouts = StripeConnectPayouts(API_KEY, api_base=fake_stripe.base_url, max_network_retries=0)
    yield payouts
    await payouts.aclose()
