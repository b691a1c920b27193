"""``sim://`` — the simulated treadmill, in-process.

Grammar::

    sim://[?profile=NAME][&record=PATH][&faults=PLAN|@FILE][&speed_needs_running=BOOL]
          [&accel=KMH_PER_S][&decel=KMH_PER_S][&link=inprocess|ble][&personality=NAME]
          [&quirks=NAME,...]

``profile`` picks a bundled device profile whose ranges the simulated machine takes on
(default ``simulator``); ``record`` appends every command the machine receives, and its state
after it, to a JSON-lines file; ``faults`` injects faults (a plan such as
``drop@30+10,stale@60`` or ``@scenario.toml``; grammar in :mod:`retrotread_sim.faults`); the
rest shape the simulated belt. ``link=ble`` serves the machine as an FTMS peripheral on an
in-process radio and reaches it with the ``ble://`` driver, through pyftms and bleak
(:class:`~retrotread.drivers.sim_ble.SimBleDriver`); ``personality`` picks which FTMS machine
it plays there (``strict``, ``lenient``, ``pause-first``; default: the profile's, else lenient).

The simulator (``retrotread_sim``) is a separate distribution with its own model of the
machine. Two drivers reach it, both :class:`SimulatorDriver`: :class:`SimDriver` is the
in-process *link*, calling the machine's own API the way a protocol front end would and turning
its refusals into :class:`~retrotread.errors.CommandRejected`; ``SimBleDriver`` goes over BLE.
:data:`SIM`, what the registry opens for ``sim://``, picks one by ``link=``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from retrotread.clock import Clock, Timer
from retrotread.drivers.base import (
    BeltStatus,
    Capabilities,
    MachineEvent,
    MachineEventKind,
    Range,
    Telemetry,
    Treadmill,
)
from retrotread.drivers.url import DeviceUrl
from retrotread.errors import CommandRejected, DeviceError, DeviceUrlError, LinkLost, Rejection
from retrotread.profiles import Profile
from retrotread.units import Increment, Quantity, Unit, kmh, percent
from retrotread_sim import MachineSpec, Refusal, SimRefused, SimTreadmill, StatusEvent, StatusKind
from retrotread_sim.faults import (
    CommandRefused,
    FaultPlan,
    FaultPlanError,
    LinkDown,
    ResultCode,
    SimLink,
    run_console_faults,
)

TELEMETRY_INTERVAL_S = 1.0

URL_GRAMMAR = (
    "sim://[?profile=NAME][&record=PATH][&faults=PLAN|@FILE][&speed_needs_running=BOOL]"
    "[&accel=KMH_PER_S][&decel=KMH_PER_S][&link=inprocess|ble][&personality=NAME]"
    "[&quirks=NAME,...]"
)
URL_OPTIONS = {
    "profile": "device profile whose ranges the machine takes on (simulator)",
    "record": "append every command the machine receives to this JSON-lines file",
    "faults": "inject faults: a plan like drop@30+10,stale@60 or @scenario.toml",
    "speed_needs_running": "the machine accepts speed only while the belt moves",
    "accel": "belt acceleration in km/h per second (2.0)",
    "decel": "belt deceleration in km/h per second (3.0)",
    "link": "inprocess (default), or ble: over FTMS, pyftms and bleak, in-process",
    "personality": "with link=ble, the FTMS machine played: lenient, strict, pause-first",
    "quirks": "with link=ble, quirks of real machines played too (docs/ftms.md)",
}
LINKS = ("inprocess", "ble")

_REJECTIONS = {
    Refusal.OUT_OF_RANGE: Rejection.OUT_OF_RANGE,
    Refusal.SAFETY_KEY_PULLED: Rejection.SAFETY_KEY,
    Refusal.NOT_RUNNING: Rejection.NOT_READY,
    Refusal.REFUSED: Rejection.FAILED,
}

_RESULT_CODES = {
    ResultCode.NOT_SUPPORTED: Rejection.NOT_SUPPORTED,
    ResultCode.INVALID_PARAMETER: Rejection.INVALID_PARAMETER,
    ResultCode.FAILED: Rejection.FAILED,
    ResultCode.NOT_PERMITTED: Rejection.NOT_PERMITTED,
}

_STATUS = {
    StatusKind.STOPPED_BY_USER: MachineEventKind.STOPPED_AT_CONSOLE,
    StatusKind.PAUSED_BY_USER: MachineEventKind.PAUSED_AT_CONSOLE,
    StatusKind.STARTED_BY_USER: MachineEventKind.STARTED_AT_CONSOLE,
    StatusKind.STOPPED_BY_SAFETY_KEY: MachineEventKind.SAFETY_KEY,
    StatusKind.TARGET_SPEED_CHANGED: MachineEventKind.TARGET_SPEED_CHANGED,
    StatusKind.TARGET_INCLINE_CHANGED: MachineEventKind.TARGET_INCLINE_CHANGED,
    StatusKind.CONTROL_LOST: MachineEventKind.CONTROL_LOST,
    StatusKind.RESET: MachineEventKind.RESET,
}


def link_option(url: DeviceUrl, grammar: str) -> str:
    """``?link=``: how the simulator is reached (in-process calls, or BLE)."""
    link = url.options.get("link", LINKS[0])
    if link not in LINKS:
        raise DeviceUrlError(
            f"{url.text!r}: link={link!r} must be one of {', '.join(LINKS)}\n  grammar: {grammar}"
        )
    return link


def fault_plan(url: DeviceUrl, grammar: str) -> FaultPlan:
    text = url.options.get("faults", "")
    try:
        if text.startswith("@"):
            return FaultPlan.load(Path(text[1:]))
        return FaultPlan.parse(text)
    except (FaultPlanError, OSError, KeyError) as err:
        raise DeviceUrlError(f"{url.text!r}: faults: {err}\n  grammar: {grammar}") from err


def spec_from_profile(profile: Profile, url: DeviceUrl, grammar: str) -> MachineSpec:
    speed, incline = profile.speed, profile.incline
    spec = MachineSpec(
        speed_min_kmh=speed.min.kmh,
        speed_max_kmh=speed.max.kmh,
        speed_increment_kmh=float(Quantity(speed.increment.size, speed.increment.unit).kmh),
        incline_min_pct=float(incline.min.value),
        incline_max_pct=float(incline.max.value),
        incline_increment_pct=float(incline.increment.size),
    )
    spec = spec.with_options(speed_field_mph=profile.quirks.speed_field_mph)
    return spec.with_options(
        accel_kmh_per_s=url.number("accel", grammar, spec.accel_kmh_per_s),
        decel_kmh_per_s=url.number("decel", grammar, spec.decel_kmh_per_s),
        speed_needs_running=url.flag("speed_needs_running", grammar, spec.speed_needs_running),
    )


@functools.lru_cache(maxsize=4096)
def _speed_reading(speed_kmh: float) -> Quantity:
    """The belt's speed as a machine reports it (0.01 km/h). Cached: a belt at a steady speed
    repeats the same reading every second, and an exact rational from text costs ~10 µs."""
    return kmh(f"{speed_kmh:.2f}")


@functools.lru_cache(maxsize=4096)
def _incline_reading(incline_pct: float) -> Quantity:
    """The incline as a machine reports it (0.1 %), cached the same way."""
    return percent(f"{incline_pct:.1f}")


class SimulatorDriver(Treadmill):
    """What both ways of reaching the simulator share: the URL, the machine built from the
    profile (or given), its fault plan and the faults played at its console."""

    scheme: ClassVar[str] = "sim"
    url_grammar: ClassVar[str] = URL_GRAMMAR
    url_options: ClassVar[dict[str, str]] = URL_OPTIONS
    default_profile: ClassVar[str] = "simulator"

    def __init__(
        self,
        url: DeviceUrl,
        profile: Profile,
        clock: Clock,
        machine: SimTreadmill | None = None,
    ) -> None:
        super().__init__(url, profile, clock)
        self.plan = fault_plan(url, self.url_grammar)
        self._spec = self.plan.spec(spec_from_profile(profile, url, self.url_grammar))
        self._given = machine
        self.machine: SimTreadmill | None = machine
        self._tasks: list[asyncio.Task[None]] = []
        self.name = f"simulator ({profile.name})"

    @property
    def capabilities(self) -> Capabilities:
        """The machine's ranges, as its spec (from the profile and the URL) says."""
        spec = self._spec
        return Capabilities(
            speed=Range(
                kmh(spec.speed_min_kmh),
                kmh(spec.speed_max_kmh),
                Increment.of(spec.speed_increment_kmh, Unit.KMH),
            ),
            incline=Range(
                percent(spec.incline_min_pct),
                percent(spec.incline_max_pct),
                Increment.of(spec.incline_increment_pct, Unit.PERCENT),
            ),
        )

    def _open_machine(self) -> SimTreadmill:
        """The machine, built on the first connect unless one was given."""
        if self.machine is None:
            record = self.url.options.get("record")
            self.machine = SimTreadmill(self._spec, self.clock, Path(record) if record else None)
        self._spec = self.machine.spec
        return self.machine

    def _play_console_faults(self, machine: SimTreadmill) -> None:
        console = run_console_faults(machine, self.plan, self.clock)
        self._tasks.append(asyncio.create_task(console, name="sim-console"))

    async def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def _close_machine(self) -> None:
        """Close the machine if this driver built it (a given one belongs to the caller)."""
        if self.machine is not None and self._given is None:
            self.machine.close()


