"""The speech queue: one voice, priorities, and nothing said late.

- **Safety** messages (STOP, safety key, link lost, every fault) interrupt whatever is being
  said that is not itself a safety message, and drop every routine call still waiting.
- Otherwise the highest priority waiting goes first, oldest first within a priority.
- Every routine call carries a deadline on the session's clock. One still waiting when its
  moment has passed (a "two" while the belt is already at "one") is dropped, never spoken
  late.

Time is the injectable :class:`~retrotread.clock.Clock`, so the ordering and dropping run on
the virtual clock in tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from retrotread.clock import Clock
from retrotread.speech.engine import Bell, SpeechEngine, SpeechUnavailable

log = logging.getLogger(__name__)


class Priority(enum.IntEnum):
    """Lower goes first."""

    SAFETY = 0  # STOP, safety key, link lost, faults: interrupts anything else
    CHANGE = 1  # a block starts, pause, resume, the program ends
    ROUTINE = 2  # 3-2-1, coming up, halfway, ten seconds left


class Outcome(enum.StrEnum):
    SPOKEN = "spoken"
    INTERRUPTED = "interrupted"  # cut off by a safety message, or by mute
    STALE = "dropped: stale"  # its moment passed while it waited
    SUPERSEDED = "dropped: a safety message came first"
    MUTED = "dropped: muted"


@dataclass(frozen=True)
class Utterance:
    text: str
    priority: Priority
    queued_at: float
    expires_at: float | None  # None: never stale (safety messages)
    seq: int = 0

    def stale(self, now: float) -> bool:
        return self.expires_at is not None and now > self.expires_at


@dataclass(frozen=True)
class Said:
    """What became of one utterance, for the record and for tests."""

    utterance: Utterance
    outcome: Outcome
    at: float
    started_at: float | None = None


Notice = Callable[[str], None]


@dataclass
class _State:
    pending: list[Utterance] = field(default_factory=list)
    current: Utterance | None = None
    speaking: asyncio.Future[None] | None = None


class SpeechQueue:
    """Feeds one :class:`~retrotread.speech.engine.SpeechEngine`, one utterance at a time."""

    def __init__(
        self,
        engine: SpeechEngine,
        clock: Clock,
        *,
        notice: Notice | None = None,
        fallback: SpeechEngine | None = None,
        history: int = 2000,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.notice = notice or (lambda message: log.warning("%s", message))
        self.fallback = fallback if fallback is not None else Bell()
        self.history: deque[Said] = deque(maxlen=history)
        self._state = _State()
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self._muted = False

    # -- saying things ------------------------------------------------------------------------

    def say(self, text: str, priority: Priority, *, within_s: float | None = None) -> Utterance:
        """Queue ``text``; a non-safety call not started within ``within_s`` is dropped."""
        now = self.clock.now()
        expires = None if priority is Priority.SAFETY or within_s is None else now + within_s
        utterance = Utterance(text, priority, now, expires, next(self._seq))
        if self._muted:
            self._record(utterance, Outcome.MUTED)
            return utterance
        state = self._state
        if priority is Priority.SAFETY:
            for waiting in [u for u in state.pending if u.priority is not Priority.SAFETY]:
                state.pending.remove(waiting)
                self._record(waiting, Outcome.SUPERSEDED)
            current = state.current
            if current is not None and current.priority is not Priority.SAFETY:
                self._interrupt()
        state.pending.append(utterance)
        self._idle.clear()
        self._wake.set()
        return utterance

    @property
    def muted(self) -> bool:
        return self._muted

    @muted.setter
    def muted(self, value: bool) -> None:
        """Mute silences at once: what is being said is cut, what waits is dropped."""
        self._muted = value
        if value:
            for waiting in self._state.pending:
                self._record(waiting, Outcome.MUTED)
            self._state.pending.clear()
            self._interrupt()

    @property
    def speaking(self) -> Utterance | None:
        return self._state.current

    # -- running ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="speech-queue")

    async def drain(self, timeout_s: float) -> bool:
        """Wait (on the real loop's time) until everything queued is said; False on timeout."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Stop at once: cut what is being said; nothing more is spoken."""
        self._interrupt()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    # -- the worker ---------------------------------------------------------------------------

    def _interrupt(self) -> None:
        speaking = self._state.speaking
        if speaking is not None and not speaking.done():
            speaking.cancel()

    def _next(self) -> Utterance | None:
        """The next utterance worth saying now; stale ones are dropped on the way."""
        state = self._state
        now = self.clock.now()
        while state.pending:
            best = min(state.pending, key=lambda u: (u.priority, u.seq))
            state.pending.remove(best)
            if best.stale(now):
                self._record(best, Outcome.STALE)
                continue
            return best
        return None

    async def _run(self) -> None:
        state = self._state
        while True:
            utterance = self._next()
            if utterance is None:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            started = self.clock.now()
            state.current = utterance
            state.speaking = asyncio.ensure_future(self._speak(utterance.text))
            try:
                await asyncio.wait({state.speaking})
            finally:
                if not state.speaking.done():  # the worker itself was cancelled (close)
                    state.speaking.cancel()
                    await asyncio.wait({state.speaking})
            speaking, state.speaking, state.current = state.speaking, None, None
            if speaking.cancelled():
                self._record(utterance, Outcome.INTERRUPTED, started)
            elif (error := speaking.exception()) is not None:
                log.error("speech failed on %r", utterance.text, exc_info=error)
                self._record(utterance, Outcome.INTERRUPTED, started)
            else:
                self._record(utterance, Outcome.SPOKEN, started)

    async def _speak(self, text: str) -> None:
        try:
            await self.engine.speak(text)
        except SpeechUnavailable as err:
            # Say so once, then ring the bell from here on: the walker still gets a signal.
            self.notice(f"{err}: cues will ring the terminal bell instead")
            self.engine = self.fallback
            await self.engine.speak(text)

    def _record(self, utterance: Utterance, outcome: Outcome, started: float | None = None) -> None:
        self.history.append(Said(utterance, outcome, self.clock.now(), started))
        if outcome is not Outcome.SPOKEN:
            log.info("speech %s: %r", outcome.value, utterance.text)
