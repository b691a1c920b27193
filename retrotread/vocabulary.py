"""The words the engine and every front end share: one enum for each thing that has kinds.

Front ends match on these members, never on text: a typo is a ``NameError`` or a mypy error,
not a silent fall back to a generic message. This module imports nothing of retrotread, so
anything (the cue wording, the program model, the drivers) can use it without an import
circle.
"""

from __future__ import annotations

import enum


class Command(enum.StrEnum):
    """What a driver can be asked to do: one name for each, on every link."""

    START = "start"
    PAUSE = "pause"
    STOP = "stop"
    SET_SPEED = "set speed"
    SET_INCLINE = "set incline"


class EngineState(enum.StrEnum):
    """Where the program stands (the scheduler's state)."""

    READY = "ready"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    STOPPED = "stopped"


class Belt(enum.StrEnum):
    """What the session wants the belt to do."""

    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


class Outcome(enum.StrEnum):
    """How a session ended."""

    COMPLETED = "completed"
    UNCONFIRMED = "unconfirmed"  # played to the end on a machine that cannot report its belt
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    FAULT = "fault"


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


class FaultKind(enum.StrEnum):
    """Every fault the session raises.

    A fault is either a *hold* (the program pauses and nothing but stop is sent until a person
    resumes) or *fatal* (the session ends, the belt is stopped); :attr:`Fault.fatal` says which.
    """

    # the link and the machine
    CONNECT = "connect"
    LINK_LOST = "link-lost"
    DIFFERENT_MACHINE = "different-machine"
    DEVICE = "device"
    COMMAND_TIMEOUT = "command-timeout"
    START_REJECTED = "start-rejected"
    STOP_REJECTED = "stop-rejected"
    STOP_NOT_CONFIRMED = "stop-not-confirmed"
    CONTROL_LOST = "control-lost"
    # the belt, as the session watches it
    TELEMETRY_STALE = "telemetry-stale"
    BELT_STOPPED = "belt-stopped"
    OVERSPEED = "overspeed"
    # the physical console always wins
    STOPPED_AT_CONSOLE = "stopped-at-console"
    PAUSED_AT_CONSOLE = "paused-at-console"
    SAFETY_KEY = "safety-key"
    # the session itself
    HOLD_TIMEOUT = "hold-timeout"
    SAFETY = "safety"
    INTERNAL = "internal"

    @property
    def link_down(self) -> bool:
        """The fault means the treadmill cannot be reached (a front end shows the link lost)."""
        return self in _LINK_DOWN


_LINK_DOWN = frozenset(
    {FaultKind.CONNECT, FaultKind.DEVICE, FaultKind.STOP_NOT_CONFIRMED, FaultKind.LINK_LOST}
)
