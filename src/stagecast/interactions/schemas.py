"""What polls and reactions take and return, over HTTP and sockets."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, Field, StrictInt, StrictStr, model_validator

from stagecast.accounts.schemas import Input
from stagecast.chat.schemas import SocketPayload, TargetIn

MIN_POLL_SECONDS, MAX_POLL_SECONDS = 15, 1800
Question = Annotated[str, Field(min_length=1, max_length=200)]
ChoiceTitle = Annotated[str, Field(min_length=1, max_length=60)]


class PollCreate(Input):
    """A poll in a channel (or the channel of a live stream), open for `duration` seconds."""

    channel_id: uuid.UUID | None = None
    stream_id: uuid.UUID | None = None
    question: Question
    choices: list[ChoiceTitle] = Field(min_length=2, max_length=5)
    duration: int = Field(default=120, ge=MIN_POLL_SECONDS, le=MAX_POLL_SECONDS)
    subscribers_only: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> PollCreate:
        if (self.channel_id is None) == (self.stream_id is None):
            raise ValueError("name the channel_id or the stream_id, one of them")
        folded = [choice.casefold() for choice in self.choices]
        if len(set(folded)) != len(folded):
            raise ValueError("the choices must differ")
        return self


class VoteIn(Input):
    # The choice's index, from 0 (as `choices[].index` in the poll).
    choice: StrictInt = Field(ge=0)


class PollVoteIn(SocketPayload):
    """`poll:vote {pollId, choice}` over the socket."""

    poll_id: uuid.UUID = Field(validation_alias=AliasChoices("pollId", "poll_id"))
    choice: StrictInt = Field(ge=0)


class PollChoice(BaseModel):
    index: int
    title: str
    votes: int
    percent: float  # of all votes, 0-100, one decimal


class PollOut(BaseModel):
    id: uuid.UUID
    channel_id: uuid.UUID
    stream_id: uuid.UUID | None
    question: str
    choices: list[PollChoice]
    total_votes: int
    subscribers_only: bool
    duration_seconds: int
    status: Literal["active", "ended"]
    end_reason: Literal["expired", "ended"] | None
    seconds_left: int
    created_at: datetime
    ends_at: datetime
    ended_at: datetime | None
    my_vote: int | None = None  # the caller's choice, when signed in and voted


class Tallies(BaseModel):
    """`poll:voted`: the current counts, sent to the room a few times a second at most."""

    poll_id: uuid.UUID
    channel_id: uuid.UUID
    stream_id: uuid.UUID | None
    choices: list[PollChoice]
    total_votes: int


class ReactionIn(Input):
    stream_id: uuid.UUID
    # An emote code of the channel's set ("scHype") or the emoji it shows ("🎉").
    emoji: StrictStr = Field(min_length=1, max_length=32)


class ReactionSendIn(TargetIn):
    """`reaction:send {streamId?, emoji}`: the joined stream's room, or the one named."""

    emoji: StrictStr = Field(min_length=1, max_length=32)


class ReactionAccepted(BaseModel):
    stream_id: uuid.UUID
    emoji: str  # the emote code it counted as
    # The burst it goes out in: reactions reach the room as counts, not one by one.
    window_ms: int


class ReactionCount(BaseModel):
    emoji: str
    fallback: str
    count: int


class ReactionBurst(BaseModel):
    """`reaction:sent`: the room's reactions of one window, counted per emoji."""

    channel_id: uuid.UUID
    stream_id: uuid.UUID | None
    reactions: list[ReactionCount]
    total: int
    window_ms: int


PollStatusFilter = Literal["active", "ended", "all"]
