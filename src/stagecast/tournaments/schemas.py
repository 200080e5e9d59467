"""What the tournaments API takes and answers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from stagecast.leaderboards.service import Period
from stagecast.tournaments.models import TournamentFormat

MAX_PARTICIPANTS = 256
MAX_PRIZE_PLACES = 8


class TournamentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    category: str = Field(min_length=1, max_length=64)
    format: TournamentFormat = TournamentFormat.SINGLE_ELIMINATION
    max_participants: StrictInt = Field(ge=2, le=MAX_PARTICIPANTS)
    starts_at: datetime
    entry_fee_tokens: StrictInt = Field(default=0, ge=0, le=1_000_000)
    rules: str | None = Field(default=None, max_length=5000)
    prize_split: list[StrictInt] = Field(
        default_factory=lambda: [100],
        min_length=1,
        max_length=MAX_PRIZE_PLACES,
        description="percent of the prize pool for each place, first place first; sums to 100",
    )

    @field_validator("name", "category")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value

    @field_validator("starts_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-12-24T18:00:00Z)")
        return value

    @model_validator(mode="after")
    def _split_adds_up(self) -> TournamentCreate:
        if any(percent < 1 for percent in self.prize_split) or sum(self.prize_split) != 100:
            raise ValueError("prize_split: whole percentages of at least 1 that sum to 100")
        if len(self.prize_split) > self.max_participants:
            raise ValueError("prize_split names more places than the tournament has players")
        return self


class StartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seeding: Literal["random", "leaderboard"] = "random"
    leaderboard: str | None = Field(
        default=None, max_length=120, description="the board seeding by leaderboard ranks by"
    )
    period: Period = Period.ALL


class ResultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    winner_id: uuid.UUID
    score: str | None = Field(default=None, max_length=40, description="e.g. 2-1")


class MatchUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel_id: str | None = Field(
        max_length=64, description="the channel (id or slug) streaming the match; null clears"
    )


class PlayerOut(BaseModel):
    user_id: uuid.UUID
    username: str
    display_name: str | None
    seed: int | None


class MatchChannelOut(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    url: str  # the channel's page, where its stream plays


class MatchOut(BaseModel):
    id: uuid.UUID
    round: int
    position: int
    status: str
    player1: PlayerOut | None
    player2: PlayerOut | None
    winner_id: uuid.UUID | None
    score: str | None
    reported_by: list[uuid.UUID]  # players who reported a result not yet agreed
    channel: MatchChannelOut | None
    completed_at: datetime | None


class RoundOut(BaseModel):
    round: int
    name: str  # "Final", "Semi-finals", "Round 1", "Losers round 2", "Grand final"…
    bracket: str  # "main"; in double elimination "winners", "losers" or "grand_final"
    matches: list[MatchOut]


class StandingOut(BaseModel):
    rank: int
    user_id: uuid.UUID
    username: str
    seed: int | None
    wins: int
    losses: int
    eliminated: bool
    placement: int | None  # set at completion
    prize_tokens: int


class OrganiserOut(BaseModel):
    id: uuid.UUID
    username: str


class TournamentSummary(BaseModel):
    id: uuid.UUID
    name: str
    category: str
    format: str
    status: str
    organiser: OrganiserOut
    max_participants: int
    participant_count: int
    starts_at: datetime
    entry_fee_tokens: int
    prize_split: list[int]
    prize_pool_tokens: int
    winner_id: uuid.UUID | None
    created_at: datetime


class TournamentOut(TournamentSummary):
    rules: str | None
    seeding: str | None
    started_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    rounds: list[RoundOut]
    standings: list[StandingOut]
