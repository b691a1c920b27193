"""The headless front end: prints a session as it plays, for unattended runs and rehearsals."""

from __future__ import annotations

import sys
from typing import TextIO

from retrotread.events import (
    BlockExtended,
    BlockSkipped,
    BlockStarted,
    CommandUnconfirmed,
    Countdown,
    CueDue,
    Event,
    Fault,
    Notice,
    Paused,
    ProgramFinished,
    ProgramStarted,
    ProgramStopped,
    Resumed,
    SessionHandle,
    SessionSummary,
    Tick,
)
from retrotread.program.model import Step, format_duration
from retrotread.text import printable
from retrotread.units import show_incline, show_speed
from retrotread.vocabulary import FaultKind

STATUS_EVERY_S = 10


def describe_step(step: Step) -> str:
    block = step.block
    if block.speed is None:
        pace = "belt paused"
    else:
        pace = f"{show_speed(block.speed)}, {show_incline(block.incline)}"
    return f"{format_duration(step.duration_s)} at {pace}"


class HeadlessPrinter:
    """Subscribes to a session and writes one line per thing worth knowing."""

    def __init__(
        self,
        session: SessionHandle,
        out: TextIO = sys.stdout,
        *,
        live_status: bool = False,
        periodic_status: bool = True,
        resume_hint: bool = False,
    ) -> None:
        self.resume_hint = resume_hint
        self.session = session
        self.out = out
        self.live_status = live_status
        self.periodic_status = periodic_status
        self._total = len(session.program.steps)
        self._status_shown = False

    def __call__(self, event: Event) -> None:
        text = self._line(event)
        if text is None:
            return
        self._clear_status()
        self.out.write(printable(text) + "\n")  # a name or cue is shown, never obeyed
        self.out.flush()

    def _clear_status(self) -> None:
        if self._status_shown:
            self.out.write("\r\033[K")
            self._status_shown = False

    def _clock(self) -> str:
        return f"[{format_duration(self.session.state.program_elapsed_s)}]"

    def _line(self, event: Event) -> str | None:
        match event:
            case ProgramStarted(program=program):
                return (
                    f"▶ {program.name}: {format_duration(program.total_s)} total, "
                    f"{format_duration(program.retro_s)} retro, {len(program.steps)} blocks "
                    f"on {self.session.state.device}"
                )
            case BlockStarted(step=step):
                return (
                    f"{self._clock()} {step.index + 1}/{self._total} {step.kind.label:<9} "
                    f"{step.title}: {describe_step(step)}\n"
                    f"{'':8}cue: {step.cue}"
                )
            case CueDue(step=step, in_s=seconds):
                return f"{'':8}next in {seconds} s: {step.kind.label} {step.title}"
            case Countdown(count=count, step=step):
                what = step.kind.label if step else "END"
                return f"{'':8}{count}… {what}" if count > 1 else f"{'':8}1… {what} now"
            case Tick():
                self._status(event)
                return None
            case Paused(reason=reason):
                return f"{self._clock()} ⏸ paused: {reason}"
            case Resumed():
                return f"{self._clock()} ▶ resumed"
            case BlockSkipped(step=step):
                return f"{self._clock()} ⏭ skipped {step.title}"
            case BlockExtended(step=step, seconds=seconds):
                return f"{self._clock()} + {seconds} s on {step.title}"
            case CommandUnconfirmed(command=command, reason=reason):
                return f"{'':8}! {command} not confirmed: {reason}"
            case Fault(kind=FaultKind.CONNECT):
                return None  # the command that could not connect says so itself, once
            case Fault(kind=kind, message=message, fatal=fatal):
                hint = " — press Enter to resume" if self.resume_hint and not fatal else ""
                return f"{self._clock()} ! fault ({kind}): {message}{hint}"
            case Notice(message=message):
                return f"{self._clock()} · {message}"
            case ProgramFinished():
                return f"{self._clock()} ■ program finished; stopping the belt"
            case ProgramStopped(reason=reason, detail=detail):
                extra = f" ({detail})" if detail and detail != reason.value else ""
                return f"{self._clock()} ■ {reason.value}{extra}; stopping the belt"
        return None

    def _status(self, tick: Tick) -> None:
        state = self.session.state
        target, actual = state.target_speed, state.actual
        parts = [f"{tick.remaining_s:>4} s left"]
        parts.append(f"target {show_speed(target)}" if target else "target —")
        if actual is not None:
            parts.append(f"belt {show_speed(actual.speed)}")
            parts.append(show_incline(actual.incline))
            parts.append(f"{actual.distance_m:.0f} m")
        line = f"{'':8}" + " · ".join(parts)
        if self.live_status:
            self._clear_status()
            self.out.write(line)
            self.out.flush()
            self._status_shown = True
        elif self.periodic_status and tick.remaining_s % STATUS_EVERY_S == 0:
            self.out.write(line + "\n")
            self.out.flush()


def format_summary(summary: SessionSummary) -> str:
    belt = "stopped" if summary.belt_stopped else "NOT CONFIRMED STOPPED — check the treadmill"
    return "\n".join(
        [
            "── summary ──",
            f"program   {summary.program} on {summary.device}",
            f"ended     {summary.outcome.value}: {summary.detail}",
            f"blocks    {summary.blocks_done} of {summary.blocks_total}",
            f"retro     {format_duration(summary.retro_s)}",
            f"elapsed   {format_duration(summary.elapsed_s)}",
            f"distance  {summary.distance_m:.0f} m",
            f"belt      {belt}",
        ]
    )
