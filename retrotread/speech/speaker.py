"""The speaker: engine + queue + announcer, attached to a session, with one mute switch.

Front ends use only this::

    speaker = await Speaker.open(settings, clock, notice=print_notice)
    speaker.attach(session)          # every cue the session raises is spoken
    speaker.muted = True             # the console's mute key, or --mute
    await speaker.close()            # says what is still queued (briefly), then stops
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from retrotread.clock import Clock
from retrotread.events import Listener
from retrotread.speech.announcer import Announcer
from retrotread.speech.engine import (
    ESPEAK,
    INSTALL_HINT,
    Bell,
    Espeak,
    SpeechEngine,
    SpeechSettings,
    find_espeak,
)
from retrotread.speech.queue import Priority, SpeechQueue

#: At the end of a run, what is still queued ("program complete", a STOP) gets this long.
DRAIN_S = 8.0


class Subscribable(Protocol):
    """Anything with ``subscribe(listener)``: a Session or a Scheduler."""

    def subscribe(self, listener: Listener) -> object: ...


class Speaker:
    def __init__(self, engine: SpeechEngine, clock: Clock, *, notice: Callable[[str], None]):
        self.queue = SpeechQueue(engine, clock, notice=notice)
        self.announcer = Announcer(self.queue)

    @classmethod
    async def open(
        cls,
        settings: SpeechSettings,
        clock: Clock,
        *,
        notice: Callable[[str], None],
        ring: Callable[[], None] | None = None,
    ) -> Speaker:
        """espeak-ng when it is installed; otherwise one notice, and the bell for each cue.

        A bad language or voice is a :class:`~retrotread.errors.SpeechError`, raised here
        before anything starts.
        """
        engine: SpeechEngine
        if find_espeak() is None:
            notice(f"{ESPEAK} is not installed, so cues ring the terminal bell: {INSTALL_HINT}")
            engine = Bell(ring)
        else:
            espeak = Espeak(settings)
            await espeak.check_voice()
            engine = espeak
        speaker = cls(engine, clock, notice=notice)
        speaker.queue.fallback = Bell(ring)
        speaker.queue.start()
        return speaker

    @property
    def engine(self) -> SpeechEngine:
        return self.queue.engine

    @property
    def muted(self) -> bool:
        return self.queue.muted

    @muted.setter
    def muted(self, value: bool) -> None:
        self.queue.muted = value

    def attach(self, session: Subscribable) -> None:
        session.subscribe(self.announcer)

    def say(self, text: str, priority: Priority = Priority.CHANGE) -> None:
        self.queue.say(text, priority)

    async def close(self, drain_s: float = DRAIN_S) -> None:
        await self.queue.drain(drain_s)
        await self.queue.close()
