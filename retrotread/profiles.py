"""Device profiles: one TOML per treadmill family, bundled in ``devices/``, and the user's own
in the config folder (``<user config dir>/retrotread/devices/*.toml``, or
``$RETROTREAD_CONFIG_DIR/devices``); a user profile with a bundled one's name replaces it.

A profile says what the machine can do (speed and incline ranges and increments), how far
retrotread may push it (its own speed cap and largest change per command), how a command is
confirmed (tolerance and time), and which quirks the machine has. Quirks are options here, not
branches scattered through drivers.
"""

from __future__ import annotations

import fnmatch
import functools
import tomllib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from retrotread.errors import ProfileError
from retrotread.paths import config_dir
from retrotread.units import Increment, Quantity, Unit, mph, parse_speed, percent

PROTOCOLS = ("sim", "ftms", "csafe", "trackmaster")

#: Bluetooth's base UUID, which a 16-bit UUID ("fff3") stands for with its digits in place.
_BLUETOOTH_BASE_UUID = "0000{}-0000-1000-8000-00805f9b34fb"


@dataclass(frozen=True)
class UnlockWrite:
    """Bytes a machine wants on a vendor characteristic before it grants control (quirk
    ``unlock_write``; TOML: ``{ characteristic = "UUID", value = "aa 01 00 01 55",
    wait_s = 0.2 }``)."""

    characteristic: str  # full 128-bit UUID, lower case
    value: bytes
    wait_s: float = 0.0  # the pause after the write, before Request Control

    @classmethod
    def of(cls, spec: UnlockWrite | Mapping[str, Any]) -> UnlockWrite:
        if isinstance(spec, UnlockWrite):
            return spec
        if not isinstance(spec, Mapping):
            raise ValueError(
                'unlock_write must be a table: { characteristic = "UUID", value = "HEX" }'
            )
        unknown = set(spec) - {"characteristic", "value", "wait_s"}
        if unknown or not {"characteristic", "value"} <= set(spec):
            raise ValueError(
                "unlock_write takes characteristic (a UUID), value (hex bytes) and, optionally, "
                f"wait_s (seconds); got {', '.join(sorted(spec)) or 'nothing'}"
            )
        text = str(spec["characteristic"]).strip().lower()
        try:
            if len(text) == 4:
                text = _BLUETOOTH_BASE_UUID.format(text)
            characteristic = str(uuid.UUID(text))
        except ValueError:
            raise ValueError(f"unlock_write.characteristic {text!r} is not a UUID") from None
        try:
            value = bytes.fromhex(str(spec["value"]))
        except ValueError:
            raise ValueError(
                f'unlock_write.value {spec["value"]!r} is not hex bytes (like "aa 01 00 01 55")'
            ) from None
        if not value:
            raise ValueError("unlock_write.value is empty")
        wait_s = float(spec.get("wait_s", 0.0))
        if not 0 <= wait_s <= 5:
            raise ValueError(f"unlock_write.wait_s {wait_s:g} must be 0 to 5 seconds")
        return cls(characteristic, value, wait_s)


