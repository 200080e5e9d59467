"""Keyset (cursor) pagination: `?limit=&cursor=` -> `{data, next_cursor, has_more}`."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar, cast

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from stagecast.errors import ValidationFailed

T = TypeVar("T")
Row = TypeVar("Row")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None
    has_more: bool


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    cursor: str | None


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page")
    ] = None,
) -> PageParams:
    """FastAPI dependency reading the pagination query parameters."""
    return PageParams(limit=limit, cursor=cursor)


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


def _keyset(statement: AnySelect, keys: Sequence[SortKey], params: PageParams) -> AnySelect:
    if params.cursor:
        statement = statement.where(_after(keys, _decode(params.cursor, len(keys))))
    ordering = [k.column.desc() if k.descending else k.column.asc() for k in keys]
    return statement.order_by(*ordering).limit(params.limit + 1)


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
) -> tuple[list[Row], str | None]:
    """Run a paginated select of one entity; return the rows and the next cursor."""
    rows = list((await session.scalars(_keyset(statement, keys, params))).all())
    return _cut(rows, keys, params)


async def paginate_rows(
    session: AsyncSession,
    statement: AnySelect,
    *,
    keys: Sequence[SortKey],
    params: PageParams,
) -> tuple[list[Any], str | None]:
    """Like `paginate`, for selects of several entities (rows are tuples)."""
    rows = list((await session.execute(_keyset(statement, keys, params))).all())
    return _cut(rows, keys, params)


def by_id(
    column: ColumnElement[Any] | QueryableAttribute[Any], *, descending: bool = True
) -> list[SortKey]:
    """Sort keys for the common case: newest first by time-ordered (v7) id."""
    return [SortKey(column, lambda row: row.id, descending)]


def make_page(items: Sequence[T], next_cursor: str | None) -> Page[T]:
    return Page[T](data=list(items), next_cursor=next_cursor, has_more=next_cursor is not None)
