"""Remember which route answers a path, so that a request is not matched against every route.

FastAPI (0.165 here) matches an included router's routes one after another, each through
several scope bookkeeping calls, and it does so twice per level (once to find the router, once
to run it). With the API's ~210 routes in nested routers that cost ~1-3 ms of CPU a request
(measured, issue 14): `GET /wallet/balance`, late in the list, paid more for routing than for
its database work, and even `/healthz` walked every API route first.

What a candidate route answers depends only on the request's type, method and path (the routes
are fixed once the app is built). So each included router remembers, per (type, method, root
path, path), the position of the first candidate that matched fully, and next time asks that
candidate alone; a path no candidate matches at all is remembered as such. The candidate is
still asked (it fills the scope as before), so a wrong memo cannot route wrongly: it falls back
to the full walk. The memo is cleared when the router's routes change and when it holds
`MEMO_SIZE` paths (paths carry ids). Partial matches (405s) always take the full walk.

If the installed FastAPI has no `_IncludedRouter._match` of the expected shape, nothing is
installed and routing is FastAPI's own (tests/test_route_memo.py says so loudly).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import structlog
from starlette.routing import Match
from starlette.types import Scope

log = structlog.get_logger(__name__)

MEMO_SIZE = 8192
_NO_MATCH = -1
_INSTALLED = "_stagecast_route_memo"


def install() -> bool:
    """Wrap FastAPI's included-router matching with the memo (once per process)."""
    try:
        from fastapi.routing import _IncludedRouter  # noqa: PLC0415 - private, may be absent
    except ImportError:
        log.warning("route_memo_unavailable", reason="no fastapi.routing._IncludedRouter")
        return False
    original = getattr(_IncludedRouter, "_match", None)
    if getattr(original, _INSTALLED, False):
        return True
    if original is None or list(inspect.signature(original).parameters) != ["self", "scope"]:
        log.warning("route_memo_unavailable", reason="unexpected _IncludedRouter._match")
        return False

    def _match(self: Any, scope: Scope) -> tuple[Match, Scope, Any, Any]:
        candidates = self.effective_candidates()
        memo: dict[tuple[Any, ...], int] | None = self.__dict__.get("_stagecast_memo")
        if memo is None or self.__dict__.get("_stagecast_memo_of") is not candidates:
            memo = {}
            self.__dict__["_stagecast_memo"] = memo
            self.__dict__["_stagecast_memo_of"] = candidates  # rebuilt when routes change
        key = (scope["type"], scope.get("method"), scope.get("root_path", ""), scope["path"])
        known = memo.get(key)
        if known == _NO_MATCH:
            return Match.NONE, {}, None, None
        if known is not None:
            found = _ask(original, self, candidates[known], scope)
            if found[0] == Match.FULL:
                return found
        result: tuple[Match, Scope, Any, Any] = original(self, scope)
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        if result[0] == Match.NONE:
            memo[key] = _NO_MATCH
        elif result[0] == Match.FULL:
            position = _position(candidates, result)
            if position is not None:
                memo[key] = position
        return result

    setattr(_match, _INSTALLED, True)
    _IncludedRouter._match = _match  # type: ignore[method-assign]
    return True


def _ask(
    walk: Callable[[Any, Scope], tuple[Match, Scope, Any, Any]],
    router: Any,
    candidate: Any,
    scope: Scope,
) -> tuple[Match, Scope, Any, Any]:
    """One candidate's answer, exactly as FastAPI's walk would have produced it: the walk is
    run over that candidate alone (synchronous, so no other request sees the short list;
    the router's candidates are current: the caller just asked for them)."""
    only = [candidate]
    router.__dict__["effective_candidates"] = lambda: only  # shadows the method, for one call
    try:
        return walk(router, scope)
    finally:
        del router.__dict__["effective_candidates"]


def _position(candidates: list[Any], result: tuple[Match, Scope, Any, Any]) -> int | None:
    _, _, route, context = result
    for index, candidate in enumerate(candidates):
        if candidate is route or candidate is context:
            return index
    return None
