"""HTTP routes of recordings: one by id, a channel's list."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from stagecast.channels import service as channels
from stagecast.deps import PageDep, ReadSessionDep
from stagecast.errors import problem_responses
from stagecast.pagination import Page, make_page
from stagecast.vods import service as vods
from stagecast.vods.schemas import VodOut

router = APIRouter(tags=["vods"])


@router.get("/vods/{vod_id}", responses=problem_responses(404))
async def get_vod(vod_id: uuid.UUID, session: ReadSessionDep) -> VodOut:
    """A recording: its duration, size, renditions and where to play it."""
    async with session.begin():
        return vods.present_vod(await vods.get_vod(session, vod_id))


@router.get("/channels/{channel_ref}/vods", responses=problem_responses(404, 422))
async def list_channel_vods(
    channel_ref: str, session: ReadSessionDep, page: PageDep
) -> Page[VodOut]:
    """A channel's recordings, newest first (by slug or id)."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_ref)
        rows, cursor = await vods.list_channel_vods(session, channel=channel, params=page)
        return make_page([vods.present_vod(v) for v in rows], cursor)
