"""A client's limits, as their clinician sets them, stored with the client.

The limits sit on top of the program and the device profile: the governor
(:class:`retrotread.safety.ClientCaps`) narrows every speed and incline to them and refuses,
before the belt moves, a program that asks for more. The heart-rate ceiling is the clinician's
number, or their percentage of the age-predicted maximum (220 − age); above it the belt slows
to the recovery speed (:mod:`retrotread.clinic.heart`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from retrotread.clinic.heart import ceiling_from_age
from retrotread.errors import RetrotreadError
from retrotread.program import Handrail
from retrotread.safety import ClientCaps
from retrotread.units import Quantity, format_number, mph, percent

#: The recovery speed when the clinician names none (the governor keeps it in each block's band).
DEFAULT_RECOVERY_MPH = 2.0


class LimitsError(RetrotreadError):
    """A limit that makes no sense (a band upside down, an age of 300)."""


@dataclass(frozen=True)
class ClientLimits:
    """Everything optional: an unset limit leaves the program and the profile to decide."""

    speed_low_mph: float | None = None  # backward blocks' floor
    speed_high_mph: float | None = None  # every block's top speed
    incline_max_pct: float | None = None
    longest_backward_s: int | None = None
    handrail: Handrail | None = None  # the least support allowed
    retro_run: bool = True
    hr_ceiling_bpm: int | None = None  # a number, or from age and percent
    age: int | None = None
    hr_percent: float | None = None
    recovery_mph: float | None = None
    strap: str | None = None  # the heart-rate strap's Bluetooth address

    def __post_init__(self) -> None:
        low, high = self.speed_low_mph, self.speed_high_mph
        if low is not None and high is not None and low > high:
            raise LimitsError(f"the speed band {low}–{high} mph is upside down")
        for name in ("speed_low_mph", "speed_high_mph", "recovery_mph"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 15:
                raise LimitsError(f"{name.replace('_', ' ')} {value} is outside 0–15 mph")
        if self.incline_max_pct is not None and not 0 <= self.incline_max_pct <= 40:
            raise LimitsError(f"incline limit {self.incline_max_pct} % is outside 0–40 %")
        if self.longest_backward_s is not None and self.longest_backward_s < 5:
            raise LimitsError("the longest backward stretch must be 5 s or more")
        if self.hr_ceiling_bpm is not None and not 60 <= self.hr_ceiling_bpm <= 220:
            raise LimitsError(f"a heart-rate ceiling of {self.hr_ceiling_bpm} is outside 60–220")
        if (self.age is None) != (self.hr_percent is None) and self.hr_ceiling_bpm is None:
            raise LimitsError("a ceiling from age needs both the age and the percentage")
        if self.age is not None and self.hr_percent is not None:
            try:
                ceiling_from_age(self.age, self.hr_percent)
            except ValueError as err:
                raise LimitsError(str(err)) from None

    @property
    def ceiling(self) -> int | None:
        """The heart-rate ceiling: the clinician's number, else their % of 220 − age."""
        if self.hr_ceiling_bpm is not None:
            return self.hr_ceiling_bpm
        if self.age is not None and self.hr_percent is not None:
            return ceiling_from_age(self.age, self.hr_percent)
        return None

    @property
    def recovery_speed(self) -> Quantity:
        return mph(str(self.recovery_mph or DEFAULT_RECOVERY_MPH))

    def caps(self, who: str) -> ClientCaps:
        """The limits the governor enforces."""
        return ClientCaps(
            who=who,
            max_speed=mph(str(self.speed_high_mph)) if self.speed_high_mph else None,
            backward_min=mph(str(self.speed_low_mph)) if self.speed_low_mph else None,
            max_incline=(
                percent(str(self.incline_max_pct)) if self.incline_max_pct is not None else None
            ),
            longest_backward_s=self.longest_backward_s,
            handrail=self.handrail,
            retro_run=self.retro_run,
        )

    @property
    def empty(self) -> bool:
        return self == ClientLimits()

    def describe(self) -> list[str]:
        """One line a limit, as shown before the start."""
        lines = []
        low, high = self.speed_low_mph, self.speed_high_mph
        if low is not None and high is not None:
            lines.append(
                f"speed: {format_number(low)}–{format_number(high)} mph backward, "
                f"at most {format_number(high)} mph"
            )
        elif high is not None:
            lines.append(f"speed: at most {format_number(high)} mph")
        elif low is not None:
            lines.append(f"speed: backward from {format_number(low)} mph")
        if self.incline_max_pct is not None:
            lines.append(f"incline: at most {format_number(self.incline_max_pct)} %")
        if self.longest_backward_s is not None:
            lines.append(f"backward: at most {self.longest_backward_s} s without a turn-around")
        if self.handrail is not None:
            lines.append(f"handrails: {self.handrail.value} or more support")
        if not self.retro_run:
            lines.append("retro-running: not allowed")
        ceiling = self.ceiling
        if ceiling is not None:
            source = (
                f" ({format_number(self.hr_percent or 0)} % of 220 − {self.age})"
                if self.hr_ceiling_bpm is None
                else ""
            )
            lines.append(
                f"heart rate: at most {ceiling} bpm{source}; above it the belt slows to "
                f"{format_number(float(self.recovery_speed.value))} mph"
            )
        if self.strap:
            lines.append(f"heart-rate strap: {self.strap}")
        return lines

    def with_changes(self, changes: dict[str, Any]) -> ClientLimits:
        """These limits with ``changes`` (None clears one); validated again."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise LimitsError(f"unknown limits: {', '.join(sorted(unknown))}")
        return replace(self, **changes)

    def as_row(self) -> dict[str, object]:
        row: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Handrail):
                value = value.value
            elif isinstance(value, bool):
                value = int(value)
            row[f.name] = value
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ClientLimits:
        values = dict(row)
        if values.get("handrail"):
            values["handrail"] = Handrail(values["handrail"])
        values["retro_run"] = bool(values.get("retro_run", 1))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
