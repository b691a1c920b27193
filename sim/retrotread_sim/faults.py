"""Faults the simulated treadmill can inject, on every link it speaks.

A fault plan is a comma-separated list, given as ``sim://?faults=...`` (or ``--faults`` to
``retrotread-sim serve``), or a TOML scenario file with one ``[[fault]]`` table per item::

    ITEM    = NAME [":" COMMAND] ["=" VALUE] ["@" AT ["+" FOR]]
    NAME    = drop | reject | ignore | late | stale | freeze | safety-key | console-stop
            | console-pause | console-speed | garble | split | duplicate | slow-ramp | mph-field
            | silent | off-belt
    COMMAND = start | stop | pause | set-speed | set-incline | any
    AT, FOR = seconds on the simulator's clock (from when it was created)

Examples: ``drop@30+10`` (the link drops at 30 s and is back 10 s later), ``reject:set-speed=
invalid-parameter@20`` (the first speed command from 20 s on is refused with that code),
``ignore:set-speed@40`` (never answered), ``late:set-speed=2@40`` (answered 2 s late),
``stale@60`` (telemetry stops), ``freeze@60+30`` (telemetry repeats one record),
``safety-key@25``, ``console-stop@25``, ``console-pause@25``, ``console-speed=6.0@25`` (km/h),
``garble=0.01`` (serial byte error rate), ``split`` (split frames or notifications),
``duplicate`` (duplicated frames), ``slow-ramp=0.3`` (belt acceleration, km/h per s),
``mph-field`` (the machine reads the speed field as mph), ``silent@30+8`` (a serial console
that neither answers nor acts on anything it receives for 8 s, then answers again),
``off-belt@30+20`` (the walker steps off for 20 s: only a machine that counts walking time
notices, by freezing its elapsed time; FTMS quirk ``elapsed-walking-only``).

Machine-level faults act in :class:`SimLink` and :func:`run_console_faults`; link-level ones
(``garble``, ``split``, ``duplicate``, ``drop``) are read by each protocol front end.
"""

from __future__ import annotations

import asyncio
import enum
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrotread_sim.belt import MachineSpec, Refusal, SimTreadmill, Snapshot
from retrotread_sim.clock import SimClock

GRAMMAR = "NAME[:COMMAND][=VALUE][@AT[+FOR]], ... (see retrotread_sim.faults)"


class FaultKind(enum.StrEnum):
    DROP = "drop"
    REJECT = "reject"
    IGNORE = "ignore"
    LATE = "late"
    STALE = "stale"
    FREEZE = "freeze"
    SAFETY_KEY = "safety-key"
    CONSOLE_STOP = "console-stop"
    CONSOLE_PAUSE = "console-pause"
    CONSOLE_SPEED = "console-speed"
    GARBLE = "garble"
    SPLIT = "split"
    DUPLICATE = "duplicate"
    SLOW_RAMP = "slow-ramp"
    MPH_FIELD = "mph-field"
    SILENT = "silent"
    OFF_BELT = "off-belt"


class ResultCode(enum.StrEnum):
    """How a refused command is answered (FTMS result codes; serial links map them)."""

    NOT_SUPPORTED = "not-supported"
    INVALID_PARAMETER = "invalid-parameter"
    FAILED = "failed"
    NOT_PERMITTED = "not-permitted"


COMMANDS = ("start", "stop", "pause", "set-speed", "set-incline", "any")
ONE_SHOT = {FaultKind.REJECT, FaultKind.IGNORE, FaultKind.LATE}
CONSOLE = {
    FaultKind.SAFETY_KEY,
    FaultKind.CONSOLE_STOP,
    FaultKind.CONSOLE_PAUSE,
    FaultKind.CONSOLE_SPEED,
}


class FaultPlanError(ValueError):
    def __init__(self, item: str, problem: str) -> None:
        super().__init__(f"fault {item!r}: {problem}\n  grammar: {GRAMMAR}")


@dataclass
class Fault:
    kind: FaultKind
    command: str = "any"
    value: str | None = None
    at: float = 0.0
    duration: float | None = None  # None: until the end (or, for one-shot kinds, once)
    used: bool = False

    def active(self, now: float) -> bool:
        if now < self.at:
            return False
        return self.duration is None or now < self.at + self.duration

    def matches(self, command: str) -> bool:
        return self.command in ("any", command)


