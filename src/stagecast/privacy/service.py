"""Privacy: a user's data export, their erasure, the Do Not Sell choice, and retention.

An export walks every table with a column that refers to a user (so a table added later is
exported without anyone remembering to), plus the ledger entries of the user's accounts,
leaving out secrets (hashes, ciphertexts). The archive is a zip of JSON files, sealed with
AES-GCM in the private store; its link is an HMAC-signed token that works until it expires,
for its owner only.

An erasure keeps the row (the ledger's entries stay attributed to it, the books balanced)
and empties it: a placeholder name, no email, no password, no profile; sessions and keys
revoked and their sockets closed; follows, notifications, exports and KYC documents
deleted; chat messages kept, shown under the placeholder; the username held back.
"""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from stagecast import search
from stagecast.accounts import service as accounts
from stagecast.accounts.models import ApiKey, AuthSession, HeldUsername, User, UserStatus
from stagecast.channels.models import Channel, ChannelFollow, UserFollow
from stagecast.chat.models import ChatMessage
from stagecast.config import PrivacySettings
from stagecast.crypto import SecretBox
from stagecast.db.base import Base, utcnow
from stagecast.errors import NotFound, PermissionDenied
from stagecast.kyc import service as kyc
from stagecast.media.store import MediaNotFound, MediaStore
from stagecast.money.models import LedgerAccount, LedgerEntry
from stagecast.notifications import service as notifications
from stagecast.notifications.models import Notification
from stagecast.pagination import PageInfo, PageParams, by_id, paginate
from stagecast.privacy.models import DataExport, ExportStatus
from stagecast.streams.models import StreamKey

EXPORT_PURPOSE = "data-exports"
EXPORT_READY = "privacy.export_ready"
ERASED_NAME = "Deleted user"
ERASED_PASSWORD = "!erased"  # noqa: S105 - a marker that matches no password
# Columns that are secrets, not data about the person: never exported.
_SECRET_COLUMN = re.compile(r"(^|_)(hash|encrypted|ciphertext|secret)($|_)|^storage_key$")


class ExportNotFound(NotFound):
    code, title = "EXPORT_NOT_FOUND", "No such export"


class ExportLinkInvalid(PermissionDenied):
    code, title = "EXPORT_LINK_INVALID", "This download link is invalid, expired or not yours"


def do_not_sell(user: User | None, *, gpc: bool) -> bool:
    """Whether to share only what a provider needs to do its job for this user: their stored
    opt-out, or Global Privacy Control on the request (seed 003)."""
    return gpc or (user is not None and user.do_not_sell)


async def set_do_not_sell(session: AsyncSession, *, user: User, value: bool) -> User:
    user.do_not_sell = value
    await session.flush()
    return user


# --- exports ---


async def request_export(session: AsyncSession, *, user: User) -> DataExport:
    """A new export to build (one already waiting is returned instead of a second)."""
    waiting = await session.scalar(
        select(DataExport).where(
            DataExport.user_id == user.id, DataExport.status == ExportStatus.PENDING.value
        )
    )
    if waiting is not None:
        return waiting
    export = DataExport(user_id=user.id, status=ExportStatus.PENDING.value)
    session.add(export)
    await session.flush()
    return export


async def list_exports(
    session: AsyncSession, *, user_id: uuid.UUID, params: PageParams
) -> tuple[list[DataExport], PageInfo]:
    query = select(DataExport).where(DataExport.user_id == user_id)
    return await paginate(session, query, keys=by_id(DataExport.id), params=params)


