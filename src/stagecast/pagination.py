"""Lists, paged two ways with the same sort keys.

- Keyset cursors (ours): `?limit=&cursor=` -> `{data, next_cursor, has_more}`.
- Offset pages (seed 000's `?page=&limit=`, seed 003's `?limit=&offset=`): the same answer plus
  an exact `total`, `page` (when asked by page), `limit`, `offset` and seed 000's `hasMore`.

Services build a select and call `paginate` (or `paginate_rows`, or `paginate_list` for a list
ranked in Python); routes turn what they return into a `Page` with `make_page`. Nothing else
knows which way the client asked.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar, cast

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Select, and_, func, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from stagecast.errors import ValidationFailed

T = TypeVar("T")
Row = TypeVar("Row")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# Deep offsets cost a scan of everything before them; past this, use the cursor.
MAX_OFFSET = 100_000
MAX_PAGE = MAX_OFFSET // MAX_LIMIT


def _absent(value: object) -> bool:
    return value is None


class Page(BaseModel, Generic[T]):
    """One page of a list; offset pages add their position and the list's exact total."""

    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    data: list[T]
    next_cursor: str | None
    has_more: bool
    total: int | None = Field(
        default=None, exclude_if=_absent, description="offset pages: items in the whole list"
    )
    page: int | None = Field(
        default=None, exclude_if=_absent, description="pages asked for by `page`: its number"
    )
    limit: int | None = Field(
        default=None, exclude_if=_absent, description="offset pages: items per page"
    )
    offset: int | None = Field(
        default=None, exclude_if=_absent, description="offset pages: items before this page"
    )
    has_more_seed: bool | None = Field(
        default=None,
        alias="hasMore",
        exclude_if=_absent,
        description="offset pages: seed 000's name for `has_more`",
    )


@dataclass(frozen=True, slots=True)
class PageParams:
    """How the client asked for a page: after a cursor, or at an offset (then counted)."""

    limit: int
    cursor: str | None = None
    offset: int | None = None
    page: int | None = None  # the page number, when the offset was asked for as `?page=`

    @property
    def counted(self) -> bool:
        """Offset pages answer the list's total; cursor pages do not count."""
        return self.offset is not None


@dataclass(frozen=True, slots=True)
class PageInfo:
    """What a page says beside its items: the cursor to the next page, the total if counted."""

    params: PageParams
    next_cursor: str | None
    total: int | None = None


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page")
    ] = None,
    page: Annotated[
        int | None,
        Query(ge=1, le=MAX_PAGE, description="Seed 000: the page number (from 1), with `total`"),
    ] = None,
    offset: Annotated[
        int | None,
        Query(ge=0, le=MAX_OFFSET, description="Seed 003: items to skip, with `total`"),
    ] = None,
) -> PageParams:
    """FastAPI dependency reading the pagination query parameters (one way at a time)."""
    given = [
        name
        for name, value in (("cursor", cursor or None), ("page", page), ("offset", offset))
        if value is not None
    ]
    if len(given) > 1:
        raise ValidationFailed(
            f"Page by one of cursor, page or offset, not {' and '.join(given)}",
            errors=[
                {"field": name, "in": "query", "message": "only one of cursor, page, offset",
                 "type": "exclusive"}
                for name in given
            ],
        )  # fmt: skip
    if page is not None:
        offset = (page - 1) * limit
    return PageParams(limit=limit, cursor=cursor, offset=offset, page=page)


async def offset_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip")] = 0,
) -> PageParams:
    """FastAPI dependency for seed 003's lists that answer its own shape (`{transfers, total}`):
    `?limit=&offset=` only, always counted."""
    return PageParams(limit=limit, offset=offset)


@dataclass(frozen=True, slots=True)
class SortKey:
    """One column of the ordering; the last key must be unique (usually the id)."""

    column: ColumnElement[Any] | QueryableAttribute[Any]
    value_of: Callable[[Any], Any]
    descending: bool = True