def _parse_item(item: str) -> Fault:
    text = item.strip()
    at, duration = 0.0, None
    if "@" in text:
        text, when = text.split("@", 1)
        when = when.replace(" ", "+")  # a "+" in a URL query arrives as a space
        try:
            if "+" in when:
                start, length = when.split("+", 1)
                at, duration = float(start), float(length)
            else:
                at = float(when)
        except ValueError:
            raise FaultPlanError(item, f"time {when!r} must be seconds like 30 or 30+10") from None
    value = None
    if "=" in text:
        text, value = text.split("=", 1)
    command = "any"
    if ":" in text:
        text, command = text.split(":", 1)
    try:
        kind = FaultKind(text)
    except ValueError:
        known = ", ".join(k.value for k in FaultKind)
        raise FaultPlanError(item, f"unknown fault {text!r}; known: {known}") from None
    if command not in COMMANDS:
        raise FaultPlanError(item, f"unknown command {command!r}; known: {', '.join(COMMANDS)}")
    if kind is FaultKind.REJECT:
        value = value or ResultCode.FAILED.value
        if value not in {c.value for c in ResultCode}:
            codes = ", ".join(c.value for c in ResultCode)
            raise FaultPlanError(item, f"unknown result code {value!r}; known: {codes}")
    needs_number = {
        FaultKind.LATE,
        FaultKind.GARBLE,
        FaultKind.SLOW_RAMP,
        FaultKind.CONSOLE_SPEED,
    }
    if kind in needs_number:
        try:
            float(value or "")
        except ValueError:
            raise FaultPlanError(item, f"{kind.value} needs a number: {kind.value}=N") from None
    if kind is FaultKind.DROP and duration is None:
        duration = 5.0
    if kind is FaultKind.SILENT and duration is None:
        duration = 8.0
    return Fault(kind, command, value, at, duration)


@dataclass
class FaultPlan:
    faults: list[Fault] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        return cls([_parse_item(item) for item in text.split(",") if item.strip()])

    @classmethod
    def load(cls, path: Path) -> FaultPlan:
        """A scenario file: ``[[fault]]`` tables with kind, command, value, at, for."""
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        items = []
        for table in data.get("fault", []):
            text = str(table["kind"])
            if "command" in table:
                text += f":{table['command']}"
            if "value" in table:
                text += f"={table['value']}"
            if "at" in table:
                text += f"@{table['at']}"
                if "for" in table:
                    text += f"+{table['for']}"
            items.append(_parse_item(text))
        return cls(items)

    def __bool__(self) -> bool:
        return bool(self.faults)

    def _first(self, kind: FaultKind) -> Fault | None:
        return next((f for f in self.faults if f.kind is kind), None)

    # -- machine-level ------------------------------------------------------------------------

    def spec(self, spec: MachineSpec) -> MachineSpec:
        """The machine as the plan shapes it (a slow belt, a speed field read as mph)."""
        slow = self._first(FaultKind.SLOW_RAMP)
        if slow and slow.value:
            spec = spec.with_options(accel_kmh_per_s=float(slow.value))
        if self.speed_field_mph:
            spec = spec.with_options(speed_field_mph=True)
        return spec

    @property
    def speed_field_mph(self) -> bool:
        return self._first(FaultKind.MPH_FIELD) is not None

    def command_fault(
        self, command: str, now: float, kinds: frozenset[FaultKind] | set[FaultKind] = ONE_SHOT
    ) -> Fault | None:
        """The fault (reject / ignore / late) that hits this command now, used up if one-shot."""
        for fault in self.faults:
            if fault.kind in kinds and fault.matches(command) and fault.active(now):
                if fault.duration is None and fault.used:
                    continue
                fault.used = True
                return fault
        return None

    def telemetry_mode(self, now: float) -> FaultKind | None:
        for fault in self.faults:
            if fault.kind in (FaultKind.STALE, FaultKind.FREEZE) and fault.active(now):
                return fault.kind
        return None

    # -- link-level ---------------------------------------------------------------------------

    def link_down(self, now: float) -> bool:
        return any(f.kind is FaultKind.DROP and f.active(now) for f in self.faults)

    def silent(self, now: float) -> bool:
        """Whether the console neither hears nor answers anything now (``silent@AT+FOR``)."""
        return any(f.kind is FaultKind.SILENT and f.active(now) for f in self.faults)

    def off_belt(self, now: float) -> bool:
        """Whether the walker is off the belt now (``off-belt@AT+FOR``)."""
        return any(f.kind is FaultKind.OFF_BELT and f.active(now) for f in self.faults)

    def link_changes(self) -> list[float]:
        """Times at which the link goes down or comes back."""
        times: list[float] = []
        for f in self.faults:
            if f.kind is FaultKind.DROP:
                times.append(f.at)
                if f.duration is not None:
                    times.append(f.at + f.duration)
        return sorted(times)

    @property
    def garble_rate(self) -> float:
        fault = self._first(FaultKind.GARBLE)
        return float(fault.value) if fault and fault.value else 0.0

    @property
    def split(self) -> bool:
        return self._first(FaultKind.SPLIT) is not None

    @property
    def duplicate(self) -> bool:
        return self._first(FaultKind.DUPLICATE) is not None

    def console_faults(self) -> list[Fault]:
        return sorted((f for f in self.faults if f.kind in CONSOLE), key=lambda f: f.at)


