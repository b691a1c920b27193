"""Units and quantization: a quantized speed never leaves the allowed band."""

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retrotread.units import (
    Increment,
    OutOfBand,
    Quantity,
    Unit,
    kmh,
    mph,
    parse_speed,
    quantize,
    wire_integer,
)

RETRO_LOW, RETRO_HIGH = mph("2.6"), mph("3.2")
INCREMENTS = [
    Increment.of("0.01", Unit.KMH),
    Increment.of("0.1", Unit.KMH),
    Increment.of("0.16", Unit.KMH),
    Increment.of("0.1", Unit.MPH),
]


def test_mph_kmh_conversion_is_exact() -> None:
    assert mph("2.6").to(Unit.KMH).value == Fraction("4.1842944")
    assert kmh("1.609344").to(Unit.MPH).value == 1


@pytest.mark.parametrize(
    ("target", "increment", "expected"),
    [
        ("2.6", Increment.of("0.01", Unit.KMH), kmh("4.19")),
        ("3.2", Increment.of("0.01", Unit.KMH), kmh("5.14")),
        ("2.6", Increment.of("0.1", Unit.KMH), kmh("4.2")),
        ("3.2", Increment.of("0.1", Unit.KMH), kmh("5.1")),
        ("2.6", Increment.of("0.1", Unit.MPH), mph("2.6")),
        ("3.2", Increment.of("0.1", Unit.MPH), mph("3.2")),
    ],
)
def test_band_edges_quantize_inward(target: str, increment: Increment, expected: Quantity) -> None:
    assert quantize(mph(target), RETRO_LOW, RETRO_HIGH, increment) == expected


def test_wire_integer_is_the_intended_one() -> None:
    q = quantize(mph("2.6"), RETRO_LOW, RETRO_HIGH, Increment.of("0.01", Unit.KMH))
    assert wire_integer(q, Increment.of("0.01", Unit.KMH)) == 419  # 02 A3 01 on FTMS
    q = quantize(mph("3.2"), RETRO_LOW, RETRO_HIGH, Increment.of("0.01", Unit.KMH))
    assert wire_integer(q, Increment.of("0.01", Unit.KMH)) == 514  # 02 02 02
    assert wire_integer(mph("2.6"), Increment.of("0.1", Unit.MPH)) == 26  # CSAFE 0x1A
    with pytest.raises(ValueError, match="whole number"):
        wire_integer(mph("2.6"), Increment.of("0.01", Unit.KMH))


def test_empty_band_is_an_error() -> None:
    with pytest.raises(OutOfBand):
        quantize(mph(3), mph("3.01"), mph("3.05"), Increment.of("0.1", Unit.MPH))


speeds = st.decimals(min_value="0.5", max_value="8", places=3).map(lambda d: mph(str(d)))


@given(
    target=speeds,
    low=speeds,
    width=st.decimals(min_value="0.3", max_value="3", places=2),
    increment=st.sampled_from(INCREMENTS),
)
def test_quantized_value_is_inside_band_and_on_the_grid(
    target: Quantity, low: Quantity, width: object, increment: Increment
) -> None:
    high = mph(low.value + Fraction(str(width)))
    result = quantize(target, low, high, increment)
    in_mph = result.to(Unit.MPH).value
    assert low.value <= in_mph <= high.value
    assert (result.to(increment.unit).value / increment.size).denominator == 1
    # nearest inside the band: no grid point inside the band is strictly closer
    t = target.to(increment.unit).value
    r = result.to(increment.unit).value
    for neighbour in (r - increment.size, r + increment.size):
        n_mph = Quantity(neighbour, increment.unit).to(Unit.MPH).value
        if low.value <= n_mph <= high.value:
            assert abs(r - t) <= abs(neighbour - t)


@given(target=speeds, increment=st.sampled_from(INCREMENTS))
def test_retro_band_never_left(target: Quantity, increment: Increment) -> None:
    result = quantize(target, RETRO_LOW, RETRO_HIGH, increment)
    assert RETRO_LOW.value <= result.to(Unit.MPH).value <= RETRO_HIGH.value


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2.8", mph("2.8")), ("2.8 mph", mph("2.8")), ("4.5 km/h", kmh("4.5")), (3, mph(3))],
)
def test_parse_speed(text: str | int, expected: Quantity) -> None:
    assert parse_speed(text) == expected


@pytest.mark.parametrize("text", ["fast", "2.8 %", "", True])
def test_parse_speed_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="expected a speed"):
        parse_speed(text)  # type: ignore[arg-type]
