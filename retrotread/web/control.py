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
from typing import Any

from retrotread.events import SessionHandle, StopReason
from retrotread.vocabulary import EngineState
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

    def __init__(self, session: SessionHandle, view: SessionView) -> None:
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
        stopped = asyncio.create_task(self.session.wait_stop_requested())
        try:
            waiting: list[asyncio.Future[Any]] = [go, stopped]
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            return go.done() and go.result()
        finally:
            stopped.cancel()

    def answer(self, go: bool) -> bool:
        if not self.waiting:
            return False
        assert self._go is not None
        self._go.set_result(go)
        return True


class Controls:
    """Maps one operator command to the session; refuses what the console would refuse."""

    def __init__(self, session: SessionHandle, gate: GoGate, view: SessionView) -> None:
        self.session = session
        self.gate = gate
        self.view = view

    def __call__(self, command: Command) -> Answer:
        session = self.session
        view = self.view
        now = session.state
        state = now.engine
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
                if view.link in (Link.RECONNECTING, Link.LOST) or not now.link_up:
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
        if not running:
            return Answer(False, "this block has no belt speed to change")
        refused = self.session.nudge_speed(NUDGE_MPH * direction)
        if refused is not None:
            return Answer(False, refused)
        return Answer(True, f"{'+' if direction > 0 else '-'}{NUDGE_MPH} mph")
