"""Speeds, inclines and quantization to a device's increment.

Values are exact rationals (:class:`fractions.Fraction`): a mile is exactly 1.609344 km, so
2.6 mph is exactly 4.1842944 km/h and no floating-point rounding can push a value across the
edge of the allowed band. Quantization picks the multiple of the device's increment nearest the
target *inside* the band: 2.6 mph at 0.01 km/h steps is 4.19 km/h, never 4.18 (2.597 mph).
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from fractions import Fraction

KMH_PER_MPH = Fraction("1.609344")


class Unit(enum.StrEnum):
    MPH = "mph"
    KMH = "km/h"
    PERCENT = "%"


class OutOfBand(ValueError):
    """No multiple of the increment lies inside the allowed band."""


def exact(value: float | int | str | Fraction) -> Fraction:
    """A float read from a file as the decimal a person wrote (2.6 -> 13/5, not 2.6000000001)."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, float):
        return Fraction(repr(value))
    return Fraction(value)


@dataclass(frozen=True, order=True)
class Quantity:
    """An exact value with its unit."""

    value: Fraction
    unit: Unit

    @classmethod
    def of(cls, value: float | int | str | Fraction, unit: Unit) -> Quantity:
        return cls(exact(value), unit)

    def to(self, unit: Unit) -> Quantity:
        if unit is self.unit:
            return self
        if {unit, self.unit} == {Unit.MPH, Unit.KMH}:
            factor = KMH_PER_MPH if unit is Unit.KMH else 1 / KMH_PER_MPH
            return Quantity(self.value * factor, unit)
        raise ValueError(f"cannot convert {self.unit} to {unit}")

    @property
    def mph(self) -> float:
        return float(self.to(Unit.MPH).value)

    @property
    def kmh(self) -> float:
        return float(self.to(Unit.KMH).value)

    def __float__(self) -> float:
        return float(self.value)

    def __str__(self) -> str:
        return f"{format_number(self.value)} {self.unit}"


def mph(value: float | int | str | Fraction) -> Quantity:
    return Quantity.of(value, Unit.MPH)


def kmh(value: float | int | str | Fraction) -> Quantity:
    return Quantity.of(value, Unit.KMH)


def percent(value: float | int | str | Fraction) -> Quantity:
    return Quantity.of(value, Unit.PERCENT)


def format_number(value: Fraction | float, places: int = 2) -> str:
    """2.60 -> '2.6', 4.19 -> '4.19', 3 -> '3'."""
    text = f"{float(value):.{places}f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


# -- for people: the one place a speed or an incline becomes words ---------------------------


def show_speed(speed: Quantity) -> str:
    """'2.8 mph'; a speed someone gave in km/h keeps it first: '4.5 km/h (2.8 mph)'."""
    shown = f"{format_number(speed.mph)} mph"
    if speed.unit is Unit.KMH:
        return f"{format_number(speed.value)} km/h ({shown})"
    return shown


def show_speed_both(speed: Quantity) -> str:
    """On a display, both units at a glance: '2.8 mph (4.51 km/h)'."""
    return f"{speed.mph:.1f} mph ({speed.kmh:.2f} km/h)"


def show_incline(incline: Quantity) -> str:
    """'2 %', '1.5 %'."""
    return f"{format_number(incline.value, 1)} %"


def show(value: Quantity) -> str:
    """A speed or an incline, whichever it is."""
    return show_incline(value) if value.unit is Unit.PERCENT else show_speed(value)


@dataclass(frozen=True)
class Increment:
    """The smallest step a device accepts, e.g. 0.01 km/h (FTMS) or 0.1 mph (CSAFE)."""

    size: Fraction
    unit: Unit

    @classmethod
    def of(cls, size: float | int | str | Fraction, unit: Unit) -> Increment:
        step = exact(size)
        if step <= 0:
            raise ValueError(f"increment must be positive, got {size}")
        return cls(step, unit)

    def __str__(self) -> str:
        return f"{format_number(self.size, 3)} {self.unit}"


def quantize(target: Quantity, low: Quantity, high: Quantity, increment: Increment) -> Quantity:
    """The multiple of ``increment`` nearest ``target`` that lies within ``[low, high]``.

    The result is in the increment's unit. Ties round toward the lower value. Raises
    :class:`OutOfBand` when the band holds no multiple of the increment.
    """
    unit = increment.unit
    lo = low.to(unit).value / increment.size
    hi = high.to(unit).value / increment.size
    first, last = math.ceil(lo), math.floor(hi)
    if first > last:
        raise OutOfBand(f"no multiple of {increment} lies between {low} and {high}")
    wanted = target.to(unit).value / increment.size
    nearest = math.floor(wanted + Fraction(1, 2))
    if wanted - math.floor(wanted) == Fraction(1, 2):
        nearest = math.floor(wanted)
    steps = min(max(nearest, first), last)
    return Quantity(steps * increment.size, unit)


def wire_integer(value: Quantity, resolution: Increment) -> int:
    """The integer a protocol carries for ``value`` at ``resolution`` (e.g. 4.19 km/h -> 419).

    Raises ``ValueError`` if ``value`` is not an exact multiple of the resolution: a quantized
    value that cannot be carried exactly must never be rounded silently on its way out.
    """
    # in integers: every command computes one, and a Fraction division is several calls
    numerator, denominator = value.to(resolution.unit).value.as_integer_ratio()
    size_numerator, size_denominator = resolution.size.as_integer_ratio()
    count, rest = divmod(numerator * size_denominator, denominator * size_numerator)
    if rest:
        raise ValueError(f"{value} is not a whole number of {resolution}")
    return count


_QUANTITY = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*(mph|km/h|kmh|kph|%)?\s*$", re.IGNORECASE)


def parse_speed(text: str | float | int, default_unit: Unit = Unit.MPH) -> Quantity:
    """'2.8', '2.8 mph', '4.5 km/h' or a number (in ``default_unit``) to a speed."""
    if isinstance(text, bool):
        raise ValueError(f"expected a speed like 2.8 or '4.5 km/h', got {text!r}")
    if isinstance(text, int | float):
        return Quantity.of(text, default_unit)
    match = _QUANTITY.match(text)
    if not match or match.group(2) == "%":
        raise ValueError(f"expected a speed like 2.8 or '4.5 km/h', got {text!r}")
    unit_text = (match.group(2) or default_unit.value).lower()
    unit = Unit.MPH if unit_text == "mph" else Unit.KMH
    return Quantity.of(match.group(1), unit)
