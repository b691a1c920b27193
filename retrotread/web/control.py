"""The operator's commands from a browser: the same Session methods the console's keys call.

Only the operator's websocket (authenticated) holds a :class:`Controls`; the walker's has none.
Every command goes through the session, so through the governor: a page can ask for nothing
the keyboard could not. Commands are explicit (``pause`` and ``resume``, not a toggle), so two
operator views pressing at once cannot undo each other.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

from retrotread.events import StopReason
from retrotread.scheduler import EngineState
from retrotread.session import Session
from retrotread.units import Unit, exact
from retrotread.web.view import Link, Phase, SessionView

NUDGE_MPH = 0.1
EXTEND_S = 15


class Command(enum.StrEnum):
    GO = "go"
    STOP = "stop"
    PAUSE = "pause"
    RESUME = "resume"
    SKIP = "skip"
    EXTEND = "extend"
    FASTER = "faster"
    SLOWER = "slower"


@dataclass(frozen=True)
class Answer:
    """What the operator's page is told about a command: done, or why not."""

    done: bool
    text: str


class GoGate:
    """The session's ``go``: the belt starts on an operator's go, never on its own.

    A STOP (or a signal) before the go answers it with "no": the session then ends without
    the belt ever moving.
    """

    def __init__(self, session: Session, view: SessionView) -> None:
        self.session = session
        self.view = view
        self._go: asyncio.Future[bool] | None = None

    @property
    def waiting(self) -> bool:
        return self._go is not None and not self._go.done()

    async def wait(self) -> bool:
        loop = asyncio.get_running_loop()
        self._go = loop.create_future()
        self.view.awaiting_go()
        go = self._go
        stopped = asyncio.create_task(self._stop_requested())
        try:
            await asyncio.wait([go, stopped], return_when=asyncio.FIRST_COMPLETED)
            return go.done() and go.result()
        finally:
            stopped.cancel()

    async def _stop_requested(self) -> bool:
        return await self.session.scheduler.stop_requested.wait()

    def answer(self, go: bool) -> bool:
        if not self.waiting:
            return False
        assert self._go is not None
        self._go.set_result(go)
        return True


class Controls:
    """Maps one operator command to the session; refuses what the console would refuse."""

    def __init__(self, session: Session, gate: GoGate, view: SessionView) -> None:
        self.session = session
        self.gate = gate
        self.view = view

    def __call__(self, command: Command) -> Answer:
        session = self.session
        view = self.view
        state = session.scheduler.state
        running = view.phase is Phase.RUNNING and state is EngineState.RUNNING
        match command:
            case Command.STOP:
                if view.phase in (Phase.ENDED, Phase.FAILED):
                    return Answer(False, "the session is over")
                session.stop(StopReason.OPERATOR)
                self.gate.answer(False)
                return Answer(True, "STOP: the belt is stopping")
            case Command.GO:
                if not self.gate.answer(True):
                    return Answer(False, "not waiting for the go")
                return Answer(True, "go: the belt starts")
            case Command.PAUSE:
                if not running:
                    return Answer(False, "nothing to pause")
                session.pause()
                return Answer(True, "paused")
            case Command.RESUME:
                if view.phase is not Phase.PAUSED or state is not EngineState.PAUSED:
                    return Answer(False, "nothing to resume")
                if view.link in (Link.RECONNECTING, Link.LOST) or not session.link_up:
                    return Answer(
                        False, "the link to the treadmill is down: resume once it is connected"
                    )
                session.resume()
                return Answer(True, "resumed")
            case Command.SKIP:
                if not running:
                    return Answer(False, "nothing to skip")
                session.skip()
                return Answer(True, "skipped")
            case Command.EXTEND:
                if not view.live:
                    return Answer(False, "nothing to extend")
                session.extend(EXTEND_S)
                return Answer(True, f"+{EXTEND_S} s")
            case Command.FASTER | Command.SLOWER:
                return self._nudge(1 if command is Command.FASTER else -1, running)
        return Answer(False, f"unknown command {command}")

    def _nudge(self, direction: int, running: bool) -> Answer:
        """+/- 0.1 mph on this block, refused at the edge of the block's band."""
        session = self.session
        step = session.scheduler.current
        governor = session.governor
        if not running or step is None or step.block.speed is None or governor is None:
            return Answer(False, "this block has no belt speed to change")
        delta = exact(NUDGE_MPH) * direction
        allowed = governor.speed_range(step.band)
        requested = step.block.speed.to(Unit.MPH).value + session.nudge.value + delta
        if not allowed.low.to(Unit.MPH).value <= requested <= allowed.high.to(Unit.MPH).value:
            edge = "top" if direction > 0 else "bottom"
            return Answer(False, f"at the {edge} of the band {step.band}")
        session.nudge_speed(float(delta))
        return Answer(True, f"{'+' if direction > 0 else '-'}{NUDGE_MPH} mph")