def refusal_hook(
    plan: FaultPlan, machine: SimTreadmill
) -> Callable[[str], tuple[Refusal, str] | None]:
    """A :attr:`SimTreadmill.refusal_hook` that refuses commands as the plan's ``reject`` says."""

    def hook(command: str) -> tuple[Refusal, str] | None:
        elapsed = machine.clock.now() - machine.created_at
        fault = plan.command_fault(command, elapsed, {FaultKind.REJECT})
        if fault is None:
            return None
        code = fault.value or ResultCode.FAILED.value
        reason = Refusal.OUT_OF_RANGE if code == ResultCode.INVALID_PARAMETER else Refusal.REFUSED
        return reason, f"refused by fault plan: {code}"

    return hook


async def run_console_faults(machine: SimTreadmill, plan: FaultPlan, clock: SimClock) -> None:
    """Press the console's buttons (and pull the key) when the plan says; run as a task."""
    origin = machine.created_at
    for fault in plan.console_faults():
        await clock.sleep_until(origin + fault.at)
        if fault.kind is FaultKind.SAFETY_KEY:
            machine.pull_safety_key()
        elif fault.kind is FaultKind.CONSOLE_STOP:
            machine.console_stop()
        elif fault.kind is FaultKind.CONSOLE_PAUSE:
            machine.console_pause()
        elif fault.kind is FaultKind.CONSOLE_SPEED:
            machine.console_set_speed(float(fault.value or 0))


class LinkDown(Exception):
    """The simulated link is down: nothing gets through."""


class CommandRefused(Exception):
    def __init__(self, command: str, code: ResultCode) -> None:
        super().__init__(f"{command}: {code.value}")
        self.command = command
        self.code = code


class SimLink:
    """The in-process link to the machine, with the plan's faults applied.

    It is what a protocol front end is for the wire: commands go through :meth:`command`,
    telemetry comes from :meth:`telemetry`, and link state changes reach subscribers.
    """

    def __init__(self, machine: SimTreadmill, plan: FaultPlan, clock: SimClock) -> None:
        self.machine = machine
        self.plan = plan
        self.clock = clock
        self._frozen: Snapshot | None = None
        self._link_listeners: list[Callable[[bool], None]] = []

    def elapsed(self) -> float:
        return self.clock.now() - self.machine.created_at

    @property
    def up(self) -> bool:
        return not self.plan.link_down(self.elapsed())

    def on_link_change(self, listener: Callable[[bool], None]) -> None:
        self._link_listeners.append(listener)

    async def watch_link(self) -> None:
        """Tell subscribers when the link drops and returns; run as a task."""
        origin = self.machine.created_at
        for when in self.plan.link_changes():
            await self.clock.sleep_until(origin + when)
            for listener in list(self._link_listeners):
                listener(self.up)

    async def command(self, name: str, action: Callable[[], None]) -> None:
        if not self.up:
            raise LinkDown(name)
        fault = self.plan.command_fault(name, self.elapsed())
        if fault is not None:
            if fault.kind is FaultKind.IGNORE:
                self.machine.note("link", name, f"ignored by fault plan ({fault.command})")
                await asyncio.Future()  # never answered
            if fault.kind is FaultKind.LATE:
                await self.clock.sleep_until(self.clock.now() + float(fault.value or 0))
            if fault.kind is FaultKind.REJECT:
                code = ResultCode(fault.value or ResultCode.FAILED.value)
                self.machine.note("link", name, f"refused by fault plan: {code.value}")
                raise CommandRefused(name, code)
        action()

    def telemetry(self) -> Snapshot | None:
        """The record the machine would send now (None while stale or the link is down)."""
        if not self.up:
            return None
        mode = self.plan.telemetry_mode(self.elapsed())
        if mode is FaultKind.STALE:
            return None
        snapshot = self.machine.snapshot()
        if mode is FaultKind.FREEZE:
            self._frozen = self._frozen or snapshot
            return self._frozen
        self._frozen = None
        return snapshot