def _json_value(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _user_columns(table: Table) -> list[str]:
    """The columns of a table that refer to a user."""
    return [
        column.name
        for column in table.columns
        if any(fk.column.table.name == "users" for fk in column.foreign_keys)
    ]


async def _rows(session: AsyncSession, table: Table, where: Any) -> list[dict[str, Any]]:
    columns = [c for c in table.columns if not _SECRET_COLUMN.search(c.name)]
    result = await session.execute(select(*columns).where(where))
    return [{k: _json_value(v) for k, v in row._mapping.items()} for row in result]


async def collect(
    session: AsyncSession, box: SecretBox, user_id: uuid.UUID
) -> dict[str, list[dict[str, Any]]]:
    """Everything held about a user, by table: each table's rows that name them (the date of
    birth and sessions' addresses decrypted: the person gets them, not their ciphertext)."""
    found: dict[str, list[dict[str, Any]]] = {}
    users = Base.metadata.tables["users"]
    found["profile"] = await _rows(session, users, users.c.id == user_id)
    sealed = await session.scalar(
        select(users.c.date_of_birth_encrypted).where(users.c.id == user_id)
    )
    for row in found["profile"]:
        row["date_of_birth"] = _json_value(accounts.open_birth_date(box, sealed))
    for table in Base.metadata.sorted_tables:
        columns = _user_columns(table)
        if not columns or table.name == "users":
            continue
        condition = table.c[columns[0]] == user_id
        for name in columns[1:]:
            condition = condition | (table.c[name] == user_id)
        rows = await _rows(session, table, condition)
        if rows:
            found[table.name] = rows
    entries = Base.metadata.tables[LedgerEntry.__tablename__]
    mine = select(LedgerAccount.id).where(LedgerAccount.owner_id == user_id)
    found["ledger_entries"] = await _rows(session, entries, entries.c.account_id.in_(mine))
    for row in found.get("auth_sessions", []):
        row["ip"] = accounts.open_ip(box, row["ip"])
    return found


def build_archive(user_id: uuid.UUID, data: dict[str, list[dict[str, Any]]]) -> bytes:
    """A zip with one JSON file per table, and a README saying what it is."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "README.txt",
            f"Everything Stagecast holds about user {user_id}, one JSON file per kind of\n"
            f"record, made {utcnow().isoformat()}. Secrets (password and key hashes, the\n"
            "encrypted identity documents) are not included.\n",
        )
        for name, rows in sorted(data.items()):
            archive.writestr(f"{name}.json", json.dumps(rows, indent=2, sort_keys=True))
    return buffer.getvalue()


def export_token(box: SecretBox, export: DataExport, expires_at: datetime) -> str:
    return box.sign(
        EXPORT_PURPOSE, f"{export.id}:{export.user_id}", expires_at=int(expires_at.timestamp())
    )


def download_path(export: DataExport, token: str) -> str:
    return f"/api/v1/users/me/exports/{export.id}/download?token={token}"


async def finish_export(
    session: AsyncSession,
    box: SecretBox,
    store: MediaStore,
    settings: PrivacySettings,
    *,
    export_id: uuid.UUID,
    now: datetime,
) -> DataExport | None:
    """Build a pending export's archive, seal it, and send its owner the signed link."""
    export = await session.get(DataExport, export_id)
    if export is None or export.status != ExportStatus.PENDING.value:
        return None
    archive = build_archive(export.user_id, await collect(session, box, export.user_id))
    key = f"exports/{export.user_id}/{export.id}.zip"
    await store.write(key, box.encrypt_bytes(EXPORT_PURPOSE, archive, context=key))
    export.status = ExportStatus.READY.value
    export.storage_key, export.size_bytes = key, len(archive)
    export.ready_at = now
    export.expires_at = now + timedelta(hours=settings.export_link_hours)
    await session.flush()
    token = export_token(box, export, export.expires_at)
    await notifications.notify(
        session,
        user_id=export.user_id,
        kind=EXPORT_READY,
        payload={
            "export_id": str(export.id),
            "download_url": download_path(export, token),
            "expires_at": export.expires_at.isoformat(),
        },
    )
    return export


async def pending_exports(session: AsyncSession) -> list[uuid.UUID]:
    return list(
        await session.scalars(
            select(DataExport.id).where(DataExport.status == ExportStatus.PENDING.value)
        )
    )


async def open_export(
    session: AsyncSession,
    box: SecretBox,
    store: MediaStore,
    *,
    user: User,
    export_id: uuid.UUID,
    token: str,
    now: datetime,
) -> bytes:
    """The archive behind a download link: the token must be the server's, unexpired, for
    this export and for the signed-in user."""
    value = box.verify_signed(EXPORT_PURPOSE, token, now=now.timestamp())
    if value != f"{export_id}:{user.id}":
        raise ExportLinkInvalid()
    export = await session.get(DataExport, export_id)
    if export is None or export.user_id != user.id or export.storage_key is None:
        raise ExportNotFound()
    if export.status != ExportStatus.READY.value:
        raise ExportLinkInvalid("This export has expired")
    try:
        sealed = await store.read(export.storage_key)
    except MediaNotFound as exc:
        raise ExportNotFound("The archive is gone") from exc
    archive = box.decrypt_bytes(EXPORT_PURPOSE, sealed, context=export.storage_key)
    if archive is None:
        raise ExportNotFound("The archive does not decrypt")
    return archive


# --- erasure ---


def _placeholder(user_id: uuid.UUID) -> str:
    return f"deleted-{user_id.hex[:12]}"


async def erase(
    session: AsyncSession,
    store: MediaStore,
    settings: PrivacySettings,
    *,
    user: User,
    now: datetime,
) -> list[uuid.UUID]:
    """Erase an account (its password, if asked for, was checked by the caller); return the
    channels it owned, whose publishers the caller cuts off once this commits."""
    await accounts.end_all_sessions(session, user_id=user.id, reason="erased")
    await session.execute(
        update(AuthSession).where(AuthSession.user_id == user.id).values(ip=None, user_agent=None)
    )
    await session.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user.id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    held = await session.get(HeldUsername, user.username_key)
    until = now + timedelta(days=settings.username_hold_days)
    if held is None:
        session.add(HeldUsername(username_key=user.username_key, held_until=until))
    else:
        held.held_until = max(held.held_until, until)
    placeholder = _placeholder(user.id)
    user.username = user.username_key = placeholder
    user.email = f"{placeholder}@erased.invalid"
    user.display_name = ERASED_NAME
    user.bio = user.avatar_url = user.country = user.date_of_birth_encrypted = None
    # Not an Argon2 hash: every password fails against it (an InvalidHashError is a mismatch).
    user.password_hash = ERASED_PASSWORD
    user.preferences = {}
    user.email_verified = False
    user.status = UserStatus.DELETED.value
    user.erased_at = now
    await session.execute(delete(ChannelFollow).where(ChannelFollow.user_id == user.id))
    await session.execute(
        delete(UserFollow).where(
            (UserFollow.follower_id == user.id) | (UserFollow.followee_id == user.id)
        )
    )
    await session.execute(delete(Notification).where(Notification.user_id == user.id))
    for export in await session.scalars(select(DataExport).where(DataExport.user_id == user.id)):
        if export.storage_key:
            await store.delete(export.storage_key)
        await session.delete(export)
    await kyc.erase_user(session, store, user_id=user.id, now=now)
    await search.remove_document(session, kind="user", ref_id=user.id)
    # Nobody may publish as the erased creator again: their channels lose their stream keys.
    owned = list(await session.scalars(select(Channel.id).where(Channel.owner_id == user.id)))
    if owned:
        await session.execute(delete(StreamKey).where(StreamKey.channel_id.in_(owned)))
    await session.flush()
    return owned


# --- retention ---


async def apply_retention(
    session: AsyncSession, store: MediaStore, settings: PrivacySettings, *, now: datetime
) -> dict[str, int]:
    """Remove what the retention settings no longer allow to be kept; return the counts."""
    done: dict[str, int] = {}
    if settings.session_ip_days:
        cutoff = now - timedelta(days=settings.session_ip_days)
        result = await session.execute(
            update(AuthSession)
            .where(
                AuthSession.last_used_at < cutoff,
                (AuthSession.ip.is_not(None)) | (AuthSession.user_agent.is_not(None)),
            )
            .values(ip=None, user_agent=None)
        )
        done["session_ips"] = int(result.rowcount)  # type: ignore[attr-defined]
    if settings.ended_session_days:
        cutoff = now - timedelta(days=settings.ended_session_days)
        result = await session.execute(
            delete(AuthSession).where(
                (AuthSession.revoked_at < cutoff) | (AuthSession.expires_at < cutoff)
            )
        )
        done["sessions"] = int(result.rowcount)  # type: ignore[attr-defined]
    if settings.chat_days:
        cutoff = now - timedelta(days=settings.chat_days)
        result = await session.execute(delete(ChatMessage).where(ChatMessage.created_at < cutoff))
        done["chat_messages"] = int(result.rowcount)  # type: ignore[attr-defined]
    expired = list(
        await session.scalars(
            select(DataExport).where(
                DataExport.status == ExportStatus.READY.value, DataExport.expires_at <= now
            )
        )
    )
    for export in expired:
        if export.storage_key:
            await store.delete(export.storage_key)
        export.status = ExportStatus.EXPIRED.value
    done["exports"] = len(expired)
    result = await session.execute(delete(HeldUsername).where(HeldUsername.held_until <= now))
    done["held_usernames"] = int(result.rowcount)  # type: ignore[attr-defined]
    await session.flush()
    return done
