"""The platform's own emotes (code -> the emoji a client without images shows)."""

from __future__ import annotations

EMOTES = {
    "scHype": "🎉",
    "scLove": "❤️",
    "scLol": "😂",
    "scWave": "👋",
    "scGG": "🏆",
    "scClap": "👏",
    "scPog": "😮",
    "scSad": "😢",
    "scFire": "🔥",
    "scWow": "🤩",
}
