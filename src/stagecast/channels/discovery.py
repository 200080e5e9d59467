"""Finding what to watch: browse, search, recommendations, categories, tag suggestions."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast import search
from stagecast.accounts.models import User, UserStatus
from stagecast.accounts.schemas import UserPublic
from stagecast.channels import service as channels
from stagecast.channels.models import Category, Channel, ChannelFollow
from stagecast.channels.schemas import CategoryCreate, CategoryOut
from stagecast.errors import Conflict
from stagecast.pagination import PageInfo, PageParams, SortKey, paginate, paginate_list
from stagecast.streams import service as streams
from stagecast.streams.models import Stream, StreamStatus, StreamTag, Tag

BrowseSort = Literal["viewers", "newest"]
RECOMMENDED_LIMIT = 100


async def browse(
    session: AsyncSession,
    *,
    params: PageParams,
    category: str | None,
    tags: list[str],
    language: str | None,
    sort: BrowseSort,
) -> tuple[list[Stream], PageInfo]:
    """Live streams, filtered, most watched or newest first (keyset paginated)."""
    query = select(Stream).where(Stream.status == StreamStatus.LIVE.value)
    if category:
        query = query.where(Stream.category == category)
    if language:
        query = query.where(Stream.language == language)
    for tag in tags:  # every tag must match
        query = query.where(Stream.id.in_(select(StreamTag.stream_id).where(StreamTag.tag == tag)))
    if sort == "viewers":
        keys = [
            SortKey(Stream.viewer_count, lambda s: s.viewer_count),
            SortKey(Stream.id, lambda s: s.id),
        ]
    else:
        keys = [
            SortKey(Stream.started_at, lambda s: s.started_at),
            SortKey(Stream.id, lambda s: s.id),
        ]
    return await paginate(session, query, keys=keys, params=params)


async def search_everything(
    session: AsyncSession, *, query: str, kinds: tuple[str, ...], params: PageParams
) -> tuple[list[dict[str, Any]], PageInfo]:
    """Ranked results of every kind, each with what the API shows for it."""
    hits = await search.search(session, query=query, kinds=kinds)
    page, info = paginate_list(hits, params)
    by_kind: dict[str, list[uuid.UUID]] = {}
    for hit in page:
        by_kind.setdefault(hit.kind, []).append(hit.ref_id)
    shown: dict[tuple[str, uuid.UUID], Any] = {}
    if ids := by_kind.get("stream"):
        found = list(await session.scalars(select(Stream).where(Stream.id.in_(ids))))
        for out in await streams.present_streams(session, found):
            shown["stream", out.id] = out
    if ids := by_kind.get("channel"):
        found_channels = list(await session.scalars(select(Channel).where(Channel.id.in_(ids))))
        for channel_out in await channels.present_channels(session, found_channels):
            shown["channel", channel_out.id] = channel_out
    if ids := by_kind.get("user"):
        users = await session.scalars(
            select(User).where(User.id.in_(ids), User.status == UserStatus.ACTIVE.value)
        )
        for user in users:
            shown["user", user.id] = UserPublic.model_validate(user)
    results = [
        {"type": hit.kind, "score": hit.score, hit.kind: shown[hit.kind, hit.ref_id]}
        for hit in page
        if (hit.kind, hit.ref_id) in shown
    ]
    return results, info


async def recommended(session: AsyncSession, *, viewer: User | None) -> list[Stream]:
    """Followed channels that are live, then live streams in the viewer's categories, then
    the most watched; anonymous viewers get the most watched."""
    picked: list[Stream] = []
    seen: set[uuid.UUID] = set()

    def take(found: list[Stream]) -> None:
        for stream in found:
            if stream.id not in seen and len(picked) < RECOMMENDED_LIMIT:
                picked.append(stream)
                seen.add(stream.id)

    live = select(Stream).where(Stream.status == StreamStatus.LIVE.value)
    by_viewers = (Stream.viewer_count.desc(), Stream.id.desc())
    if viewer is not None:
        followed = select(ChannelFollow.channel_id).where(ChannelFollow.user_id == viewer.id)
        take(
            list(
                await session.scalars(
                    live.where(Stream.channel_id.in_(followed))
                    .order_by(*by_viewers)
                    .limit(RECOMMENDED_LIMIT)
                )
            )
        )
        # The viewer's categories: those the followed channels stream in.
        categories = (
            select(Stream.category)
            .where(Stream.channel_id.in_(followed), Stream.category.is_not(None))
            .distinct()
        )
        take(
            list(
                await session.scalars(
                    live.where(Stream.category.in_(categories))
                    .order_by(*by_viewers)
                    .limit(RECOMMENDED_LIMIT)
                )
            )
        )
    take(list(await session.scalars(live.order_by(*by_viewers).limit(RECOMMENDED_LIMIT * 2))))
    return picked


async def list_categories(session: AsyncSession) -> list[CategoryOut]:
    """Every category with its live streams and viewers, busiest first."""
    live = (
        select(
            Stream.category.label("slug"),
            func.count().label("live_streams"),
            func.coalesce(func.sum(Stream.viewer_count), 0).label("viewers"),
        )
        .where(Stream.status == StreamStatus.LIVE.value, Stream.category.is_not(None))
        .group_by(Stream.category)
        .subquery()
    )
    rows = await session.execute(
        select(Category, live.c.live_streams, live.c.viewers).outerjoin(
            live, live.c.slug == Category.slug
        )
    )
    categories = [
        CategoryOut(
            slug=category.slug,
            name=category.name,
            live_streams=int(count or 0),
            viewers=int(viewers or 0),
        )
        for category, count, viewers in rows.all()
    ]
    categories.sort(key=lambda c: (-c.viewers, -c.live_streams, c.name.lower()))
    return categories


async def create_category(session: AsyncSession, *, data: CategoryCreate) -> Category:
    if await session.scalar(select(Category.id).where(Category.slug == data.slug)):
        raise Conflict("A category with this slug exists")
    category = Category(slug=data.slug, name=data.name)
    session.add(category)
    await session.flush()
    return category


async def suggest_tags(session: AsyncSession, *, prefix: str, limit: int) -> list[str]:
    """Tags starting with a prefix, most used first."""
    prefix = prefix.strip().lower().replace(" ", "-")
    if not prefix:
        return []
    rows = await session.scalars(
        select(Tag.name)
        .where(Tag.name.startswith(prefix, autoescape=True), Tag.use_count > 0)
        .order_by(Tag.use_count.desc(), Tag.name)
        .limit(limit)
    )
    return list(rows)
