"""What FTMS fields carry, and exact conversions between them and pyftms's floats."""

from __future__ import annotations

import math
from fractions import Fraction

from retrotread.units import Increment, Unit

#: What FTMS fields carry: speed in 0.01 km/h, incline in 0.1 %. Machines with the mph quirk
#: read (and echo) the control point's speed field as 0.01 mph, while their Treadmill Data
#: and speed range stay in km/h.
SPEED_RESOLUTION = Increment.of("0.01", Unit.KMH)
SPEED_RESOLUTION_MPH = Increment.of("0.01", Unit.MPH)
INCLINE_RESOLUTION = Increment.of("0.1", Unit.PERCENT)


def exact(value: float, places: int) -> Fraction:
    """A decimal pyftms decoded into a float, back to the exact value on the wire."""
    scale = 10**places
    return Fraction(round(value * scale), scale)


def pyftms_value(wire: int, resolution: Increment) -> float:
    """The float to give pyftms so that ``int(value / resolution)`` is exactly ``wire``.

    Half a step away from zero survives both the float division and the truncation toward
    zero, for every 16-bit value, positive or negative.
    """
    numerator, denominator = resolution.size.as_integer_ratio()  # float(size), in one call
    return (wire + math.copysign(0.5, wire)) * (numerator / denominator)


__all__ = [
    "INCLINE_RESOLUTION",
    "SPEED_RESOLUTION",
    "SPEED_RESOLUTION_MPH",
    "exact",
    "pyftms_value",
]
