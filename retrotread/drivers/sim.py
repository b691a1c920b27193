"""``sim://`` — the simulated treadmill, in-process.

Grammar::

    sim://[?profile=NAME][&record=PATH][&speed_needs_running=BOOL][&accel=KMH_PER_S][&decel=KMH_PER_S]

``profile`` picks a bundled device profile whose ranges the simulated machine takes on
(default ``simulator``); ``record`` appends every command the machine receives, and its state
after it, to a JSON-lines file; the rest shape the simulated belt.

The simulator (``retrotread_sim``) is a separate distribution with its own model of the
machine. This driver is the in-process *link* to it: it calls the machine's own API the way a
protocol front end would, and turns its refusals into :class:`~retrotread.errors.CommandRejected`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from retrotread.clock import Clock
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
from retrotread.errors import CommandRejected, DeviceError, Rejection
from retrotread.profiles import Profile
from retrotread.units import Increment, Quantity, Unit, kmh, percent
from retrotread_sim import MachineSpec, Refusal, SimRefused, SimTreadmill, StatusEvent, StatusKind

TELEMETRY_INTERVAL_S = 1.0

_REJECTIONS = {
    Refusal.OUT_OF_RANGE: Rejection.OUT_OF_RANGE,
    Refusal.SAFETY_KEY_PULLED: Rejection.SAFETY_KEY,
    Refusal.NOT_RUNNING: Rejection.NOT_READY,
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
    return spec.with_options(
        accel_kmh_per_s=url.number("accel", grammar, spec.accel_kmh_per_s),
        decel_kmh_per_s=url.number("decel", grammar, spec.decel_kmh_per_s),
        speed_needs_running=url.flag("speed_needs_running", grammar, spec.speed_needs_running),
    )


class SimDriver(Treadmill):
    scheme: ClassVar[str] = "sim"
    url_grammar: ClassVar[str] = (
        "sim://[?profile=NAME][&record=PATH][&speed_needs_running=BOOL]"
        "[&accel=KMH_PER_S][&decel=KMH_PER_S]"
    )
    url_options: ClassVar[dict[str, str]] = {
        "profile": "bundled device profile whose ranges the machine takes on (simulator)",
        "record": "append every command the machine receives to this JSON-lines file",
        "speed_needs_running": "the machine accepts speed only while the belt moves",
        "accel": "belt acceleration in km/h per second (2.0)",
        "decel": "belt deceleration in km/h per second (3.0)",
    }
    default_profile: ClassVar[str] = "simulator"

    def __init__(
        self,
        url: DeviceUrl,
        profile: Profile,
        clock: Clock,
        machine: SimTreadmill | None = None,
    ) -> None:
        super().__init__(url, profile, clock)
        self._spec = spec_from_profile(profile, url, self.url_grammar)
        self._given = machine
        self.machine: SimTreadmill | None = machine
        self._telemetry: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.name = f"simulator ({profile.name})"

    @property
    def capabilities(self) -> Capabilities:
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

    @property
    def connected(self) -> bool:
        return self._telemetry is not None and not self._telemetry.done()

    async def connect(self) -> None:
        if self.machine is None:
            record = self.url.options.get("record")
            self.machine = SimTreadmill(self._spec, self.clock, Path(record) if record else None)
        self._spec = self.machine.spec
        self._unsubscribe = self.machine.subscribe(self._on_status)
        self._telemetry = asyncio.create_task(self._report_telemetry(), name="sim-telemetry")

    async def close(self) -> None:
        if self._telemetry:
            self._telemetry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._telemetry
        if self._unsubscribe:
            self._unsubscribe()
            self._unsubscribe = None
        if self.machine is not None and self._given is None:
            self.machine.close()

    # -- commands -----------------------------------------------------------------------------

    def _machine(self) -> SimTreadmill:
        if self.machine is None or not self.connected:
            raise DeviceError("the simulator is not connected")
        return self.machine

    async def start(self) -> None:
        self._call("start", self._machine().start)

    async def pause(self) -> None:
        self._call("pause", self._machine().pause)

    async def stop(self) -> None:
        self._call("stop", self._machine().stop)

    async def set_speed(self, speed: Quantity) -> None:
        machine = self._machine()
        self._call("set speed", lambda: machine.set_target_speed(float(speed.to(Unit.KMH).value)))

    async def set_incline(self, incline: Quantity) -> None:
        machine = self._machine()
        self._call("set incline", lambda: machine.set_target_incline(float(incline.value)))

    def _call(self, command: str, action: object) -> None:
        assert callable(action)
        try:
            action()
        except SimRefused as err:
            raise CommandRejected(command, _REJECTIONS[err.reason], err.detail) from err
        self._publish_snapshot()  # a real machine's next notification shows the new state

    # -- reports ------------------------------------------------------------------------------

    def _publish_snapshot(self) -> None:
        assert self.machine is not None
        snap = self.machine.snapshot()
        belt = {
            "running": BeltStatus.RUNNING,
            "paused": BeltStatus.PAUSED,
        }.get(snap.state.value, BeltStatus.STOPPED)
        self.publish(
            Telemetry(
                at=self.clock.now(),
                speed=kmh(round(snap.speed_kmh, 2)),
                incline=percent(round(snap.incline_pct, 1)),
                distance_m=snap.distance_m,
                elapsed_s=snap.elapsed_s,
                belt=belt,
            )
        )

    async def _report_telemetry(self) -> None:
        next_at = self.clock.now()
        while True:
            self._publish_snapshot()
            next_at += TELEMETRY_INTERVAL_S
            await self.clock.sleep_until(next_at)

    def _on_status(self, event: StatusEvent) -> None:
        kind = _STATUS[event.kind]
        value: Quantity | None = None
        if event.value is not None:
            value = kmh(event.value) if "speed" in event.kind.value else percent(event.value)
        self.publish(MachineEvent(self.clock.now(), kind, value))