class SimDriver(SimulatorDriver):
    """The simulator reached in-process: ``sim://`` (``link=inprocess``, the default)."""

    def __init__(
        self,
        url: DeviceUrl,
        profile: Profile,
        clock: Clock,
        machine: SimTreadmill | None = None,
    ) -> None:
        super().__init__(url, profile, clock, machine)
        if link_option(url, self.url_grammar) != "inprocess":
            raise DeviceUrlError(
                f"{url.text!r}: the in-process simulator takes link=inprocess; open link=ble "
                f"with open_treadmill (SimBleDriver)\n  grammar: {self.url_grammar}"
            )
        if "personality" in url.options:
            raise DeviceUrlError(
                f"{url.text!r}: personality= is the FTMS machine played over link=ble\n"
                f"  grammar: {self.url_grammar}"
            )
        self.link: SimLink | None = None
        self._telemetry: Timer | None = None
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def identity(self) -> str | None:
        # The in-process machine is this very object: its identity cannot change under us.
        return None if self.machine is None else f"simulator #{id(self.machine):x}"

    @property
    def connected(self) -> bool:
        return self._telemetry is not None

    async def connect(self) -> None:
        machine = self._open_machine()
        self.link = SimLink(machine, self.plan, self.clock)
        self.link.on_link_change(self._on_link_change)
        self._unsubscribe = machine.subscribe(self._on_status)
        self._report_telemetry(self.clock.now())
        self._tasks.append(asyncio.create_task(self.link.watch_link(), name="sim-link"))
        self._play_console_faults(machine)

    async def _do_close(self) -> None:
        await self._cancel_tasks()
        if self._telemetry is not None:
            self._telemetry.cancel()
            self._telemetry = None
        if self._unsubscribe:
            self._unsubscribe()
            self._unsubscribe = None
        self._close_machine()

    # -- commands -----------------------------------------------------------------------------

    def _machine(self) -> SimTreadmill:
        if self.machine is None or not self.connected:
            raise DeviceError("the simulator is not connected")
        return self.machine

    async def _do_start(self) -> None:
        await self._call("start", self._machine().start)

    async def _do_pause(self) -> None:
        await self._call("pause", self._machine().pause)

    async def _do_stop(self) -> None:
        await self._call("stop", self._machine().stop)

    async def _do_set_speed(self, speed: Quantity) -> None:
        machine = self._machine()
        # The in-process "wire" carries km/h, or mph for a machine known to read it so.
        unit = Unit.MPH if self.profile.quirks.speed_field_mph else Unit.KMH
        value = float(speed.to(unit).value)
        await self._call("set-speed", lambda: machine.set_target_speed(value))

    async def _do_set_incline(self, incline: Quantity) -> None:
        machine = self._machine()
        value = float(incline.value)
        await self._call("set-incline", lambda: machine.set_target_incline(value))

    async def _call(self, command: str, action: Callable[[], None]) -> None:
        assert self.link is not None
        try:
            await self.link.command(command, action)
        except SimRefused as err:
            raise CommandRejected(command, _REJECTIONS[err.reason], err.detail) from err
        except CommandRefused as err:
            raise CommandRejected(command, _RESULT_CODES[err.code]) from err
        except LinkDown as err:
            raise LinkLost(f"{command}: the link to the simulator is down") from err
        self._publish_snapshot()  # a real machine's next notification shows the new state

    # -- reports ------------------------------------------------------------------------------

    def _publish_snapshot(self) -> None:  # the whole-session rehearsal's hot path
        assert self.link is not None
        snap = self.link.telemetry()
        if snap is None:  # stale telemetry, or the link is down: nothing arrives
            return
        belt = {
            "running": BeltStatus.RUNNING,
            "paused": BeltStatus.PAUSED,
        }.get(snap.state.value, BeltStatus.STOPPED)
        self.publish(
            Telemetry(
                at=self.clock.now(),
                speed=_speed_reading(snap.speed_kmh),
                incline=_incline_reading(snap.incline_pct),
                distance_m=snap.distance_m,
                elapsed_s=snap.elapsed_s,
                belt=belt,
            )
        )

    def _report_telemetry(self, at: float) -> None:
        """Send a record now and arm the next, one interval on: a timer rather than a task,
        because a rehearsal does this every second of its program."""
        self._telemetry = self.clock.call_at(
            at + TELEMETRY_INTERVAL_S, lambda: self._report_telemetry(at + TELEMETRY_INTERVAL_S)
        )
        self._publish_snapshot()

    def _on_link_change(self, up: bool) -> None:
        kind = MachineEventKind.LINK_RESTORED if up else MachineEventKind.LINK_LOST
        self.publish(MachineEvent(self.clock.now(), kind))

    def _on_status(self, event: StatusEvent) -> None:
        if self.link is not None and not self.link.up:
            return  # a dropped link carries no notifications
        kind = _STATUS[event.kind]
        value: Quantity | None = None
        if event.value is not None:
            value = kmh(event.value) if "speed" in event.kind.value else percent(event.value)
        self.publish(MachineEvent(self.clock.now(), kind, value))