@dataclass(frozen=True)
class Quirks:
    """Known machine quirks (see shared protocol notes); all off by default."""

    request_control_each_command: bool = False  # commands ignored unless control is re-requested
    start_before_speed: bool = False  # speed accepted only once the belt is moving
    speed_field_mph: bool = False  # the speed field is read as mph instead of km/h
    read_only: bool = False  # the console can be read but not driven
    incline_step: float | None = None  # incline only in these steps (e.g. 0.5 %)
    # FTMS machines (docs/ftms.md, "Quirks"; each handled by one mechanism in
    # retrotread/drivers/ftms/quirks.py; the simulator plays them: drivers/ftms/simulated.py).
    start_each_command: bool = False  # Request Control + Start before every speed/incline
    telemetry_speed_mph: bool = False  # Treadmill Data speed arrives in 0.01 mph
    request_control_again_s: float | None = None  # at connect, Request Control again after this
    start_keepalive_s: float | None = None  # while running, Start resent this often
    ranges_from_profile: bool = False  # the machine's declared ranges are wrong: use ours
    incline_table: tuple[tuple[float, int], ...] = ()  # (percent, wire value) pairs
    incline_unreported: bool = False  # no incline in Treadmill Data: the set value is echoed
    zero_speed_debounce_s: float | None = None  # a lone zero-speed record is not believed
    start_handshake: bool = False  # answers Start with status 02 01, then wants control + Start
    silence_means_stopped_s: float | None = None  # no Treadmill Data this long: belt stopped
    min_command_interval_s: float | None = None  # the machine drops writes closer than this
    unlock_write: UnlockWrite | None = None  # a vendor write before Request Control (Merach)
    #: elapsed time frozen this long while the belt moves: nobody on it (Mobvoi TMP)
    elapsed_frozen_means_stopped_s: float | None = None

    def __post_init__(self) -> None:
        # TOML gives lists; a frozen profile keeps tuples (and checks the pairs' shape).
        table = tuple((float(pct), int(wire)) for pct, wire in self.incline_table)
        object.__setattr__(self, "incline_table", table)
        if self.unlock_write is not None:  # TOML gives a table
            object.__setattr__(self, "unlock_write", UnlockWrite.of(self.unlock_write))

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
    models: str = ""  # the real machines this profile describes
    sources: str = ""  # where its facts come from (each fact's source is a comment in it)

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
            self.models,
            self.sources,
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


def _field[T](table: dict[str, Any], key: str, where: str, convert: Callable[[Any], T]) -> T:
    """``table[key]`` converted; a bad value is an error naming its field."""
    try:
        return convert(table[key])
    except (TypeError, ValueError) as err:
        raise ProfileError(f"{where}.{key}: {err}") from err


def parse_profile(data: dict[str, Any], source: str) -> Profile:
    try:
        top = _take(
            data,
            {
                "name",
                "description",
                "protocol",
                "match",
                "speed",
                "incline",
                "confirm",
                "quirks",
                "models",
                "sources",
            },
            source,
            optional={"match", "quirks", "description", "models", "sources"},
        )
        if top["protocol"] not in PROTOCOLS:
            raise ProfileError(f"{source}: protocol must be one of {', '.join(PROTOCOLS)}")
        s = _take(
            top["speed"],
            {"min", "max", "increment", "max_mph", "max_change_mph", "max_backward_mph"},
            f"{source} [speed]",
            optional={"max_backward_mph"},
        )
        at = f"{source}: speed"
        increment = _field(s, "increment", at, parse_speed)
        speed = SpeedSpec(
            min=_field(s, "min", at, parse_speed),
            max=_field(s, "max", at, parse_speed),
            increment=Increment(increment.value, increment.unit),
            max_mph=_field(s, "max_mph", at, mph),
            max_change_mph=_field(s, "max_change_mph", at, mph),
            max_backward_mph=_field(
                {"max_backward_mph": BACKWARD_CEILING_MPH, **s}, "max_backward_mph", at, mph
            ),
        )
        i = _take(top["incline"], {"min", "max", "increment"}, f"{source} [incline]")
        at = f"{source}: incline"
        incline = InclineSpec(
            _field(i, "min", at, percent),
            _field(i, "max", at, percent),
            _field(i, "increment", at, lambda value: Increment.of(value, Unit.PERCENT)),
        )
        c = _take(
            top["confirm"],
            {"tolerance_mph", "timeout_s", "command_timeout_s", "telemetry_stale_s"},
            f"{source} [confirm]",
        )
        at = f"{source}: confirm"
        confirm = ConfirmSpec(
            _field(c, "tolerance_mph", at, mph),
            _field(c, "timeout_s", at, float),
            _field(c, "command_timeout_s", at, float),
            _field(c, "telemetry_stale_s", at, float),
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
        models=str(top.get("models", "")),
        sources=str(top.get("sources", "")),
    )


BUNDLED = "bundled"


