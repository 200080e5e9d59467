"""The RTMP handshake: C0+C1 in, S0+S1+S2 out, C2 in.

We answer with the simple handshake, as nginx-rtmp does: S1 carries zeros where the complex
(digest) handshake would put a version, so clients skip digest checks, and S2 echoes C1. OBS
and ffmpeg publish over it; clients that send a digest C1 accept it too.
"""

from __future__ import annotations

import struct

RTMP_VERSION = 3
HANDSHAKE_SIZE = 1536
C0C1_SIZE = 1 + HANDSHAKE_SIZE
C2_SIZE = HANDSHAKE_SIZE
_RANDOM_SIZE = HANDSHAKE_SIZE - 8


class HandshakeError(ValueError):
    """The client's handshake bytes are not RTMP version 3."""


def server_handshake(c0c1: bytes, *, server_time: int, random: bytes) -> bytes:
    """Return S0+S1+S2 answering the client's C0+C1."""
    if len(c0c1) != C0C1_SIZE:
        raise HandshakeError(f"C0+C1 must be {C0C1_SIZE} bytes, got {len(c0c1)}")
    if c0c1[0] != RTMP_VERSION:
        # 6 and 8 are RTMPE (encrypted); anything else is not RTMP at all.
        raise HandshakeError(f"unsupported RTMP version {c0c1[0]}")
    if len(random) != _RANDOM_SIZE:
        raise HandshakeError(f"S1 random must be {_RANDOM_SIZE} bytes")
    s0 = bytes((RTMP_VERSION,))
    s1 = struct.pack(">II", server_time & 0xFFFFFFFF, 0) + random
    s2 = c0c1[1:]
    return s0 + s1 + s2
