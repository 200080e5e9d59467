"""Chat messages as the API and sockets show them, and socket payloads."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictInt, StrictStr


class Fragment(BaseModel):
    """A piece of a message, so clients render links, mentions and emotes without HTML."""

    type: Literal["text", "link", "mention", "emote"]
    text: str
    url: str | None = None
    username: str | None = None
    emote: str | None = None


class ChatAuthor(BaseModel):
    id: uuid.UUID
    username: str
    display_name: str
    badges: list[str]


class ChatMessageOut(BaseModel):
    id: uuid.UUID
    channel_id: uuid.UUID
    stream_id: uuid.UUID | None
    author: ChatAuthor
    body: str
    fragments: list[Fragment]
    reply_to: uuid.UUID | None
    created_at: datetime


class ChatToken(BaseModel):
    token: str
    expires_in: int


class SocketPayload(BaseModel):
    """Socket payloads take seed 000's camelCase names as well as snake_case."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TargetIn(SocketPayload):
    stream_id: uuid.UUID | None = Field(
        default=None, validation_alias=AliasChoices("streamId", "stream_id")
    )
    channel_id: uuid.UUID | None = Field(
        default=None, validation_alias=AliasChoices("channelId", "channel_id")
    )


class StreamKeyIn(SocketPayload):
    """Seed 004's viewer payloads: `streamKey` is a public name (stream id, channel id or slug)."""

    stream_key: StrictStr = Field(
        min_length=1, max_length=256, validation_alias=AliasChoices("streamKey", "stream_key")
    )
    # Seed 004 sends who the viewer is; the socket's token decides that here, so it is ignored.
    user_id: Annotated[StrictStr, Field(max_length=256)] | StrictInt | None = Field(
        default=None, validation_alias=AliasChoices("userId", "user_id")
    )


class SendIn(TargetIn):
    # Strict: a binary or numeric "message" is an error, not silently converted to text.
    message: StrictStr = Field(max_length=4000)
    reply_to: uuid.UUID | None = Field(
        default=None, validation_alias=AliasChoices("replyTo", "reply_to")
    )


class DeleteIn(SocketPayload):
    message_id: uuid.UUID = Field(validation_alias=AliasChoices("messageId", "message_id"))