def _encode(values: Sequence[Any]) -> str:
    def plain(value: Any) -> Any:
        if isinstance(value, uuid.UUID):
            return {"u": str(value)}
        if isinstance(value, datetime):
            return {"t": value.isoformat()}
        return value

    raw = json.dumps([plain(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def invalid_cursor() -> ValidationFailed:
    """The error for a cursor that this list did not hand out."""
    return ValidationFailed(
        "The cursor is not valid for this list",
        errors=[{"field": "cursor", "in": "query", "message": "invalid cursor", "type": "cursor"}],
    )


def _decode(cursor: str, count: int) -> list[Any]:
    def typed(value: Any) -> Any:
        if isinstance(value, dict) and "u" in value:
            return uuid.UUID(value["u"])
        if isinstance(value, dict) and "t" in value:
            return datetime.fromisoformat(value["t"])
        if isinstance(value, (str, int, float)) or value is None:
            return value
        raise ValueError("unexpected cursor value")

    invalid = invalid_cursor()
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        typed_values = [typed(v) for v in values] if isinstance(values, list) else []
    except (ValueError, TypeError) as exc:
        raise invalid from exc
    if len(typed_values) != count:
        raise invalid
    return typed_values


def _after(keys: Sequence[SortKey], values: Sequence[Any]) -> ColumnElement[bool]:
    # (a, b, c) after (x, y, z) == a > x OR (a = x AND (b > y OR (b = y AND c > z))),
    # written out so that each key may sort in its own direction.
    key, value = keys[0], values[0]
    beyond = cast(ColumnElement[bool], key.column < value if key.descending else key.column > value)
    if len(keys) == 1:
        return beyond
    return or_(beyond, and_(key.column == value, _after(keys[1:], values[1:])))


AnySelect = Select[*tuple[Any, ...]]


def _window(statement: AnySelect, keys: Sequence[SortKey], params: PageParams) -> AnySelect:
    """The page's rows, and one more to tell whether another page follows."""
    if params.offset is not None:
        statement = statement.offset(params.offset)
    elif params.cursor:
        statement = statement.where(_after(keys, _decode(params.cursor, len(keys))))
    ordering = [k.column.desc() if k.descending else k.column.asc() for k in keys]
    return statement.order_by(*ordering).limit(params.limit + 1)


async def _total(session: AsyncSession, statement: AnySelect, params: PageParams) -> int | None:
    """The exact number of rows the list has, for offset pages: `count(*)` over the same FROM
    and WHERE (paginated selects do not group), which each list keeps behind an index."""
    if not params.counted:
        return None
    counting = statement.with_only_columns(func.count(), maintain_column_froms=True)
    return int(await session.scalar(counting.order_by(None)) or 0)


def _cut(
    rows: list[Any], keys: Sequence[SortKey], params: PageParams
) -> tuple[list[Any], str | None]:
    if len(rows) <= params.limit:
        return rows, None
    rows = rows[: params.limit]
    return rows, _encode([k.value_of(rows[-1]) for k in keys])


async def paginate(
    session: AsyncSession,
    statement: Select[Row],
    *,
    keys: Sequence[SortKey],
    params: PageParams,
) -> tuple[list[Row], PageInfo]:
    """Run a paginated select of one entity; return the rows and what the page says."""
    total = await _total(session, statement, params)
    rows = list((await session.scalars(_window(statement, keys, params))).all())
    shown, cursor = _cut(rows, keys, params)
    return shown, PageInfo(params, cursor, total)


async def paginate_rows(
    session: AsyncSession,
    statement: AnySelect,
    *,
    keys: Sequence[SortKey],
    params: PageParams,
) -> tuple[list[Any], PageInfo]:
    """Like `paginate`, for selects of several entities (rows are tuples)."""
    total = await _total(session, statement, params)
    rows = list((await session.execute(_window(statement, keys, params))).all())
    shown, cursor = _cut(rows, keys, params)
    return shown, PageInfo(params, cursor, total)


def paginate_list(items: Sequence[T], params: PageParams) -> tuple[list[T], PageInfo]:
    """One page of a list ranked in Python (search, categories, recommendations); its
    cursors are positions in the list."""
    start = params.offset if params.offset is not None else _position(params.cursor)
    shown = list(items[start : start + params.limit])
    more = len(items) > start + params.limit
    cursor = _position_cursor(start + params.limit) if more else None
    return shown, PageInfo(params, cursor, len(items) if params.counted else None)


def _position(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        position = int(value["o"])
    except (ValueError, TypeError, KeyError) as exc:
        raise invalid_cursor() from exc
    if position < 0:
        raise invalid_cursor()
    return position


def _position_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": position}).encode()).decode().rstrip("=")


def by_id(
    column: ColumnElement[Any] | QueryableAttribute[Any], *, descending: bool = True
) -> list[SortKey]:
    """Sort keys for the common case: newest first by time-ordered (v7) id."""
    return [SortKey(column, lambda row: row.id, descending)]


def make_page(items: Sequence[T], info: PageInfo) -> Page[T]:
    """The answer for a page of items, in the form the client asked for."""
    more, params = info.next_cursor is not None, info.params
    position: dict[str, Any] = {}
    if params.counted:
        position = {
            "total": info.total,
            "page": params.page,
            "limit": params.limit,
            "offset": params.offset,
            "has_more_seed": more,
        }
    return Page[T](data=list(items), next_cursor=info.next_cursor, has_more=more, **position)
