"""HTTP routes of channels, follows, stats and discovery."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status

from stagecast.accounts import service as accounts
from stagecast.accounts.deps import AdminUser, CurrentUser, OptionalUser
from stagecast.channels import discovery
from stagecast.channels import service as channels
from stagecast.channels.schemas import (
    CategoryCreate,
    CategoryOut,
    ChannelAnalytics,
    ChannelCreate,
    ChannelOut,
    ChannelSettings,
    ChannelSettingsUpdate,
    ChannelUpdate,
    FollowedChannel,
    Follower,
    FollowState,
    TagSuggestions,
    UserStats,
)
from stagecast.deps import PageDep, ReadSessionDep, RuntimeDep, SessionDep
from stagecast.errors import problem_responses
from stagecast.pagination import Page, make_page, paginate_list
from stagecast.streams import service as streams
from stagecast.streams.models import StreamStatus
from stagecast.streams.schemas import StreamOut

router = APIRouter(prefix="/channels", tags=["channels"])
social_router = APIRouter(prefix="/users", tags=["follows"])
discovery_router = APIRouter(tags=["discovery"])

_WRITE = problem_responses(401, 403, 404, 409, 422)


@router.post("", status_code=status.HTTP_201_CREATED, responses=problem_responses(401, 409, 422))
async def create_channel(body: ChannelCreate, user: CurrentUser, session: SessionDep) -> ChannelOut:
    """Create your channel (one per account); you become a creator."""
    async with session.begin():
        channel = await channels.create_channel(session, owner=user, data=body)
        return await channels.present_channel(session, channel)


@router.get("/{channel_ref}", responses=problem_responses(404))
async def get_channel(channel_ref: str, session: ReadSessionDep) -> ChannelOut:
    """A channel by slug or id."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_ref)
        return await channels.present_channel(session, channel)


@router.patch("/{channel_id}", responses=_WRITE)
async def update_channel(
    channel_id: str, body: ChannelUpdate, user: CurrentUser, session: SessionDep
) -> ChannelOut:
    """Change a channel (owner or admin)."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        channel = await channels.update_channel(session, actor=user, channel=channel, data=body)
        return await channels.present_channel(session, channel)


@router.delete(
    "/{channel_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404),
)
async def delete_channel(channel_id: str, user: CurrentUser, session: SessionDep) -> Response:
    """Delete a channel with its streams, key and follows (owner or admin)."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        await channels.delete_channel(session, actor=user, channel=channel)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{channel_id}/settings", responses=problem_responses(401, 403, 404))
async def get_settings(channel_id: str, user: CurrentUser, session: SessionDep) -> ChannelSettings:
    """A channel's settings (owner or admin)."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        channels.ensure_owner(user, channel)
        return channels.settings_of(channel)


@router.patch("/{channel_id}/settings", responses=_WRITE)
async def update_settings(
    channel_id: str, body: ChannelSettingsUpdate, user: CurrentUser, session: SessionDep
) -> ChannelSettings:
    """Change some settings; the others (and unsent chat settings) keep their values."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        return await channels.update_settings(session, actor=user, channel=channel, data=body)


@router.get("/{channel_id}/streams", responses=problem_responses(404))
async def channel_streams(
    channel_id: str,
    session: ReadSessionDep,
    page: PageDep,
    status_: Annotated[StreamStatus | None, Query(alias="status")] = None,
) -> Page[StreamOut]:
    """A channel's streams, newest first."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        rows, cursor = await streams.list_channel_streams(
            session, channel=channel, params=page, status=status_
        )
        return make_page(await streams.present_streams(session, rows), cursor)


@router.get("/{channel_id}/followers", responses=problem_responses(404))
async def channel_followers(
    channel_id: str, session: ReadSessionDep, page: PageDep
) -> Page[Follower]:
    """Who follows a channel, newest first."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        rows, cursor = await channels.list_channel_followers(session, channel=channel, params=page)
    return make_page(rows, cursor)


@router.get("/{channel_id}/follow", responses=problem_responses(404))
async def channel_follow_state(
    channel_id: str, viewer: OptionalUser, session: SessionDep
) -> FollowState:
    """Whether you follow a channel, and its follower count."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        return await channels.channel_follow_state(session, user=viewer, channel=channel)


@router.post("/{channel_id}/follow", responses=problem_responses(401, 404, 422))
async def follow_channel(channel_id: str, user: CurrentUser, session: SessionDep) -> FollowState:
    """Follow a channel (following twice changes nothing)."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        return await channels.follow_channel(session, user=user, channel=channel)


