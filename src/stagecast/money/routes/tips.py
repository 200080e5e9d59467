"""Tips, donations and gifts: tokens from a viewer to a creator."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from stagecast.accounts.deps import CurrentUser, OptionalUser
from stagecast.admin import flags
from stagecast.channels import service as channels
from stagecast.channels.models import Channel
from stagecast.deps import PageDep, ReadSessionDep, RuntimeDep, SessionDep
from stagecast.errors import ValidationFailed, problem_responses
from stagecast.money import service as money
from stagecast.money.routes.deps import MOVES, IdempotencyKey, move_once, tips_limit
from stagecast.money.schemas import ContributionOut, DonationIn, GiftIn, GiftOut, TipIn
from stagecast.pagination import Page, make_page, paginate_list
from stagecast.streams import service as streams

router = APIRouter(tags=["money"])


@router.post(
    "/streams/{stream_id}/tips", status_code=201, dependencies=[tips_limit], responses=MOVES
)
async def tip_stream(
    stream_id: uuid.UUID, body: TipIn, request: Request, user: CurrentUser, session: SessionDep,
    runtime: RuntimeDep, key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """Tip a live stream: `tip:received` reaches its room (and its chat) at once."""
    await flags.require(runtime, "tips")

    async def action() -> tuple[int, dict[str, Any]]:
        made = await money.tip_stream(
            session, runtime.settings.money, sender=user, stream_id=stream_id,
            tokens=body.tokens, message=body.message, is_private=body.is_private,
            kyc_settings=runtime.settings.kyc,
        )  # fmt: skip
        return 201, money.present_contribution(made, user, viewer_id=user.id).model_dump(
            mode="json"
        )

    return await move_once(request, session, user.id, key, body, action)


@router.get("/streams/{stream_id}/tips", responses=problem_responses(404, 422))
async def stream_tips(
    stream_id: uuid.UUID, session: ReadSessionDep, page: PageDep, viewer: OptionalUser
) -> Page[ContributionOut]:
    """A stream's tips and gifts, newest first; private ones without sender or message."""
    async with session.begin():
        await streams.get_stream(session, stream_id)  # an unknown stream is a 404, not no tips
        rows, cursor = await money.list_contributions(
            session, params=page, viewer_id=viewer.id if viewer else None, stream_id=stream_id
        )
    return make_page(rows, cursor)


@router.post("/donations", status_code=201, dependencies=[tips_limit], responses=MOVES)
async def donate(
    body: DonationIn, request: Request, user: CurrentUser, session: SessionDep, runtime: RuntimeDep,
    key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """Support a channel, live or not: `donation:received` reaches its room."""
    await flags.require(runtime, "tips")

    async def action() -> tuple[int, dict[str, Any]]:
        channel = await channels.get_channel(session, body.channel_id)
        made = await money.contribute(
            session, runtime.settings.money, kind="donation", sender=user, channel=channel,
            stream=None, tokens=body.tokens, message=body.message, is_private=body.is_private,
            kyc_settings=runtime.settings.kyc,
        )  # fmt: skip
        return 201, money.present_contribution(made, user, viewer_id=user.id).model_dump(
            mode="json"
        )

    return await move_once(request, session, user.id, key, body, action)


@router.get("/donations/me", responses=problem_responses(401, 422))
async def my_donations(
    user: CurrentUser, session: ReadSessionDep, page: PageDep
) -> Page[ContributionOut]:
    """Donations you made, newest first."""
    async with session.begin():
        rows, cursor = await money.list_contributions(
            session, params=page, viewer_id=user.id, from_user_id=user.id, kind="donation"
        )
    return make_page(rows, cursor)


@router.get("/gifts", responses=problem_responses(422))
async def gift_catalogue(page: PageDep) -> Page[GiftOut]:
    """What can be sent, and its price in tokens, cheapest first."""
    shown, info = paginate_list(money.gift_catalogue(), page)
    return make_page(shown, info)


@router.post("/gifts", status_code=201, dependencies=[tips_limit], responses=MOVES)
async def send_gift(
    body: GiftIn, request: Request, user: CurrentUser, session: SessionDep, runtime: RuntimeDep,
    key: IdempotencyKey = None,
) -> JSONResponse:  # fmt: skip
    """Send gifts to a stream (or a channel): `gift:sent` reaches the room."""
    await flags.require(runtime, "tips")

    async def action() -> tuple[int, dict[str, Any]]:
        gift = money.gift_named(body.gift)
        stream = None
        if body.stream_id is not None:
            stream = await money.live_stream(session, body.stream_id)
            channel = await session.get_one(Channel, stream.channel_id)
        elif body.channel_id is not None:
            channel = await channels.get_channel(session, body.channel_id)
        else:
            raise ValidationFailed("Name the stream (stream_id) or the channel (channel_id)")
        made = await money.contribute(
            session, runtime.settings.money, kind="gift", sender=user, channel=channel,
            stream=stream, tokens=gift.tokens * body.quantity, message=body.message,
            is_private=body.is_private, gift=gift, kyc_settings=runtime.settings.kyc,
        )  # fmt: skip
        return 201, money.present_contribution(made, user, viewer_id=user.id).model_dump(
            mode="json"
        )

    return await move_once(request, session, user.id, key, body, action)
