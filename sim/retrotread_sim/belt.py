"""The simulated treadmill: belt physics and the machine's state machine.

This is the machine itself, before any protocol. Protocol front ends (the in-process link,
the FTMS GATT server, the CSAFE and Trackmaster responders) translate their wire formats into
calls on :class:`SimTreadmill` and report what it says back.

Two kinds of caller exist, as on a real treadmill:

* the *link* — a controller talking through a protocol (``start``, ``set_target_speed`` ...);
* the *console* — a person at the machine (``console_stop``, ``pull_safety_key`` ...).

The physics is evaluated lazily: every call first advances the belt from the last time it was
looked at to ``clock.now()``, with linear acceleration and deceleration limits and an incline
motor rate, integrating distance exactly over each piecewise-linear stretch.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO

from retrotread_sim.clock import LoopClock, SimClock

KMH_PER_MPH = 1.609344


#: A belt slower than this reads zero on every link (FTMS and the in-process link carry
#: 0.01 km/h, CSAFE and Trackmaster 0.1 mph or coarser): the last moments of a deceleration
#: are "stopped" to any controller, and so to the journal's ``stopped``.
READS_ZERO_BELOW_KMH = 0.005


class BeltState(enum.StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    SAFETY_KEY = "safety-key"


class Refusal(enum.Enum):
    """Why the machine refused a request from the link."""

    OUT_OF_RANGE = "out of range"
    SAFETY_KEY_PULLED = "safety key pulled"
    NOT_RUNNING = "belt not moving"
    REFUSED = "refused"  # for no reason the protocol can say (a fault plan's rejection)


class SimRefused(Exception):
    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class StatusKind(enum.StrEnum):
    """What the machine announces on its own (FTMS Machine Status, CSAFE state changes)."""

    RESET = "reset"
    STOPPED_BY_USER = "stopped-by-user"
    PAUSED_BY_USER = "paused-by-user"
    STOPPED_BY_SAFETY_KEY = "stopped-by-safety-key"
    STARTED_BY_USER = "started-by-user"
    TARGET_SPEED_CHANGED = "target-speed-changed"
    TARGET_INCLINE_CHANGED = "target-incline-changed"
    CONTROL_LOST = "control-lost"


@dataclass(frozen=True)
class StatusEvent:
    kind: StatusKind
    time: float
    value: float | None = None


@dataclass(frozen=True)
class MachineSpec:
    """What the simulated machine can do. Speeds in km/h, incline in percent."""

    name: str = "RetroTread SIM-1"
    manufacturer: str = "retrotread-sim"
    model: str = "SIM-1"
    speed_min_kmh: float = 0.8
    speed_max_kmh: float = 19.3
    speed_increment_kmh: float = 0.01
    incline_min_pct: float = 0.0
    incline_max_pct: float = 15.0
    incline_increment_pct: float = 0.1
    accel_kmh_per_s: float = 2.0
    decel_kmh_per_s: float = 3.0
    incline_pct_per_s: float = 0.5
    # Some machines accept a target speed only once the belt is moving.
    speed_needs_running: bool = False
    # Some machines read the speed field as mph although the protocol says km/h: the value
    # a link sends as km/h then runs the belt that many mph (it reports its true speed).
    speed_field_mph: bool = False

    def with_options(self, **changes: float | bool | str) -> MachineSpec:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Snapshot:
    """The machine as it is at one instant."""

    time: float
    state: BeltState
    speed_kmh: float
    incline_pct: float
    target_speed_kmh: float
    target_incline_pct: float
    distance_m: float
    elapsed_s: float


@dataclass(frozen=True)
class CommandRecord:
    """One request as it reached the machine, and what the machine answered."""

    time: float
    source: str  # "link" or "console"
    name: str
    value: float | None
    accepted: bool
    detail: str = ""


@dataclass
class _Motion:
    speed_kmh: float = 0.0
    incline_pct: float = 0.0
    distance_m: float = 0.0
    elapsed_s: float = 0.0


def _ramp(current: float, target: float, up: float, down: float, dt: float) -> tuple[float, float]:
    """Move ``current`` toward ``target`` for ``dt`` s; return (value, integral over dt)."""
    if dt <= 0:
        return current, 0.0
    if current == target:
        return current, current * dt
    rate = up if target > current else down
    if rate <= 0:  # no limit configured: the value jumps
        return target, target * dt
    reach = abs(target - current) / rate
    if dt <= reach:
        end = current + (rate * dt if target > current else -rate * dt)
        return end, (current + end) / 2 * dt
    return target, (current + target) / 2 * reach + target * (dt - reach)


class SimTreadmill:
    """A treadmill with a belt, an incline motor, a console and a safety key."""

    def __init__(
        self,
        spec: MachineSpec | None = None,
        clock: SimClock | None = None,
        journal: Path | None = None,
    ) -> None:
        self.spec = spec or MachineSpec()
        self.clock: SimClock = clock or LoopClock()
        self.state = BeltState.IDLE
        self.target_speed_kmh = 0.0
        self.target_incline_pct = 0.0
        self.commands: list[CommandRecord] = []
        #: Asked before each link command; a (reason, detail) answer refuses it. Fault plans
        #: use it so that every protocol front end reports the refusal in its own words.
        self.refusal_hook: Callable[[str], tuple[Refusal, str] | None] | None = None
        self._listeners: list[Callable[[StatusEvent], None]] = []
        self._motion = _Motion()
        self._last = self.clock.now()
        self.created_at = self._last
        self._journal: IO[str] | None = journal.open("a", encoding="utf-8") if journal else None

    # -- observation -------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        self._advance()
        m = self._motion
        return Snapshot(
            time=self._last,
            state=self.state,
            speed_kmh=round(m.speed_kmh, 6),
            incline_pct=round(m.incline_pct, 6),
            target_speed_kmh=self.target_speed_kmh,
            target_incline_pct=self.target_incline_pct,
            distance_m=m.distance_m,
            elapsed_s=m.elapsed_s,
        )

    def subscribe(self, listener: Callable[[StatusEvent], None]) -> Callable[[], None]:
        """Call ``listener`` with every status event; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @property
    def belt_stopped(self) -> bool:
        """Stopped as anyone watching the machine sees it: halted, and reading zero."""
        self._advance()
        return self._reads_stopped()

    def _reads_stopped(self) -> bool:
        halted = (BeltState.IDLE, BeltState.STOPPED, BeltState.SAFETY_KEY)
        return self.state in halted and self._motion.speed_kmh < READS_ZERO_BELOW_KMH

    # -- the link: what a controller may ask --------------------------------------------------

    def _check_hook(self, name: str, value: float | None) -> None:
        if self.refusal_hook is not None and (refusal := self.refusal_hook(name)) is not None:
            self._refuse(name, value, *refusal)

    def start(self) -> None:
        self._advance()
        self._check_hook("start", None)
        if self.state is BeltState.SAFETY_KEY:
            self._refuse("start", None, Refusal.SAFETY_KEY_PULLED, "insert the safety key first")
        self.state = BeltState.RUNNING
        self._record("link", "start", None)

    def pause(self) -> None:
        self._advance()
        self._check_hook("pause", None)
        if self.state is BeltState.RUNNING:
            self.state = BeltState.PAUSED
        self._record("link", "pause", None)

    def stop(self) -> None:
        self._advance()
        self._check_hook("stop", None)
        self._halt()
        self._record("link", "stop", None)

    def reset(self) -> None:
        self._advance()
        self._halt()
        self.target_incline_pct = self._motion.incline_pct
        self._record("link", "reset", None)
        self._emit(StatusKind.RESET)

    def set_target_speed(self, kmh: float) -> None:
        self._advance()
        spec = self.spec
        self._check_hook("set-speed", kmh)
        if self.state is BeltState.SAFETY_KEY:
            self._refuse("set-speed", kmh, Refusal.SAFETY_KEY_PULLED, "insert the safety key first")
        if spec.speed_needs_running and self.state is not BeltState.RUNNING:
            self._refuse("set-speed", kmh, Refusal.NOT_RUNNING, "start the belt first")
        sent = kmh
        if spec.speed_field_mph:
            kmh = kmh * KMH_PER_MPH
        if not spec.speed_min_kmh - 1e-9 <= kmh <= spec.speed_max_kmh + 1e-9:
            self._refuse(
                "set-speed",
                sent,
                Refusal.OUT_OF_RANGE,
                f"{kmh:.2f} km/h outside {spec.speed_min_kmh}-{spec.speed_max_kmh} km/h",
            )
        self.target_speed_kmh = self._snap(kmh, spec.speed_increment_kmh)
        self._record("link", "set-speed", sent)

    def clear_presets(self) -> None:
        """Forget the preset speed and grade (a console's GoIdle/GoReady): the incline returns
        to its floor, and a belt started next runs at the machine's minimum."""
        self._advance()
        self.target_speed_kmh = 0.0
        self.target_incline_pct = self.spec.incline_min_pct
        self._record("link", "presets-cleared", None)

    def set_target_incline(self, pct: float) -> None:
        self._advance()
        spec = self.spec
        self._check_hook("set-incline", pct)
        if self.state is BeltState.SAFETY_KEY:
            self._refuse(
                "set-incline", pct, Refusal.SAFETY_KEY_PULLED, "insert the safety key first"
            )
        if not spec.incline_min_pct - 1e-9 <= pct <= spec.incline_max_pct + 1e-9:
            self._refuse(
                "set-incline",
                pct,
                Refusal.OUT_OF_RANGE,
                f"{pct:.1f} % outside {spec.incline_min_pct}-{spec.incline_max_pct} %",
            )
        self.target_incline_pct = self._snap(pct, spec.incline_increment_pct)
        self._record("link", "set-incline", pct)

    # -- the console: a person at the machine -------------------------------------------------

    def console_stop(self) -> None:
        self._advance()
        self._halt()
        self._record("console", "stop", None)
        self._emit(StatusKind.STOPPED_BY_USER)

    def console_pause(self) -> None:
        self._advance()
        if self.state is BeltState.RUNNING:
            self.state = BeltState.PAUSED
        self._record("console", "pause", None)
        self._emit(StatusKind.PAUSED_BY_USER)

    def console_start(self) -> None:
        self._advance()
        if self.state is BeltState.SAFETY_KEY:
            return
        self.state = BeltState.RUNNING
        self._record("console", "start", None)
        self._emit(StatusKind.STARTED_BY_USER)

    def console_set_speed(self, kmh: float) -> None:
        self._advance()
        spec = self.spec
        kmh = min(max(kmh, spec.speed_min_kmh), spec.speed_max_kmh)
        self.target_speed_kmh = self._snap(kmh, spec.speed_increment_kmh)
        self._record("console", "set-speed", kmh)
        self._emit(StatusKind.TARGET_SPEED_CHANGED, self.target_speed_kmh)

    def console_set_incline(self, pct: float) -> None:
        self._advance()
        spec = self.spec
        pct = min(max(pct, spec.incline_min_pct), spec.incline_max_pct)
        self.target_incline_pct = self._snap(pct, spec.incline_increment_pct)
        self._record("console", "set-incline", pct)
        self._emit(StatusKind.TARGET_INCLINE_CHANGED, self.target_incline_pct)

    def pull_safety_key(self) -> None:
        self._advance()
        self._halt()
        self.state = BeltState.SAFETY_KEY
        self._record("console", "safety-key-pulled", None)
        self._emit(StatusKind.STOPPED_BY_SAFETY_KEY)

    def insert_safety_key(self) -> None:
        self._advance()
        if self.state is BeltState.SAFETY_KEY:
            self.state = BeltState.STOPPED
        self._record("console", "safety-key-inserted", None)

    def stop_on_link_loss(self) -> None:
        """The machine's own reaction to losing its controller: it stops the belt."""
        self._advance()
        self._halt()
        self._record("machine", "stop", None, detail="controller link lost")

    def revoke_control(self) -> None:
        """Another client (or the console) took control of the machine."""
        self._record("console", "control-revoked", None)
        self._emit(StatusKind.CONTROL_LOST)

    def note(self, source: str, name: str, detail: str) -> None:
        """Record something that reached the machine but did not act on it (a fault, say)."""
        self._advance()
        self._record(source, name, None, accepted=False, detail=detail)

    def close(self) -> None:
        if self._journal:
            self._write_journal({"event": "closed", **self._state_dict()})
            self._journal.close()
            self._journal = None

    # -- internals ----------------------------------------------------------------------------

    def _halt(self) -> None:
        # A stop slows and stops the belt and stops incline motion (EN 957-6).
        if self.state is not BeltState.SAFETY_KEY:
            self.state = BeltState.STOPPED
        self.target_speed_kmh = 0.0
        self.target_incline_pct = self._motion.incline_pct

    @staticmethod
    def _snap(value: float, increment: float) -> float:
        return round(round(value / increment) * increment, 6)

    def _effective_target(self) -> float:
        if self.state is not BeltState.RUNNING:
            return 0.0
        return max(self.target_speed_kmh, self.spec.speed_min_kmh)

    def _advance(self) -> None:
        now = self.clock.now()
        dt = now - self._last
        if dt <= 0:
            return
        m = self._motion
        spec = self.spec
        speed, integral_kmh_s = _ramp(
            m.speed_kmh, self._effective_target(), spec.accel_kmh_per_s, spec.decel_kmh_per_s, dt
        )
        m.distance_m += integral_kmh_s / 3.6
        m.speed_kmh = speed
        m.incline_pct, _ = _ramp(
            m.incline_pct,
            self.target_incline_pct,
            spec.incline_pct_per_s,
            spec.incline_pct_per_s,
            dt,
        )
        if self.state is BeltState.RUNNING:
            m.elapsed_s += dt
        self._last = now

    def _refuse(self, name: str, value: float | None, reason: Refusal, detail: str) -> None:
        self._record("link", name, value, accepted=False, detail=f"{reason.value}: {detail}")
        raise SimRefused(reason, detail)

    def _record(
        self,
        source: str,
        name: str,
        value: float | None,
        accepted: bool = True,
        detail: str = "",
    ) -> None:
        record = CommandRecord(self._last, source, name, value, accepted, detail)
        self.commands.append(record)
        if self._journal:
            self._write_journal({"event": "command", **asdict(record), **self._state_dict()})

    def _state_dict(self) -> dict[str, object]:
        m = self._motion
        return {
            "state": self.state.value,
            "target_speed_kmh": self.target_speed_kmh,
            "speed_kmh": round(m.speed_kmh, 4),
            "incline_pct": round(m.incline_pct, 3),
            "stopped": self._reads_stopped(),
        }

    def _write_journal(self, entry: dict[str, object]) -> None:
        assert self._journal is not None
        self._journal.write(json.dumps(entry) + "\n")
        self._journal.flush()

    def _emit(self, kind: StatusKind, value: float | None = None) -> None:
        event = StatusEvent(kind, self._last, value)
        for listener in list(self._listeners):
            listener(event)
