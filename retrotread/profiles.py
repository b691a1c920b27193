"""Device profiles: one TOML per treadmill family, bundled in ``devices/``.

A profile says what the machine can do (speed and incline ranges and increments), how far
retrotread may push it (its own speed cap and largest change per command), how a command is
confirmed (tolerance and time), and which quirks the machine has. Quirks are options here, not
branches scattered through drivers.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from typing import Any

from retrotread.errors import ProfileError
from retrotread.units import Increment, Quantity, Unit, mph, parse_speed, percent

PROTOCOLS = ("sim", "ftms", "csafe", "trackmaster")


@dataclass(frozen=True)
class Quirks:
    """Known machine quirks (see shared protocol notes); all off by default."""

    request_control_each_command: bool = False  # commands ignored unless control is re-requested
    start_before_speed: bool = False  # speed accepted only once the belt is moving
    speed_field_mph: bool = False  # the speed field is read as mph instead of km/h
    read_only: bool = False  # the console can be read but not driven
    incline_step: float | None = None  # incline only in these steps (e.g. 0.5 %)
    speed_unit: str | None = None  # CSAFE speed unit: "0.1mph", "0.01kmh", ...
    grade_unit: str | None = None  # CSAFE grade unit: "0.1%" (default), "0.01%", "1%"
    status_query: bool = False  # Trackmaster: answers A5 (speed) / A6 (grade) queries


#: Backward speeds stop here unless a profile says otherwise: the top of the default
#: retro-run band (a walker facing backward cannot see where the belt ends).
BACKWARD_CEILING_MPH = "5.0"


@dataclass(frozen=True)
class SpeedSpec:
    min: Quantity
    max: Quantity
    increment: Increment
    max_mph: Quantity  # retrotread never commands more than this
    max_change_mph: Quantity  # largest change in one command; larger changes are ramped
    #: The hard ceiling for a walker facing backward: no program file can raise it, only a
    #: profile (or a clinician's setting) can, explicitly.
    max_backward_mph: Quantity = field(default_factory=lambda: mph(BACKWARD_CEILING_MPH))


@dataclass(frozen=True)
class InclineSpec:
    min: Quantity
    max: Quantity
    increment: Increment


@dataclass(frozen=True)
class ConfirmSpec:
    tolerance_mph: Quantity
    timeout_s: float  # belt must reach the target within this
    command_timeout_s: float  # the machine must answer a command within this
    telemetry_stale_s: float  # no telemetry for this long is a fault


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    protocol: str
    speed: SpeedSpec
    incline: InclineSpec
    confirm: ConfirmSpec
    match: tuple[str, ...] = ()
    quirks: Quirks = field(default_factory=Quirks)

    def matches(self, device_name: str) -> bool:
        return any(fnmatch.fnmatchcase(device_name, pattern) for pattern in self.match)

    def with_quirks(self, **changes: Any) -> Profile:
        quirks = {f.name: getattr(self.quirks, f.name) for f in fields(Quirks)}
        unknown = set(changes) - set(quirks)
        if unknown:
            raise ProfileError(
                f"unknown quirk(s) {', '.join(sorted(unknown))}; known: {', '.join(quirks)}"
            )
        quirks.update(changes)
        return Profile(
            self.name,
            self.description,
            self.protocol,
            self.speed,
            self.incline,
            self.confirm,
            self.match,
            Quirks(**quirks),
        )


def _take(
    table: dict[str, Any], allowed: set[str], where: str, optional: set[str] | None = None
) -> dict[str, Any]:
    unknown = set(table) - allowed
    if unknown:
        raise ProfileError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    missing = {k for k in allowed if k not in table and k not in (optional or set())}
    if missing:
        raise ProfileError(f"{where}: missing {', '.join(sorted(missing))}")
    return table


def parse_profile(data: dict[str, Any], source: str) -> Profile:
    try:
        top = _take(
            data,
            {"name", "description", "protocol", "match", "speed", "incline", "confirm", "quirks"},
            source,
            optional={"match", "quirks", "description"},
        )
        if top["protocol"] not in PROTOCOLS:
            raise ProfileError(f"{source}: protocol must be one of {', '.join(PROTOCOLS)}")
        s = _take(
            top["speed"],
            {"min", "max", "increment", "max_mph", "max_change_mph", "max_backward_mph"},
            source,
            optional={"max_backward_mph"},
        )
        increment = parse_speed(s["increment"])
        speed = SpeedSpec(
            min=parse_speed(s["min"]),
            max=parse_speed(s["max"]),
            increment=Increment(increment.value, increment.unit),
            max_mph=mph(s["max_mph"]),
            max_change_mph=mph(s["max_change_mph"]),
            max_backward_mph=mph(s.get("max_backward_mph", BACKWARD_CEILING_MPH)),
        )
        i = _take(top["incline"], {"min", "max", "increment"}, source)
        incline = InclineSpec(
            percent(i["min"]), percent(i["max"]), Increment.of(i["increment"], Unit.PERCENT)
        )
        c = _take(
            top["confirm"],
            {"tolerance_mph", "timeout_s", "command_timeout_s", "telemetry_stale_s"},
            source,
        )
        confirm = ConfirmSpec(
            mph(c["tolerance_mph"]),
            float(c["timeout_s"]),
            float(c["command_timeout_s"]),
            float(c["telemetry_stale_s"]),
        )
        known_quirks = {f.name for f in fields(Quirks)}
        quirks = Quirks(
            **_take(top.get("quirks", {}), known_quirks, f"{source} [quirks]", known_quirks)
        )
        if speed.max_change_mph.to(increment.unit).value < increment.value:
            raise ProfileError(
                f"{source}: speed.max_change_mph {speed.max_change_mph} is smaller than one "
                f"increment ({increment}): no change could ever be sent"
            )
    except KeyError as err:
        raise ProfileError(f"{source}: missing {err.args[0]}") from err
    except (TypeError, ValueError) as err:
        raise ProfileError(f"{source}: {err}") from err
    return Profile(
        name=top["name"],
        description=top.get("description", ""),
        protocol=top["protocol"],
        speed=speed,
        incline=incline,
        confirm=confirm,
        match=tuple(top.get("match", ())),
        quirks=quirks,
    )


def bundled_profiles() -> list[Profile]:
    folder = resources.files("retrotread.devices")
    profiles = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            data = tomllib.loads(entry.read_text("utf-8"))
            profiles.append(parse_profile(data, f"devices/{entry.name}"))
    return profiles


def get_profile(name: str) -> Profile:
    profiles = bundled_profiles()
    for profile in profiles:
        if profile.name == name:
            return profile
    known = ", ".join(p.name for p in profiles)
    raise ProfileError(f"no device profile named {name!r}; known: {known}")


def profile_for_device(device_name: str, protocol: str) -> Profile:
    """The most specific bundled profile for a device name (a catch-all ``*`` comes last)."""
    candidates = [p for p in bundled_profiles() if p.protocol == protocol]
    specific = [p for p in candidates if p.matches(device_name) and "*" not in p.match]
    fallback = [p for p in candidates if p.matches(device_name)]
    chosen = specific or fallback or candidates
    if not chosen:
        raise ProfileError(f"no device profile for protocol {protocol!r}")
    return chosen[0]


__all__ = [
    "ConfirmSpec",
    "InclineSpec",
    "Profile",
    "Quirks",
    "SpeedSpec",
    "bundled_profiles",
    "get_profile",
    "parse_profile",
    "profile_for_device",
]
