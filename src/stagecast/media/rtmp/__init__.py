"""RTMP ingest: OBS and ffmpeg publish here, the pipeline reads FLV tags from a sink.

Ours rather than pyrtmp 0.3.1: pyrtmp never sends acknowledgements, has no limits, timeouts or
refusal at publish, configures DEBUG logging at import, parses bit by bit with `bitstring` and
is untyped; the protocol subset OBS and ffmpeg use is small enough to own and test byte-level.

    async def authorize(request: PublishRequest) -> PublishSink:
        if not await key_is_valid(request.stream_key):
            raise PublishRefused("Unknown stream key.")
        return PipelineSink(...)  # on_metadata / on_tag / on_close

    async with RtmpServer(authorize, port=1935) as server:
        ...
        await server.disconnect(old_key)  # after the key is regenerated
"""

from stagecast.media.rtmp.amf0 import AmfValue
from stagecast.media.rtmp.flv import FlvTag, TagType, flv_header
from stagecast.media.rtmp.server import RtmpServer
from stagecast.media.rtmp.session import (
    Authorize,
    PublishRefused,
    PublishRequest,
    PublishSink,
    RtmpLimits,
    resolve_stream_key,
)

__all__ = [
    "AmfValue",
    "Authorize",
    "FlvTag",
    "PublishRefused",
    "PublishRequest",
    "PublishSink",
    "RtmpLimits",
    "RtmpServer",
    "TagType",
    "flv_header",
    "resolve_stream_key",
]
