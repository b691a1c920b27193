"""What every browser page shows, kept from the session's typed events.

One :class:`SessionView` listens to the one session (a plain listener that never blocks) and
keeps the state the pages draw; each change bumps a version that the server's per-page
senders wait on, so a slow page only ever gets the latest state, never a backlog.

The walker's state is a separate, smaller projection: countdown, cue, handrail colour, the
latest call and a "ready" hint. It carries nothing of the operator's (no speeds, faults in
detail, client or outcome form).
"""

from __future__ import annotations

import asyncio
import enum
import math
from collections import deque
from typing import Any

from retrotread import cues, units
from retrotread.events import (
    BlockExtended,
    BlockSkipped,
    BlockStarted,
    CommandConfirmed,
    CommandUnconfirmed,
    Countdown,
    Event,
    Fault,
    LinkRestored,
    Notice,
    Paused,
    ProgramFinished,
    ProgramStarted,
    ProgramStopped,
    Resumed,
    SessionEnded,
    SessionHandle,
    SessionSummary,
    StopProgress,
    StopState,
    TelemetryReceived,
    Tick,
)
from retrotread.program.model import BlockKind, Handrail, Step, format_duration
from retrotread.speech.announcer import CueCaller
from retrotread.units import Quantity, show_speed_both
from retrotread.vocabulary import Command, EngineState, FaultKind
from retrotread.walker import HINTS, WalkerPhase, grip_for

#: How many recent faults and notices the operator's page lists.
RECENT = 6
#: Faults after which the link cannot carry commands any more (as on the console).


class Phase(enum.StrEnum):
    CONNECTING = "connecting"
    READY = "ready"  # connected, program checked: the belt starts on the operator's go
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"  # the program ended; the belt is being stopped
    ENDED = "ended"  # the session is over
    FAILED = "failed"  # the device could not be reached; nothing moved


