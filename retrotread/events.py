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

from retrotread.program.model import Program, Step
from retrotread.units import Quantity


class StopReason(enum.StrEnum):
    OPERATOR = "stopped by the operator"
    SIGNAL_INT = "interrupted (Ctrl-C)"
    SIGNAL_TERM = "terminated (SIGTERM)"
    SIGNAL_HUP = "hung up (SIGHUP: the terminal or SSH session closed)"
    SIGNAL_QUIT = "quit (SIGQUIT)"
    FAULT = "stopped by a fault"
    CONSOLE = "stopped at the treadmill console"
    SAFETY_KEY = "safety key pulled"
    ERROR = "stopped by an internal error"


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

    command: str
    value: Quantity | None
    adjusted_from: Quantity | None = None  # what was asked, when the governor changed it


@dataclass(frozen=True)
class CommandConfirmed(Event):
    command: str
    value: Quantity | None
    latency_s: float


@dataclass(frozen=True)
class CommandUnconfirmed(Event):
    """The treadmill refused a command, or its belt did not get there in time."""

    command: str
    value: Quantity | None
    reason: str
    rejected: bool = False  # the treadmill said no (rather than a belt slow to get there)


@dataclass(frozen=True)
class Fault(Event):
    kind: str
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
    CONFIRMED = "belt stopped"
    UNCONFIRMABLE = "stop accepted; this machine cannot report its belt: check it has stopped"
    GAVE_UP = "stop NOT confirmed: stop the treadmill at its console now"


@dataclass(frozen=True)
class StopProgress(Notice):
    """The stop path changed state (a notice, so every front end shows its words)."""

    state: StopState = StopState.CONFIRMED


@dataclass(frozen=True)
class SessionEnded(Event):
    outcome: str
    detail: str
    belt_stopped: bool


Listener = Callable[[Event], None]
