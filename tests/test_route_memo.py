"""The route memo (stagecast/route_memo.py) picks exactly the routes FastAPI's own walk picks."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from starlette.routing import Match

from stagecast import route_memo

SAMPLE_ID = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


def _resolve(app: FastAPI, method: str, path: str) -> tuple[Any, ...]:
    """The route a request is given, and its path parameters, through each included router's
    `_match` (FastAPI's walk, with the memo in front of it) down to the route itself."""
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [],
        "query_string": b"",
    }
    for top in app.router.routes:
        router: Any = top
        while hasattr(router, "_match"):
            match, child, route, _context = router._match(scope)
            if match != Match.FULL:
                break
            if not hasattr(route, "_match"):
                return ("full", route, dict(child.get("path_params", {})))
            router = route
        else:
            match, child = top.matches(scope)
            if match == Match.FULL:
                return ("full", top, dict(child.get("path_params", {})))
    return ("none",)


def _samples(app: FastAPI) -> list[tuple[str, str]]:
    """One concrete path per operation of the OpenAPI document, its parameters filled in."""
    samples = []
    for template, operations in app.openapi()["paths"].items():
        path = re.sub(r"\{[^}]+\}", SAMPLE_ID, template)
        samples.extend((method.upper(), path) for method in operations if method != "parameters")
    return samples


def test_the_memo_is_installed_on_this_fastapi(app: FastAPI) -> None:
    # If FastAPI's private matching changes shape, install() refuses and every request
    # walks the routes again (~1-3 ms each): this test says so instead of a slow API.
    assert route_memo.install() is True


def test_memoised_routing_chooses_what_the_walk_chooses(app: FastAPI) -> None:
    samples = [
        *_samples(app),
        ("GET", "/api/v1/users/me"),
        ("GET", "/api/v1/wallet/balance"),
        ("GET", "/healthz"),
        ("GET", "/no/such/page/at/all"),
        ("DELETE", "/healthz"),  # a partial match: the walk, every time
    ]
    assert len(samples) > 150
    first = {sample: _resolve(app, *sample) for sample in samples}  # walked, then memoised
    again = {sample: _resolve(app, *sample) for sample in samples}  # from the memo
    assert again == first
    routed = [found[1] for found in first.values() if found[0] == "full"]
    assert len({id(route) for route in routed}) > 150  # real, different routes were compared
    # The memo was used: a memoised router answers its path without walking.
    assert any(getattr(route, "__dict__", {}).get("_stagecast_memo") for route in app.router.routes)
