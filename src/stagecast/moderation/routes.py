"""HTTP routes of moderation: bans and timeouts, moderators."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from stagecast.accounts.deps import CurrentUser
from stagecast.channels import service as channels
from stagecast.deps import PageDep, SessionDep
from stagecast.errors import problem_responses
from stagecast.moderation import service as moderation
from stagecast.moderation.schemas import BanCreate, BanOut, ModeratorCreate, ModeratorOut
from stagecast.pagination import Page, make_page

router = APIRouter(prefix="/channels/{channel_id}", tags=["moderation"])


@router.post(
    "/bans",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 404, 422),
)
async def ban(channel_id: str, body: BanCreate, user: CurrentUser, session: SessionDep) -> BanOut:
    """Ban a user from the channel's chat, or time them out with `duration_seconds`."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        return await moderation.ban_user(
            session,
            actor=user,
            channel=channel,
            user_id=body.user_id,
            username=body.username,
            duration_seconds=body.duration_seconds,
            reason=body.reason,
        )


@router.delete(
    "/bans/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 409),
)
async def unban(
    channel_id: str, user_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> Response:
    """Lift a ban or timeout."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        await moderation.unban_user(session, actor=user, channel=channel, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/bans", responses=problem_responses(401, 403, 404))
async def list_bans(
    channel_id: str, user: CurrentUser, session: SessionDep, page: PageDep
) -> Page[BanOut]:
    """Active bans and timeouts (moderators)."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        rows, cursor = await moderation.list_bans(session, actor=user, channel=channel, params=page)
    return make_page(rows, cursor)


@router.get("/moderators", responses=problem_responses(404))
async def list_moderators(channel_id: str, session: SessionDep) -> dict[str, list[ModeratorOut]]:
    """The channel's moderators."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        return {"data": await moderation.list_moderators(session, channel=channel)}


@router.post("/moderators", responses=problem_responses(401, 403, 404, 422))
async def add_moderator(
    channel_id: str, body: ModeratorCreate, user: CurrentUser, session: SessionDep
) -> ModeratorOut:
    """Appoint a moderator (owner or admin); appointing twice changes nothing."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        return await moderation.add_moderator(
            session, actor=user, channel=channel, user_id=body.user_id, username=body.username
        )


@router.delete(
    "/moderators/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def remove_moderator(
    channel_id: str, user_id: uuid.UUID, user: CurrentUser, session: SessionDep
) -> Response:
    """Remove a moderator (owner or admin)."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        await moderation.remove_moderator(session, actor=user, channel=channel, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