@router.delete("/{channel_id}/follow", responses=problem_responses(401, 404))
async def unfollow_channel(channel_id: str, user: CurrentUser, session: SessionDep) -> FollowState:
    """Stop following a channel (also fine if you did not)."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        return await channels.unfollow_channel(session, user=user, channel=channel)


@router.get("/{channel_id}/analytics", responses=problem_responses(401, 403, 404))
async def channel_analytics(
    channel_id: str,
    user: CurrentUser,
    session: SessionDep,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
) -> ChannelAnalytics:
    """Followers over time and per-stream viewer figures (owner or admin)."""
    async with session.begin():
        channel = await channels.get_channel(session, channel_id)
        return await channels.channel_analytics(session, actor=user, channel=channel, days=days)


@social_router.get("/{user_ref}/followers", responses=problem_responses(404))
async def user_followers(
    user_ref: str, viewer: OptionalUser, session: ReadSessionDep, page: PageDep
) -> Page[Follower]:
    """Who follows a user, newest first."""
    async with session.begin():
        user = await accounts.get_user_for(session, user_ref, viewer)
        rows, cursor = await channels.list_user_followers(session, user=user, params=page)
    return make_page(rows, cursor)


@social_router.get("/{user_ref}/following", responses=problem_responses(404))
async def user_following(
    user_ref: str, viewer: OptionalUser, session: ReadSessionDep, page: PageDep
) -> Page[Follower]:
    """The users a user follows, newest first."""
    async with session.begin():
        user = await accounts.get_user_for(session, user_ref, viewer)
        rows, cursor = await channels.list_followed_users(session, user=user, params=page)
    return make_page(rows, cursor)


@social_router.get("/{user_ref}/following/channels", responses=problem_responses(404))
async def user_followed_channels(
    user_ref: str, viewer: OptionalUser, session: ReadSessionDep, page: PageDep
) -> Page[FollowedChannel]:
    """The channels a user follows, newest first, with their live state."""
    async with session.begin():
        user = await accounts.get_user_for(session, user_ref, viewer)
        rows, cursor = await channels.list_followed_channels(session, user=user, params=page)
        shown = await channels.present_channels(session, [c for c, _ in rows])
    items = [
        FollowedChannel(channel=out, followed_at=follow.created_at)
        for out, (_, follow) in zip(shown, rows, strict=True)
    ]
    return make_page(items, cursor)


@social_router.post("/{username}/follow", responses=problem_responses(401, 404, 422))
async def follow_user(username: str, user: CurrentUser, session: SessionDep) -> FollowState:
    """Follow a user (following twice changes nothing)."""
    async with session.begin():
        followee = await accounts.get_user_for(session, username, user)
        return await channels.follow_user(session, follower=user, followee=followee)


@social_router.delete("/{username}/follow", responses=problem_responses(401, 404))
async def unfollow_user(username: str, user: CurrentUser, session: SessionDep) -> FollowState:
    """Stop following a user."""
    async with session.begin():
        followee = await accounts.get_user_for(session, username, user)
        return await channels.unfollow_user(session, follower=user, followee=followee)


@social_router.get("/{user_ref}/stats", responses=problem_responses(404))
async def user_stats(user_ref: str, viewer: OptionalUser, session: ReadSessionDep) -> UserStats:
    """Follower counts and streaming totals of a user."""
    async with session.begin():
        user = await accounts.get_user_for(session, user_ref, viewer)
        return await channels.user_stats(session, user=user)


@discovery_router.get("/browse", response_model=Page[StreamOut], responses=problem_responses(422))
async def browse(
    request: Request,
    runtime: RuntimeDep,
    page: PageDep,
    category: Annotated[str | None, Query(max_length=64)] = None,
    tags: Annotated[list[str], Query(max_length=10)] = [],  # noqa: B006 - FastAPI copies it
    language: Annotated[str | None, Query(max_length=8)] = None,
    sort: Literal["viewers", "newest"] = "viewers",
) -> Response:
    """Live streams, filtered by category, tags (all must match) and language."""
    wanted = [t.strip().lower() for t in tags if t.strip()]

    async def render() -> bytes:
        # A session only on a miss: a cache hit touches no database at all.
        async with runtime.db.read_session() as session, session.begin():
            rows, cursor = await discovery.browse(
                session,
                params=page,
                category=category,
                tags=wanted,
                language=language,
                sort=sort,
            )
            shown = make_page(await streams.present_streams(session, rows), cursor)
        return shown.model_dump_json().encode()

    # The same page for every caller: cached briefly, keyed by path and exact query.
    return await runtime.response_cache.serve_request(request, render)


@discovery_router.get("/search", responses=problem_responses(422))
async def search(
    session: ReadSessionDep,
    page: PageDep,
    q: Annotated[str, Query(min_length=1, max_length=100)],
    type_: Annotated[Literal["stream", "channel", "user"] | None, Query(alias="type")] = None,
) -> Page[dict[str, Any]]:
    """Streams, channels and users matching a query, best first; prefixes and typos match."""
    kinds = (type_,) if type_ else ("stream", "channel", "user")
    async with session.begin():
        results, cursor = await discovery.search_everything(
            session, query=q, kinds=kinds, params=page
        )
    return make_page(results, cursor)


@discovery_router.get("/recommended", responses=problem_responses(422))
async def recommended(
    viewer: OptionalUser, session: ReadSessionDep, page: PageDep
) -> Page[StreamOut]:
    """For you: followed channels that are live, then your categories, then popular."""
    async with session.begin():
        rows, cursor = paginate_list(await discovery.recommended(session, viewer=viewer), page)
        return make_page(await streams.present_streams(session, rows), cursor)


@discovery_router.get("/categories", responses=problem_responses(422))
async def list_categories(session: ReadSessionDep, page: PageDep) -> Page[CategoryOut]:
    """Every category with its live streams and viewers, busiest first."""
    async with session.begin():
        rows, cursor = paginate_list(await discovery.list_categories(session), page)
    return make_page(rows, cursor)


@discovery_router.post(
    "/categories", status_code=status.HTTP_201_CREATED, responses=problem_responses(401, 403, 409)
)
async def create_category(
    body: CategoryCreate, _admin: AdminUser, session: SessionDep
) -> CategoryOut:
    """Add a category (admin)."""
    async with session.begin():
        category = await discovery.create_category(session, data=body)
    return CategoryOut(slug=category.slug, name=category.name)


@discovery_router.get("/tags/suggest")
async def suggest_tags(
    session: ReadSessionDep,
    q: Annotated[str, Query(min_length=1, max_length=25)],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> TagSuggestions:
    """Tags that start with `q`, most used first."""
    async with session.begin():
        return TagSuggestions(
            suggestions=await discovery.suggest_tags(session, prefix=q, limit=limit)
        )
