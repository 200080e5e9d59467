"""Search over channels, streams and users: one service, two engines.

Candidates come from SQLite FTS5 (trigram tokenizer) or PostgreSQL (prefix full-text query
plus pg_trgm word similarity), both indexed; the ranking is done here, the same on both, so
results do not depend on the database. Matching is by prefix ("mine" finds "minecraft") and
tolerates typos ("minecarft" finds it too) through trigram similarity.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Text,
    UniqueConstraint,
    delete,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from stagecast.db.base import Base, utcnow

KINDS = ("stream", "channel", "user")
CANDIDATES = 300
MIN_SCORE = 0.34
_WORD = re.compile(r"\w+", re.UNICODE)


class SearchDocument(Base):
    """What search looks through: one row per channel, stream or user, kept by the services."""

    __tablename__ = "search_documents"
    __table_args__ = (UniqueConstraint("kind", "ref_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    ref_id: Mapped[uuid.UUID]
    title: Mapped[str] = mapped_column(String(256))
    body: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def words_of(value: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(value)]


def trigrams(word: str) -> set[str]:
    return {word[i : i + 3] for i in range(len(word) - 2)}


def _padded_trigrams(word: str) -> set[str]:
    padded = f"  {word} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def similarity(a: str, b: str) -> float:
    """Trigram similarity (as pg_trgm computes it): shared / all padded trigrams."""
    ta, tb = _padded_trigrams(a), _padded_trigrams(b)
    return len(ta & tb) / len(ta | tb) if ta and tb else 0.0


def _word_score(query_word: str, document_words: list[str]) -> float:
    best = 0.0
    for word in document_words:
        if word == query_word:
            return 1.0
        if word.startswith(query_word):
            best = max(best, 0.9)
        elif len(query_word) >= 3:
            best = max(best, similarity(query_word, word))
    return best


def score(query_words: list[str], title: str, body: str) -> float:
    """How well a document matches: title matches count fully, body matches 60 %."""
    if not query_words:
        return 0.0
    title_words, body_words = words_of(title), words_of(body)
    total = 0.0
    for query_word in query_words:
        total += max(
            _word_score(query_word, title_words), 0.6 * _word_score(query_word, body_words)
        )
    return total / len(query_words)


async def index_document(
    session: AsyncSession, *, kind: str, ref_id: uuid.UUID, title: str, body: str = ""
) -> None:
    """Add or refresh a document (the database keeps the full-text index in step)."""
    existing = await session.scalar(
        select(SearchDocument).where(SearchDocument.kind == kind, SearchDocument.ref_id == ref_id)
    )
    if existing is None:
        session.add(SearchDocument(kind=kind, ref_id=ref_id, title=title[:256], body=body))
    else:
        existing.title, existing.body = title[:256], body
    await session.flush()


async def remove_document(session: AsyncSession, *, kind: str, ref_id: uuid.UUID) -> None:
    await session.execute(
        delete(SearchDocument).where(SearchDocument.kind == kind, SearchDocument.ref_id == ref_id)
    )


@dataclass(frozen=True, slots=True)
class Hit:
    kind: str
    ref_id: uuid.UUID
    score: float


async def _candidates(
    session: AsyncSession, query_words: list[str], kinds: tuple[str, ...]
) -> list[SearchDocument]:
    dialect = session.get_bind().dialect.name
    short = [w for w in query_words if len(w) < 3]
    long = [w for w in query_words if len(w) >= 3]
    conditions: list[ColumnElement[bool]] = []
    # Words under three letters have no trigram: match them as title prefixes.
    for word in short:
        conditions.append(func.lower(SearchDocument.title).like(f"{word}%"))
        conditions.append(func.lower(SearchDocument.title).like(f"% {word}%"))
    query = select(SearchDocument).where(SearchDocument.kind.in_(kinds))
    if dialect == "sqlite":
        grams = sorted({g for w in long for g in trigrams(w)})
        if grams:
            # Trigrams are \w characters only, so quoting each makes a safe FTS5 expression.
            match = " OR ".join(f'"{g}"' for g in grams)
            fts_ids: Select[Any] = (
                select(literal_column("rowid"))
                .select_from(text("search_fts"))
                .where(text("search_fts MATCH :match").bindparams(match=match))
                .order_by(text("bm25(search_fts)"))
                .limit(CANDIDATES)
            )
            conditions.append(SearchDocument.id.in_(fts_ids))
    else:
        document = SearchDocument.title + " " + SearchDocument.body
        if long:
            prefix_query = " | ".join(f"{w}:*" for w in long)
            conditions.append(
                func.to_tsvector("simple", document).op("@@")(
                    func.to_tsquery("simple", prefix_query)
                )
            )
            for word in long:
                conditions.append(func.word_similarity(word, document) > 0.3)
    if not conditions:
        return []
    result = await session.scalars(query.where(or_(*conditions)).limit(CANDIDATES))
    return list(result.all())


async def search(session: AsyncSession, *, query: str, kinds: tuple[str, ...] = KINDS) -> list[Hit]:
    """Ranked hits for a query, best first (ties: kind order, then newest)."""
    query_words = words_of(query)[:8]
    if not query_words:
        return []
    documents = await _candidates(session, query_words, kinds)
    hits = [Hit(d.kind, d.ref_id, round(score(query_words, d.title, d.body), 4)) for d in documents]
    hits = [h for h in hits if h.score >= MIN_SCORE]
    hits.sort(key=lambda h: (-h.score, KINDS.index(h.kind), -h.ref_id.int))
    return hits
