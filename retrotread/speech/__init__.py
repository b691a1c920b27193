"""Spoken cues: the walker faces away from the screen during a retro block, so retrotread
says every cue out loud (espeak-ng, offline), safety messages first and nothing late."""

from retrotread.speech.announcer import Announcer, Call, CueCaller
from retrotread.speech.engine import Bell, Espeak, SpeechEngine, SpeechSettings, SpeechUnavailable
from retrotread.speech.queue import Outcome, Priority, Said, SpeechQueue, Utterance
from retrotread.speech.speaker import Speaker

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