class Link(enum.StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    LOST = "lost"
    CLOSED = "closed"


def handrail_for(step: Step) -> Handrail:
    """The grip the walker must hold: a turn-around is always both hands."""
    return grip_for(step)


def cue_headline(step: Step) -> str:
    if step.kind is BlockKind.TURN_AROUND:
        return cues.turn_instruction(step.facing).upper()
    return cues.handrail(step.block.handrail).upper()


def cue_detail(step: Step) -> str:
    text = step.block.cue or (cues.RETRO_REMINDER if step.kind.is_retro else "")
    return text[:1].upper() + text[1:]


def show_speed(speed: Quantity | None) -> str | None:
    return None if speed is None else show_speed_both(speed)


def show_incline(incline: Quantity | None) -> str | None:
    return None if incline is None else f"{float(incline.value):.1f} %"


def describe_block(step: Step, total: int) -> dict[str, Any]:
    block = step.block
    return {
        "index": step.index,
        "count": total,
        "title": step.title,
        "kind": step.kind.value,
        "label": step.kind.label,
        "facing": step.facing.value,
        "handrail": handrail_for(step).value,
        "turn": step.kind is BlockKind.TURN_AROUND,
        "headline": cue_headline(step),
        "detail": cue_detail(step),
        "cue": cues.display_cue(step),
        "speed": None if block.speed is None else units.show_speed(block.speed),
        "duration": format_duration(step.duration_s),
    }


class SessionView:
    """The session as the pages see it. Call it with each engine event (a session listener)."""

    def __init__(self, session: SessionHandle) -> None:
        self.session = session
        self.program = session.program
        steps = self.program.steps
        self.step: Step = steps[0]
        self.next_step: Step | None = steps[1] if len(steps) > 1 else None
        self.remaining_s = self.step.duration_s
        self.count: int | None = None  # the 3-2-1 before a change
        self.call = ""  # the latest words the voice said (what the walker view shows)
        self.phase = Phase.CONNECTING
        self.link = Link.CONNECTING
        self.hold = ""
        self.warning = ""
        self.warning_for: Command | None = None  # the command whose trouble it shows
        self.faults: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.notices: deque[str] = deque(maxlen=RECENT)
        self.summary: SessionSummary | None = None
        self.failure = ""
        self.stop_state = ""  # the stop path's latest words (sent, retrying, confirmed...)
        self.version = 0
        self._caller = CueCaller()
        self._changed = asyncio.Event()

    # -- what happens -------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        call = self._caller(event)
        if call is not None and not isinstance(event, BlockStarted):
            self.call = call.text  # a block start's words are the cue itself
        match event:
            case ProgramStarted():
                self.phase = Phase.RUNNING
            case BlockStarted(step=step, next_step=next_step, ends_at=ends_at):
                self.step, self.next_step, self.call, self.count = step, next_step, "", None
                self.remaining_s = round(ends_at - event.at)
            case Tick(remaining_s=remaining):
                self.remaining_s = remaining
            case Countdown(count=count):
                self.count = count
            case Paused():
                self.phase = Phase.PAUSED
                self._sync_remaining()
            case Resumed():
                self.phase = Phase.RUNNING
                self.hold = ""
                self._sync_remaining()
            case BlockExtended():
                self.count = None
                self._sync_remaining()
            case BlockSkipped(step=step):
                self.notices.append(f"skipped {step.title}")
            case TelemetryReceived():
                if self.link is Link.CONNECTING:
                    self.link = Link.CONNECTED
            case CommandConfirmed(command=command):
                if self.warning_for is command:
                    self.warning, self.warning_for = "", None
            case CommandUnconfirmed(command=command, reason=reason):
                self.warning = f"{command} not confirmed: {reason}"
                self.warning_for = command
            case Fault():
                self._on_fault(event)
            case StopProgress(state=state, message=text):
                # Where the stop stands, as on the console's warning line.
                self.stop_state = text
                self.warning = "" if state is StopState.CONFIRMED else text
                self.warning_for = None
            case LinkRestored(message=text):
                self.link = Link.CONNECTED
                self.notices.append(text)
            case Notice(message=text):
                self.notices.append(text)
            case ProgramFinished() | ProgramStopped():
                self.phase = Phase.STOPPING
                self.count = None
            case SessionEnded():
                # "ended" goes out with the summary (``ended``), never before it.
                self.link = Link.CLOSED
            case _:
                pass
        self._bump()

    def _on_fault(self, fault: Fault) -> None:
        if fault.kind is FaultKind.LINK_LOST:
            self.link = Link.RECONNECTING
        elif fault.kind.link_down:
            self.link = Link.LOST
        if fault.fatal:
            self.warning = fault.message
        else:
            self.hold = fault.message
        self.faults.append(
            {"kind": fault.kind.value, "message": fault.message, "fatal": fault.fatal}
        )

    def awaiting_go(self) -> None:
        """The device is connected and the program checked: waiting for the operator's go."""
        self.phase = Phase.READY
        self.link = Link.CONNECTED
        self._bump()

    def ended(self, summary: SessionSummary) -> None:
        self.summary = summary
        self.phase = Phase.ENDED
        self.link = Link.CLOSED
        self._bump()

    def failed(self, message: str) -> None:
        self.failure = message
        self.phase = Phase.FAILED
        self.link = Link.LOST
        self._bump()

    def _sync_remaining(self) -> None:
        """Seconds left in the block now (ticks come on whole seconds; a pause may not)."""
        state = self.session.state
        if state.step is None or state.engine is EngineState.READY:
            return
        left = state.block_remaining_s
        self.remaining_s = max(math.ceil(left - 1e-6), 0)

    # -- change notification ------------------------------------------------------------------

    def _bump(self) -> None:
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def changed_since(self, seen: int) -> int:
        """Wait until the state is newer than version ``seen``; returns the current version."""
        while self.version == seen:
            await self._changed.wait()
        return self.version

    # -- the two projections ------------------------------------------------------------------

    @property
    def live(self) -> bool:
        """The program is under way (the operator's pause, skip and such apply)."""
        return self.phase in (Phase.RUNNING, Phase.PAUSED)

    def walker_state(self) -> dict[str, Any]:
        """Only what is for the walker: the hint, the countdown (the 3-2-1 in its digits), the
        cue and its colour, the latest call; the words are the console's walker view's."""
        step = self.step
        return {
            "type": "walker",
            "phase": self.phase.value,
            "hint": HINTS[WalkerPhase(self.phase.value)],
            "remaining_s": self.remaining_s,
            "count": self.count,
            "counting": self.count is not None or (self.remaining_s <= 3 and self.live),
            "handrail": handrail_for(step).value,
            "turn": step.kind is BlockKind.TURN_AROUND,
            "headline": cue_headline(step),
            "detail": cue_detail(step),
            "call": self.call,
            "version": self.version,
        }

    def operator_state(self) -> dict[str, Any]:
        now = self.session.state
        telemetry = now.actual
        live_link = self.link not in (Link.RECONNECTING, Link.LOST)
        total = len(self.program.steps)
        target = now.target_speed if self.live else None
        state: dict[str, Any] = {
            "type": "operator",
            "phase": self.phase.value,
            "program": self.program.name,
            "device": now.device,
            "block": describe_block(self.step, total),
            "next": describe_block(self.next_step, total) if self.next_step else None,
            "remaining_s": self.remaining_s,
            "count": self.count,
            "call": self.call,
            "status": self._status_text(),
            "target_speed": show_speed(target),
            "actual_speed": show_speed(telemetry.speed if telemetry and live_link else None),
            "target_incline": show_incline(now.target_incline),
            "actual_incline": show_incline(telemetry.incline if telemetry and live_link else None),
            "distance_m": round(telemetry.distance_m, 1) if telemetry else 0.0,
            "elapsed": format_duration(int(now.program_elapsed_s)),
            "left": format_duration(math.ceil(now.program_remaining_s)),
            "link": self.link.value,
            "hold": now.hold or self.hold,
            "warning": self.warning,
            "stop_state": self.stop_state,
            "faults": list(self.faults),
            "notices": list(self.notices),
            "can": {
                "go": self.phase is Phase.READY,
                "stop": self.phase not in (Phase.ENDED, Phase.FAILED),
                "pause": self.phase is Phase.RUNNING,
                "resume": self.phase is Phase.PAUSED and live_link,
                "skip": self.phase is Phase.RUNNING,
                "extend": self.live,
                "nudge": self.phase is Phase.RUNNING and self.step.block.speed is not None,
            },
            "summary": self._summary(),
            "failure": self.failure,
            "version": self.version,
        }
        return state

    def _status_text(self) -> str:
        match self.phase:
            case Phase.CONNECTING:
                return "connecting to the device"
            case Phase.READY:
                return "READY · press GO (enter) to start the belt"
            case Phase.PAUSED:
                reason = self.session.state.hold or "paused by the operator"
                return f"PAUSED · {reason} · resume when ready"
            case Phase.STOPPING:
                return (
                    f"STOPPING THE BELT · {self.stop_state}"
                    if self.stop_state
                    else ("STOPPING THE BELT")
                )
            case Phase.ENDED:
                return "Session over"
            case Phase.FAILED:
                return f"could not start: {self.failure}"
        return "running"

    def _summary(self) -> dict[str, Any] | None:
        summary = self.summary
        if summary is None:
            return None
        return {
            "outcome": summary.outcome.value,
            "detail": summary.detail,
            "blocks": f"{summary.blocks_done} of {summary.blocks_total}",
            "retro": format_duration(int(summary.retro_s)),
            "elapsed": format_duration(int(summary.elapsed_s)),
            "distance_m": round(summary.distance_m),
            "belt_stopped": summary.belt_stopped,
        }
