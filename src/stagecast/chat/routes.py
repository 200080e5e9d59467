"""HTTP routes of chat: history and the short-lived socket token."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from stagecast.accounts.deps import SessionPrincipal
from stagecast.accounts.security import CHAT_TOKEN_TTL
from stagecast.chat import service as chat
from stagecast.chat.schemas import ChatMessageOut, ChatToken
from stagecast.deps import PageDep, ReadSessionDep, RuntimeDep
from stagecast.errors import problem_responses
from stagecast.pagination import Page, make_page
from stagecast.streams import service as streams

router = APIRouter(tags=["chat"])


@router.get("/streams/{stream_id}/chat", responses=problem_responses(404, 422))
async def chat_history(
    stream_id: uuid.UUID, session: ReadSessionDep, page: PageDep
) -> Page[ChatMessageOut]:
    """A stream's chat, newest first (deleted, cleared and purged messages left out)."""
    async with session.begin():
        await streams.get_stream(session, stream_id)
        rows, cursor = await chat.history(session, stream_id=stream_id, params=page)
    return make_page(rows, cursor)


@router.get("/chat/token", responses=problem_responses(401, 403))
async def chat_token(
    principal: SessionPrincipal, runtime: RuntimeDep, response: Response
) -> ChatToken:
    """A token for the Socket.IO handshake (`auth: {token}`), valid five minutes."""
    token, _ = runtime.tokens.issue_chat_token(
        user_id=principal.user.id, session_id=principal.require_session(), role=principal.user.role
    )
    response.headers["Cache-Control"] = "no-store"
    return ChatToken(token=token, expires_in=int(CHAT_TOKEN_TTL.total_seconds()))
