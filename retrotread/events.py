"""Typed events from the engine to every front end (console, headless printer, session store).

Events are small frozen dataclasses with the clock time ``at`` they happened. The scheduler
raises the program's events; the session adds what the treadmill does. Front ends subscribe
with a plain callable and must not block: the console turns each event into a Textual message,
the headless runner prints it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from retrotread.program.model import Band, Program, Step
from retrotread.units import Quantity
from retrotread.vocabulary import Belt, Command, EngineState, FaultKind, Outcome, StopReason

__all__ = [
    "COUNTDOWN_FROM",
    "Belt",
    "BlockExtended",
    "BlockSkipped",
    "BlockStarted",
    "Command",
    "CommandConfirmed",
    "CommandIssued",
    "CommandUnconfirmed",
    "Countdown",
    "CueDue",
    "EngineState",
    "Event",
    "Fault",
    "FaultKind",
    "LinkRestored",
    "Listener",
    "Notice",
    "Outcome",
    "Paused",
    "ProgramFinished",
    "ProgramStarted",
    "ProgramStopped",
    "Resumed",
    "SessionEnded",
    "SessionHandle",
    "SessionState",
    "SessionSummary",
    "StopProgress",
    "StopReason",
    "StopState",
    "TelemetryReceived",
    "Tick",
]

#: The 3-2-1 before every change starts at this count.
COUNTDOWN_FROM = 3


@dataclass(frozen=True)
class Event:
    at: float


# -- the program --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProgramStarted(Event):
    program: Program


@dataclass(frozen=True)
class BlockStarted(Event):
    step: Step
    ends_at: float
    next_step: Step | None


@dataclass(frozen=True)
class Tick(Event):
    """Once a second while a block runs: whole seconds left in the block."""

    step: Step
    remaining_s: int
    program_elapsed_s: float
    program_remaining_s: float


@dataclass(frozen=True)
class CueDue(Event):
    """The next change is coming: tell the walker before it happens."""

    step: Step  # the block about to start
    in_s: int


@dataclass(frozen=True)
class Countdown(Event):
    """3-2-1 before every change."""

    step: Step | None  # the block about to start; None at the end of the program
    count: int


@dataclass(frozen=True)
class Paused(Event):
    reason: str


@dataclass(frozen=True)
class Resumed(Event):
    pass


@dataclass(frozen=True)
class BlockSkipped(Event):
    step: Step


@dataclass(frozen=True)
class BlockExtended(Event):
    step: Step
    seconds: int
    ends_at: float


@dataclass(frozen=True)
class ProgramFinished(Event):
    blocks_done: int


@dataclass(frozen=True)
class ProgramStopped(Event):
    reason: StopReason
    detail: str
    blocks_done: int


# -- the treadmill ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TelemetryReceived(Event):
    speed: Quantity
    incline: Quantity
    distance_m: float
    elapsed_s: float


@dataclass(frozen=True)
class CommandIssued(Event):
    """A command passed the governor and is on its way to the treadmill."""

    command: Command
    value: Quantity | None
    adjusted_from: Quantity | None = None  # what was asked, when the governor changed it


@dataclass(frozen=True)
class CommandConfirmed(Event):
    command: Command
    value: Quantity | None
    latency_s: float


@dataclass(frozen=True)
class CommandUnconfirmed(Event):
    """The treadmill refused a command, or its belt did not get there in time."""

    command: Command
    value: Quantity | None
    reason: str
    rejected: bool = False  # the treadmill said no (rather than a belt slow to get there)


@dataclass(frozen=True)
class Fault(Event):
    kind: FaultKind
    message: str
    fatal: bool


@dataclass(frozen=True)
class Notice(Event):
    """Something the operator should read, that is not a fault."""

    message: str


class StopState(enum.StrEnum):
    """Where the stop stands: the operator sees each change."""

    WAITING_FOR_MACHINE = "stop waits for the machine's answer to the last command"
    LINK_DOWN = "link down: the stop goes out as soon as it returns"
    NO_ANSWER = "no answer to stop: asking again"
    REFUSED = "the treadmill refused stop: use its STOP or the safety key"
    STILL_MOVING = "stop accepted but the belt still moves: stopping again"
    LEFT_PAUSED = "the belt halted paused, not stopped: stopping it again"
    CONFIRMED = "belt stopped"
    UNCONFIRMABLE = "stop accepted; this machine cannot report its belt: check it has stopped"
    GAVE_UP = "stop NOT confirmed: stop the treadmill at its console now"


@dataclass(frozen=True)
class StopProgress(Notice):
    """The stop path changed state (a notice, so every front end shows its words)."""

    state: StopState = StopState.CONFIRMED


@dataclass(frozen=True)
class LinkRestored(Notice):
    """The link to the treadmill is back (its words say what happens next)."""


@dataclass(frozen=True)
class SessionState(Event):
    """What a front end shows, as of ``at``: sent on every tick and whenever any of it changes,
    so a screen, a printer or a publisher never reads the session itself."""

    device: str
    engine: EngineState
    step: Step | None  # the block under way (None before the first and after the last)
    block_remaining_s: float  # to the block's end, exact (ticks come on whole seconds)
    program_elapsed_s: float
    program_remaining_s: float  # as planned now (extend and skip included)
    belt: Belt  # what the session wants the belt to do
    target_speed: Quantity | None  # None while the belt is meant to be paused or stopped
    target_incline: Quantity | None
    actual: TelemetryReceived | None  # the last reading, if any
    link_up: bool
    hold: str | None  # why nothing but stop is sent (a console stop, a lost link...)
    hold_kind: FaultKind | None
    nudge_mph: float  # the operator's +/- on this block
    speed_allowed: Band | None  # the speeds a nudge may reach on this block (the governor's)
    stop_requested: bool


@dataclass(frozen=True)
class SessionSummary:
    """A session's end, as every front end reports it."""

    program: str
    device: str
    outcome: Outcome
    reason: StopReason | None
    detail: str
    blocks_done: int
    blocks_total: int
    retro_s: float
    elapsed_s: float
    distance_m: float
    belt_stopped: bool


@dataclass(frozen=True)
class SessionEnded(Event):
    outcome: Outcome
    detail: str
    belt_stopped: bool


Listener = Callable[[Event], None]


class SessionHandle(Protocol):
    """What a front end may do with a session: listen to its events, and ask it things.

    Screens, printers, recorders and publishers hold this, never the session itself, so the
    type checker keeps them off the session's workings (its scheduler, governor, desired state).
    """

    @property
    def program(self) -> Program: ...

    @property
    def state(self) -> SessionState: ...

    def subscribe(self, listener: Listener) -> Callable[[], None]: ...

    def stop(self, reason: StopReason = StopReason.OPERATOR, detail: str = "") -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def skip(self) -> None: ...

    def extend(self, seconds: int = 15) -> None: ...

    def nudge_speed(self, delta_mph: float) -> str | None: ...

    async def wait_stop_requested(self) -> None: ...

    def notify(self, message: str) -> None:
        """Tell every front end something (a :class:`Notice`), e.g. the recorder's trouble."""
