"""Spoken cues: the walker faces away from the screen during a retro block, so retrotread
says every cue out loud (espeak-ng, offline), safety messages first and nothing late."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retrotread.speech.announcer import Announcer, Call, CueCaller
    from retrotread.speech.engine import (
        Bell,
        Espeak,
        SpeechEngine,
        SpeechSettings,
        SpeechUnavailable,
    )
    from retrotread.speech.queue import Outcome, Priority, Said, SpeechQueue, Utterance
    from retrotread.speech.speaker import Speaker

# Each name loads with its module on first use: the command line reads the speech options
# (the engine's settings) without the announcer and queue and the events they bring.
_MODULES = {
    "Announcer": "announcer",
    "Call": "announcer",
    "CueCaller": "announcer",
    "Bell": "engine",
    "Espeak": "engine",
    "SpeechEngine": "engine",
    "SpeechSettings": "engine",
    "SpeechUnavailable": "engine",
    "Outcome": "queue",
    "Priority": "queue",
    "Said": "queue",
    "SpeechQueue": "queue",
    "Utterance": "queue",
    "Speaker": "speaker",
}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"retrotread.speech.{_MODULES[name]}"), name)


__all__ = [
    "Announcer",
    "Bell",
    "Call",
    "CueCaller",
    "Espeak",
    "Outcome",
    "Priority",
    "Said",
    "Speaker",
    "SpeechEngine",
    "SpeechQueue",
    "SpeechSettings",
    "SpeechUnavailable",
    "Utterance",
]
