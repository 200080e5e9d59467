"""Feature flags: switches an admin turns in the API, read by the code they gate.

Other domains ask `await flags.enabled(runtime, "clips")` (or `await flags.require(runtime,
"tips")`, which raises `FeatureDisabled`). A flag is one of `FLAGS`; its value is the stored one
or else its default, the same on every node (see switches.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast.admin.models import FeatureFlag
from stagecast.admin.switches import Snapshot
from stagecast.db.base import utcnow
from stagecast.errors import AppError, NotFound

if TYPE_CHECKING:
    import uuid

    from stagecast.runtime import Runtime


@dataclass(frozen=True, slots=True)
class Flag:
    default: bool
    description: str


FLAGS: dict[str, Flag] = {
    "clips": Flag(True, "Viewers and creators can make clips of live streams and VODs"),
    "tips": Flag(True, "Tips, donations and gifts (POST /streams/{id}/tips, /donations, /gifts)"),
    "browser_broadcasting": Flag(
        True, "Going live from the browser (seed 004's start-stream over Socket.IO)"
    ),
    "registrations": Flag(True, "New accounts (POST /auth/register)"),
}


class FeatureDisabled(AppError):
    status, code, title = 403, "FEATURE_DISABLED", "This feature is turned off"


class UnknownFlag(NotFound):
    code, title = "FEATURE_FLAG_NOT_FOUND", "No such feature flag"


def value_in(snapshot: Snapshot, name: str) -> bool:
    """A flag's value in a snapshot: stored, else its default."""
    if name not in FLAGS:
        raise UnknownFlag(f"No feature flag {name!r}; known: {', '.join(sorted(FLAGS))}")
    return snapshot.flags.get(name, FLAGS[name].default)


async def enabled(runtime: Runtime, name: str) -> bool:
    """Whether the feature `name` is on (cached per node; see switches.py)."""
    snapshot = await runtime.switches.current() if runtime.switches is not None else Snapshot()
    return value_in(snapshot, name)


async def require(runtime: Runtime, name: str) -> None:
    """Refuse with FEATURE_DISABLED when the feature `name` is off."""
    if not await enabled(runtime, name):
        raise FeatureDisabled(
            f"{FLAGS[name].description}: turned off by the operator", extra={"feature": name}
        )


async def set_flag(
    session: AsyncSession, *, name: str, enabled: bool, actor_id: uuid.UUID
) -> FeatureFlag:
    """Store a flag's value (the route announces the change after its commit)."""
    if name not in FLAGS:
        raise UnknownFlag(f"No feature flag {name!r}; known: {', '.join(sorted(FLAGS))}")
    row = await session.get(FeatureFlag, name)
    if row is None:
        row = FeatureFlag(name=name, enabled=enabled, updated_by_id=actor_id)
        session.add(row)
    else:
        row.enabled, row.updated_by_id, row.updated_at = enabled, actor_id, utcnow()
    await session.flush()
    return row


async def stored_flags(session: AsyncSession) -> dict[str, FeatureFlag]:
    return {row.name: row for row in await session.scalars(select(FeatureFlag))}
