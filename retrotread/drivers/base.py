"""The one interface every treadmill driver implements.

A driver is opened from a URL (see :mod:`retrotread.drivers.registry`), used as an async
context manager, and speaks in exact quantities that the safety governor has already checked
and quantized. Drivers push what the machine reports — telemetry and machine events — to
subscribers; they never decide policy (pause the program, resend, ...), the session does.

Like harlequin's adapters, each driver declares what it can do as class attributes, so front
ends can ask without connecting.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import enum
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Self

from retrotread.clock import Clock
from retrotread.drivers.url import DeviceUrl
from retrotread.errors import CommandTimeout, LinkLost
from retrotread.profiles import Profile, get_profile
from retrotread.units import Increment, Quantity
from retrotread.vocabulary import Command as Command  # re-exported: drivers name it here


@dataclass(frozen=True)
class Range:
    low: Quantity
    high: Quantity
    increment: Increment


@dataclass(frozen=True)
class Capabilities:
    """What the connected machine accepts (read from it where the protocol allows)."""

    speed: Range
    incline: Range
    can_control: bool = True


class BeltStatus(enum.StrEnum):
    UNKNOWN = "unknown"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Telemetry:
    at: float
    speed: Quantity
    incline: Quantity
    distance_m: float
    elapsed_s: float
    belt: BeltStatus = BeltStatus.UNKNOWN
    #: The machine does not report its incline: ``incline`` is the value last set (echoed,
    #: unconfirmed), not a reading (FTMS quirk ``incline_unreported``).
    incline_echoed: bool = False


class MachineEventKind(enum.StrEnum):
    STOPPED_AT_CONSOLE = "stopped at the console"
    PAUSED_AT_CONSOLE = "paused at the console"
    STARTED_AT_CONSOLE = "started at the console"
    SAFETY_KEY = "safety key pulled"
    TARGET_SPEED_CHANGED = "target speed changed at the console"
    TARGET_INCLINE_CHANGED = "target incline changed at the console"
    CONTROL_LOST = "control permission lost"
    RESET = "machine reset"
    LINK_LOST = "link lost"
    LINK_RESTORED = "link restored"
    #: a speed or incline the machine accepted but did not reach in time (value: the reading)
    TARGET_NOT_REACHED = "target not reached"


@dataclass(frozen=True)
class MachineEvent:
    at: float
    kind: MachineEventKind
    value: Quantity | None = None


Report = Telemetry | MachineEvent
ReportListener = Callable[[Report], None]


class Treadmill(abc.ABC):
    """A treadmill reached through some protocol."""

    #: URL scheme this driver is registered under, e.g. ``"sim"``.
    scheme: ClassVar[str]
    #: The URL grammar, shown in help and in every URL error.
    url_grammar: ClassVar[str]
    #: Query options the URL accepts, with a one-line help each.
    url_options: ClassVar[dict[str, str]] = {}
    #: The bundled profile used when the URL names none.
    default_profile: ClassVar[str]
    #: Capabilities known without connecting.
    supports_pause: ClassVar[bool] = True
    supports_incline: ClassVar[bool] = True
    reports_distance: ClassVar[bool] = True

    def __init__(self, url: DeviceUrl, profile: Profile, clock: Clock) -> None:
        self.url = url
        self.profile = profile
        self.clock = clock
        self.name = str(url)
        self.latest: Telemetry | None = None
        self._listeners: list[ReportListener] = []
        self._gate = Gate()
        self._procedures: set[asyncio.Future[None]] = set()
        # The command budget (_procedure): one timer, left armed from command to command (a
        # timer armed and cancelled per command was a measurable share of a write's cost).
        # When it fires, it expires the procedure running then if that one's deadline has
        # come, else re-arms for it.
        self._budget_timer: asyncio.TimerHandle | None = None
        self._budget_timer_at = math.inf
        self._budget_task: asyncio.Task[None] | None = None
        self._budget_deadline = math.inf
        self._budget_expired: asyncio.Task[None] | None = None

    @classmethod
    def from_url(cls, url: DeviceUrl, *, clock: Clock, profile: Profile | None = None) -> Self:
        """Build an unconnected driver; ``?profile=NAME`` in the URL picks a bundled profile."""
        if profile is None:
            profile = get_profile(url.options.get("profile", cls.default_profile))
        return cls(url, profile, clock)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """Valid once connected."""

    @property
    @abc.abstractmethod
    def connected(self) -> bool: ...

    @abc.abstractmethod
    async def connect(self) -> None: ...

    async def close(self) -> None:
        """Release the link. Does not stop the belt: the session does that first.

        A procedure still on the wire (its caller gone) is abandoned here, not before.
        """
        for procedure in list(self._procedures):
            procedure.cancel()
        for procedure in list(self._procedures):
            with contextlib.suppress(BaseException):
                await procedure
        if self._budget_timer is not None:
            self._budget_timer.cancel()
            self._budget_timer, self._budget_timer_at = None, math.inf
        await self._do_close()

    @abc.abstractmethod
    async def _do_close(self) -> None: ...

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- commands (values already governed and quantized) -------------------------------------
    #
    # The python-can way: the public methods live here, so every driver behaves the same at
    # the edges (link check, one procedure on the wire at a time, STOP ahead of the queue, the
    # time budget, and the error each failure becomes); a driver writes only ``_do_...``.

    @property
    def link_up(self) -> bool:
        """Whether a command can go out now (a driver that reconnects says so here)."""
        return self.connected

    @property
    def identity(self) -> str | None:
        """Which machine this is (serial number, device information, console ID), read from
        the machine itself; None where the protocol cannot tell one machine from another.
        A session resumes after a reconnect on its own only if this is known and unchanged."""
        return None

    @property
    def reports_belt(self) -> bool:
        """Whether the machine tells what its belt does (speed, stopped); some cannot."""
        return True

    @property
    def command_timeout_s(self) -> float:
        """How long one command may take, from the wire's turn to its answer."""
        return self.profile.confirm.command_timeout_s

    @property
    def busy(self) -> bool:
        """A procedure is on the wire (answer not in yet, even if its caller gave up)."""
        return self._gate.held

    async def start(self) -> None:
        await self._issue(Command.START, self._do_start)

    async def pause(self) -> None:
        await self._issue(Command.PAUSE, self._do_pause)

    async def stop(self) -> None:
        """Stop the belt. Returns when the machine accepted it or said it is already stopped.

        A stop never goes out while another procedure is on the wire: it waits for that
        answer (or that procedure's timeout), then goes before anything else queued.
        """
        await self._issue(Command.STOP, self._do_stop)

    async def set_speed(self, speed: Quantity) -> None:
        await self._issue(Command.SET_SPEED, lambda: self._do_set_speed(speed))

    async def set_incline(self, incline: Quantity) -> None:
        await self._issue(Command.SET_INCLINE, lambda: self._do_set_incline(incline))

    @abc.abstractmethod
    async def _do_start(self) -> None: ...

    @abc.abstractmethod
    async def _do_pause(self) -> None: ...

    @abc.abstractmethod
    async def _do_stop(self) -> None:
        """Return normally for "stopped" and for "already stopped" answers alike."""

    @abc.abstractmethod
    async def _do_set_speed(self, speed: Quantity) -> None: ...

    @abc.abstractmethod
    async def _do_set_incline(self, incline: Quantity) -> None: ...

    async def _issue(self, command: Command, action: Callable[[], Awaitable[None]]) -> None:
        if not self.link_up:
            raise LinkLost(f"{command}: the link to {self.name} is down; nothing was sent")
        # The procedure runs as its own task: a caller that is cancelled (the session ending,
        # a second Ctrl-C) leaves a procedure already on the wire to finish there, holding the
        # gate, so nothing is ever written into a procedure whose answer is still due. One
        # still waiting for its turn is dropped: nothing of it was sent, and its caller is gone.
        loop = asyncio.get_running_loop()
        # The caller waits on ``outcome``, which the procedure settles itself as it ends: one
        # loop turn from the answer to the caller, as for a bare client's write (awaiting the
        # task through asyncio.shield costs two more). Cancelling the caller cancels only
        # ``outcome``, never the procedure.
        outcome: asyncio.Future[None] = loop.create_future()
        on_wire = _OnWire()
        # Started eagerly: with the gate free, the write goes out in this very step of the
        # loop, as a bare client's would, not one loop turn later.
        procedure = asyncio.Task(
            self._procedure(command, action, on_wire, outcome), loop=loop, eager_start=True
        )
        if not procedure.done():
            self._procedures.add(procedure)  # it discards itself as it ends
        try:
            await outcome
        except asyncio.CancelledError:
            if not on_wire.sent and not procedure.done():
                procedure.cancel()
            raise

    async def _procedure(
        self,
        command: Command,
        action: Callable[[], Awaitable[None]],
        on_wire: _OnWire,
        outcome: asyncio.Future[None],
    ) -> None:
        """Run ``action`` in its turn, within the profile's command budget (else
        :class:`CommandTimeout`), and settle ``outcome`` with how it ended (a caller that gave
        up has cancelled ``outcome`` and does not want it)."""
        gate = self._gate
        task = asyncio.current_task()
        assert task is not None
        try:
            if not gate.take():
                await gate.wait(first=command is Command.STOP)
            try:
                if not self.link_up:
                    raise LinkLost(f"{command}: the link to {self.name} is down; nothing was sent")
                on_wire.sent = True
                # What asyncio.timeout does, with the one budget timer and no context manager.
                budget = self.command_timeout_s
                deadline = task.get_loop().time() + budget
                self._budget_task, self._budget_deadline = task, deadline
                if deadline < self._budget_timer_at:
                    self._arm_budget(deadline)
                try:
                    await action()
                except asyncio.CancelledError:
                    # Ours only if nobody else asked to cancel the procedure as well (close()).
                    if self._budget_expired is task and task.uncancel() == 0:
                        raise CommandTimeout(command, budget) from None
                    raise
                finally:
                    self._budget_task = self._budget_expired = None
            finally:
                gate.release()
        except asyncio.CancelledError:
            outcome.cancel()
            raise
        except Exception as err:  # handed to the caller, who raises it
            if not outcome.done():
                outcome.set_exception(err)
        else:
            if not outcome.done():
                outcome.set_result(None)
        finally:
            self._procedures.discard(task)

    def _arm_budget(self, at: float) -> None:
        if self._budget_timer is not None:
            self._budget_timer.cancel()
        self._budget_timer = asyncio.get_running_loop().call_at(at, self._budget_due)
        self._budget_timer_at = at

    def _budget_due(self) -> None:
        """The budget timer fired: expire the procedure whose deadline this is, re-arm for a
        later one, or rest until the next command."""
        armed_at = self._budget_timer_at
        self._budget_timer, self._budget_timer_at = None, math.inf
        task = self._budget_task
        if task is None:
            return
        if self._budget_deadline <= armed_at:
            self._budget_expired = task
            task.cancel()
        else:
            self._arm_budget(self._budget_deadline)

    # -- reports ------------------------------------------------------------------------------

    def subscribe(self, listener: ReportListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def publish(self, report: Report) -> None:
        if isinstance(report, Telemetry):
            self.latest = report
        for listener in list(self._listeners):
            listener(report)


class _OnWire:
    """Whether a procedure reached the wire (a flag the caller reads if it is cancelled)."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False


class Gate:
    """One holder at a time; a waiter asking to go first overtakes the others.

    ``take`` is the free gate's path, without a coroutine: it is every command's path.
    """

    def __init__(self) -> None:
        self.held = False
        self._waiters: collections.deque[tuple[bool, asyncio.Future[None]]] = collections.deque()

    def take(self) -> bool:
        """Hold the gate now if nobody holds it or waits for it."""
        if self.held or self._waiters:
            return False
        self.held = True
        return True

    async def wait(self, *, first: bool) -> None:
        """Wait for the turn (``first``: ahead of every other waiter); the gate is then held."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (first, waiter)
        if first:
            self._waiters.appendleft(entry)
        else:
            self._waiters.append(entry)
        try:
            await waiter
        except BaseException:
            if entry in self._waiters:
                self._waiters.remove(entry)
            elif waiter.done() and not waiter.cancelled():
                self.release()  # handed the turn just as we were cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiters:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # held stays True: the turn passes straight on
                return
        self.held = False
