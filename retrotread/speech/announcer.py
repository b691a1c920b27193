"""The announcer: a session's events in, spoken cues out (wording from :mod:`retrotread.cues`).

It subscribes like any front end (a plain callable that never blocks) and only queues; the
speech queue decides what is said when. Halfway and ten-seconds-left come from the
scheduler's ticks, so the scheduler itself knows nothing about speech.
"""

from __future__ import annotations

from dataclasses import dataclass

from retrotread import cues
from retrotread.clinic.heart import HeartRateAlert
from retrotread.events import (
    COUNTDOWN_FROM,
    BlockExtended,
    BlockStarted,
    Countdown,
    CueDue,
    Event,
    Fault,
    Paused,
    ProgramFinished,
    ProgramStopped,
    Resumed,
    SessionEnded,
    Tick,
)
from retrotread.program.model import Step
from retrotread.speech.queue import Priority, SpeechQueue

#: How long each kind of call may wait before it is too late to say (seconds on the clock).
COUNT_WITHIN_S = 0.6  # a number said later than this runs into the next one
COMING_UP_WITHIN_S = 1.5  # before the 3-2-1 starts
TICK_CALL_WITHIN_S = 2.0
BLOCK_START_WITHIN_S = 3.0
CHANGE_WITHIN_S = 4.0
FINISHED_WITHIN_S = 10.0


@dataclass(frozen=True)
class Call:
    """Words to say (and show) for one event, how urgent, and how long they stay worth saying."""

    text: str
    priority: Priority
    within_s: float | None = None  # None: never stale


class CueCaller:
    """Which words each session event calls for. The announcer speaks them; the walker view
    shows them, so the screen and the voice always say the same thing."""

    def __init__(self) -> None:
        self.step: Step | None = None
        self._called: set[tuple[int, str]] = set()  # (step index, call) said once per block

    def __call__(self, event: Event) -> Call | None:
        match event:
            case BlockStarted(step=step):
                self.step = step
                within = min(BLOCK_START_WITHIN_S, max(1.0, step.duration_s - COUNTDOWN_FROM))
                return Call(cues.block_start(step), Priority.CHANGE, within)
            case CueDue(step=step):
                return Call(cues.coming_up(step), Priority.ROUTINE, COMING_UP_WITHIN_S)
            case Countdown(count=count):
                return Call(cues.countdown(count), Priority.ROUTINE, COUNT_WITHIN_S)
            case Tick(step=step, remaining_s=remaining):
                return self._tick(step, remaining)
            case BlockExtended(seconds=seconds):
                return Call(cues.extended(seconds), Priority.CHANGE, CHANGE_WITHIN_S)
            case Paused():
                return Call(cues.PAUSED, Priority.CHANGE, CHANGE_WITHIN_S)
            case Resumed():
                return Call(cues.resumed(self.step), Priority.CHANGE, CHANGE_WITHIN_S)
            case ProgramFinished():
                return Call(cues.FINISHED, Priority.CHANGE, FINISHED_WITHIN_S)
            case ProgramStopped(reason=reason):
                text = cues.stopped(reason)
                return Call(text, Priority.SAFETY) if text is not None else None
            case HeartRateAlert(message=message):  # over the client's ceiling, or back
                return Call(message, Priority.CHANGE, CHANGE_WITHIN_S)
            case Fault(kind=kind):
                return Call(cues.fault(kind), Priority.SAFETY)
            case SessionEnded(belt_stopped=False):
                return Call(cues.BELT_NOT_CONFIRMED, Priority.SAFETY)
        return None

    def _tick(self, step: Step, remaining: int) -> Call | None:
        duration = step.duration_s
        call: tuple[str, str] | None = None
        if duration >= cues.HALFWAY_MIN_S and remaining == duration // 2:
            call = ("halfway", cues.halfway(step))
        elif duration >= cues.TEN_LEFT_MIN_S and remaining == cues.TEN_LEFT_AT_S:
            call = ("ten-left", cues.TEN_SECONDS_LEFT)
        if call is None or (step.index, call[0]) in self._called:
            return None  # an extended block ticks through the same second again: say it once
        self._called.add((step.index, call[0]))
        return Call(call[1], Priority.ROUTINE, TICK_CALL_WITHIN_S)


class Announcer:
    """Speaks the calls for a session's events on ``queue``."""

    def __init__(self, queue: SpeechQueue) -> None:
        self.queue = queue
        self.caller = CueCaller()

    def __call__(self, event: Event) -> None:
        call = self.caller(event)
        if call is not None:
            self.queue.say(call.text, call.priority, within_s=call.within_s)