@dataclass(frozen=True)
class ProfileFile:
    """A profile in use and where it was read: :data:`BUNDLED`, or a user file's path."""

    profile: Profile
    source: str
    overrides_bundled: bool = False


@dataclass(frozen=True)
class ProfileProblem:
    """A user profile file that could not be read (the others still are)."""

    path: Path
    message: str


@dataclass(frozen=True)
class ProfileCatalogue:
    files: tuple[ProfileFile, ...]
    problems: tuple[ProfileProblem, ...]

    @property
    def profiles(self) -> list[Profile]:
        return [found.profile for found in self.files]


def user_profile_dir() -> Path:
    return config_dir() / "devices"


def bundled_profiles() -> list[Profile]:
    return list(_bundled_profiles())


@functools.cache
def _bundled_profiles() -> tuple[Profile, ...]:
    """Read once: they are part of the installed package (and a profile is immutable)."""
    folder = resources.files("retrotread.devices")
    profiles = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            data = tomllib.loads(entry.read_text("utf-8"))
            profiles.append(parse_profile(data, f"devices/{entry.name}"))
    return tuple(profiles)


def _read_user_profile(path: Path) -> Profile:
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ProfileError(f"{path}: not valid TOML: {err}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ProfileError(f"{path}: cannot read: {err}") from err
    return parse_profile(data, str(path))


def profile_catalogue() -> ProfileCatalogue:
    """The bundled profiles, each replaced by a user profile of its name, then the user's own;
    a user file that cannot be read is a problem, and leaves the others in use."""
    chosen = {profile.name: ProfileFile(profile, BUNDLED) for profile in bundled_profiles()}
    problems: list[ProfileProblem] = []
    read_from: dict[str, Path] = {}
    for path in sorted(user_profile_dir().glob("*.toml")):
        try:
            profile = _read_user_profile(path)
        except ProfileError as err:
            problems.append(ProfileProblem(path, str(err)))
            continue
        if profile.name in read_from:
            first = read_from[profile.name]
            problems.append(
                ProfileProblem(path, f"{path}: profile {profile.name!r} is already in {first}")
            )
            continue
        read_from[profile.name] = path
        bundled = chosen.get(profile.name)
        overrides = bundled is not None and bundled.source == BUNDLED
        chosen[profile.name] = ProfileFile(profile, str(path), overrides)
    return ProfileCatalogue(tuple(chosen.values()), tuple(problems))


def all_profiles() -> list[Profile]:
    """Every profile in use: bundled and the user's (see :func:`profile_catalogue`)."""
    return profile_catalogue().profiles


def get_profile(name: str) -> Profile:
    catalogue = profile_catalogue()
    for problem in catalogue.problems:  # never fall back past a file meant to be this one
        if problem.path.stem == name:
            raise ProfileError(problem.message)
    for profile in catalogue.profiles:
        if profile.name == name:
            return profile
    known = ", ".join(p.name for p in catalogue.profiles)
    unread = "".join(f"\n  not read: {problem.message}" for problem in catalogue.problems)
    raise ProfileError(f"no device profile named {name!r}; known: {known}{unread}")


def profile_for_device(device_name: str, protocol: str) -> Profile:
    """The most specific profile for a device name (a catch-all ``*`` comes last)."""
    candidates = [p for p in all_profiles() if p.protocol == protocol]
    specific = [p for p in candidates if p.matches(device_name) and "*" not in p.match]
    fallback = [p for p in candidates if p.matches(device_name)]
    chosen = specific or fallback or candidates
    if not chosen:
        raise ProfileError(f"no device profile for protocol {protocol!r}")
    return chosen[0]


__all__ = [
    "BUNDLED",
    "ConfirmSpec",
    "InclineSpec",
    "Profile",
    "ProfileCatalogue",
    "ProfileFile",
    "ProfileProblem",
    "Quirks",
    "SpeedSpec",
    "UnlockWrite",
    "all_profiles",
    "bundled_profiles",
    "get_profile",
    "parse_profile",
    "profile_catalogue",
    "profile_for_device",
    "user_profile_dir",
]
