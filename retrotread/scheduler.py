"""The interval engine: plays a program's steps on a clock and raises events.

Boundaries are never accumulated from sleeps. Each block's end is computed from the program's
start as ``origin + end_offset(block) + shift``, where ``end_offset`` is the sum of whole-second
durations so far and ``shift`` changes only when a person acts (pause adds the paused time,
extend adds seconds, skip removes what was left). A program that nobody touches therefore ends
exactly ``total`` seconds after it began, however many blocks it has.

Within a block the scheduler wakes on whole seconds *remaining*: a :class:`~retrotread.events.Tick`
each second, a :class:`~retrotread.events.CueDue` a few seconds before the change, and a
3-2-1 :class:`~retrotread.events.Countdown` right before it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence

from retrotread.clock import Clock, Wakeup, sleep_until_raised
from retrotread.events import (
    COUNTDOWN_FROM,
    BlockExtended,
    BlockSkipped,
    BlockStarted,
    Countdown,
    CueDue,
    Event,
    Listener,
    Paused,
    ProgramFinished,
    ProgramStarted,
    ProgramStopped,
    Resumed,
    StopReason,
    Tick,
)
from retrotread.program.model import Program, Step
from retrotread.vocabulary import EngineState

__all__ = ["COUNTDOWN_FROM", "EngineState", "Scheduler"]

log = logging.getLogger(__name__)

CUE_LEAD_S = 5
EXTEND_S = 15


class Scheduler:
    """Plays ``program`` on ``clock``; control it with pause/resume/skip/extend/stop."""

    def __init__(self, program: Program, clock: Clock, *, cue_lead_s: int = CUE_LEAD_S) -> None:
        self.program = program
        self.steps: Sequence[Step] = program.steps
        self.clock = clock
        self.cue_lead_s = cue_lead_s
        self.state = EngineState.READY
        self.index = 0
        self._listeners: list[Listener] = []
        self._origin = 0.0
        self._shift = 0.0
        self._paused_total = 0.0
        self._paused_at: float | None = None
        self._ended_at: float | None = None
        self._changed = Wakeup()
        self.stop_requested = asyncio.Event()
        self._skip = False
        self._stop: tuple[StopReason, str] | None = None
        self._ends = [step.end_s for step in self.steps]

    # -- subscription -------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken front end must not stop the program mid-block
                log.exception("event listener failed on %s", type(event).__name__)

    # -- where we are -------------------------------------------------------------------------

    @property
    def current(self) -> Step | None:
        return self.steps[self.index] if self.index < len(self.steps) else None

    def block_end(self, index: int | None = None) -> float:
        """Clock time at which block ``index`` (default: the current one) ends."""
        i = self.index if index is None else index
        end = self._origin + self._ends[i] + self._shift
        if self._paused_at is not None:
            end += self.clock.now() - self._paused_at
        return end

    def program_elapsed(self) -> float:
        """Seconds of program played so far (paused time does not count)."""
        if self.state is EngineState.READY:
            return 0.0
        if self._paused_at is not None:
            now = self._paused_at
        elif self._ended_at is not None:
            now = self._ended_at
        else:
            now = self.clock.now()
        return now - self._origin - self._paused_total

    def program_remaining(self) -> float:
        if self.index >= len(self.steps):
            return 0.0
        current_left = max(0.0, self.block_end() - self.clock.now())
        later = self._ends[-1] - self._ends[self.index]
        return current_left + later

    @property
    def stop_request(self) -> tuple[StopReason, str] | None:
        """Why :meth:`stop` was called, if it was."""
        return self._stop

    # -- control ------------------------------------------------------------------------------

    def pause(self, reason: str = "paused by the operator") -> None:
        if self.state is not EngineState.RUNNING:
            return
        self._paused_at = self.clock.now()
        self.state = EngineState.PAUSED
        self.emit(Paused(self._paused_at, reason))
        self._changed.set()

    def resume(self) -> None:
        if self.state is not EngineState.PAUSED or self._paused_at is None:
            return
        now = self.clock.now()
        self._shift += now - self._paused_at
        self._paused_total += now - self._paused_at
        self._paused_at = None
        self.state = EngineState.RUNNING
        self.emit(Resumed(now))
        self._changed.set()

    def skip(self) -> None:
        if self.state is EngineState.RUNNING:
            self._skip = True
            self._changed.set()

    def extend(self, seconds: int = EXTEND_S) -> None:
        if self.state not in (EngineState.RUNNING, EngineState.PAUSED) or seconds <= 0:
            return
        step = self.steps[self.index]
        self._shift += seconds
        self.emit(BlockExtended(self.clock.now(), step, seconds, self.block_end()))
        self._changed.set()

    def stop(self, reason: StopReason = StopReason.OPERATOR, detail: str = "") -> None:
        if self.state in (EngineState.FINISHED, EngineState.STOPPED) or self._stop:
            return
        self._stop = (reason, detail)
        self.stop_requested.set()
        self._changed.set()

    # -- the engine ---------------------------------------------------------------------------

    async def run(self) -> EngineState:
        """Play every step; returns FINISHED, or STOPPED if :meth:`stop` was called."""
        self._origin = self.clock.now()
        self.state = EngineState.RUNNING
        self.emit(ProgramStarted(self._origin, self.program))
        try:
            while self.index < len(self.steps) and not self._stop:
                await self._play_block()
        except BaseException:
            self._finish(EngineState.STOPPED, self._stop or (StopReason.ERROR, "engine cancelled"))
            raise
        if self._stop:
            self._finish(EngineState.STOPPED, self._stop)
        else:
            self._finish(EngineState.FINISHED, None)
        return self.state

    def _finish(self, state: EngineState, stop: tuple[StopReason, str] | None) -> None:
        now = self.clock.now()
        if self._paused_at is not None:
            self._paused_total += now - self._paused_at
            self._paused_at = None
        self._ended_at = now
        self.state = state
        if stop is None:
            self.emit(ProgramFinished(now, len(self.steps)))
        else:
            self.emit(ProgramStopped(now, stop[0], stop[1], self.index))

    async def _play_block(self) -> None:
        step = self.steps[self.index]
        next_step = self.steps[self.index + 1] if self.index + 1 < len(self.steps) else None
        self.emit(BlockStarted(self.clock.now(), step, self.block_end(), next_step))
        mark = self._next_mark()
        while not self._stop:
            if self._paused_at is not None:
                await self._wait_for_change()
                continue
            if self._skip:
                self._skip = False
                now = self.clock.now()
                self._shift -= self.block_end() - now
                self.emit(BlockSkipped(now, step))
                break
            if not await self._sleep_until(self.block_end() - mark):
                mark = self._next_mark()  # extend or resume moved the end: re-aim
                continue
            if mark == 0:
                break
            self._emit_mark(step, next_step, mark)
            mark -= 1
        else:
            return
        self.index += 1

    def _next_mark(self) -> int:
        """The next whole number of seconds remaining at which to wake (0 is the boundary)."""
        return max(math.ceil(self.block_end() - self.clock.now()) - 1, 0)

    def _emit_mark(self, step: Step, next_step: Step | None, remaining: int) -> None:
        now = self.clock.now()
        self.emit(Tick(now, step, remaining, self.program_elapsed(), self.program_remaining()))
        if remaining == self.cue_lead_s and next_step is not None:
            self.emit(CueDue(now, next_step, remaining))
        if remaining <= COUNTDOWN_FROM:
            self.emit(Countdown(now, next_step, remaining))

    async def _sleep_until(self, deadline: float) -> bool:
        """Sleep until ``deadline``; False if woken early by a control action."""
        await sleep_until_raised(self.clock, deadline, self._changed)
        # A control action at the very moment the deadline came still wins: a pause at a
        # whole second must not be followed by that second's tick.
        if self._changed.is_set():
            self._changed.clear()
            return False
        return True

    async def _wait_for_change(self) -> None:
        await self._changed.wait()
        self._changed.clear()
