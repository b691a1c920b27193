"""The simulator's Trackmaster side on its own: commands, acknowledgements, refusals."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrotread_sim import BeltState, MachineSpec, ManualClock, SimTreadmill
from retrotread_sim.trackmaster import LineSplitter, TrackmasterResponder

KMH_PER_MPH = 1.609344


def responder(*, status_query: bool = False) -> tuple[TrackmasterResponder, SimTreadmill]:
    spec = MachineSpec(
        speed_min_kmh=0.5 * KMH_PER_MPH,
        speed_max_kmh=12 * KMH_PER_MPH,
        speed_increment_kmh=0.1 * KMH_PER_MPH,
        incline_max_pct=25.0,
    )
    machine = SimTreadmill(spec, ManualClock())
    return TrackmasterResponder(machine, status_query=status_query), machine


def answers(side: TrackmasterResponder, data: bytes) -> list[bytes | None]:
    return [handled.reply for handled in side.feed(data)]


def test_commands_are_acknowledged() -> None:
    side, machine = responder()
    assert answers(side, b"A40020\rA30026\rA1\r") == [b"B4\r", b"B3\r", b"B1\r"]
    assert machine.target_incline_pct == pytest.approx(2.0)
    assert machine.target_speed_kmh == pytest.approx(2.6 * KMH_PER_MPH, abs=1e-6)
    assert machine.state is BeltState.RUNNING
    assert answers(side, b"A30032\nA2\r\n") == [b"B3\r", b"B2\r"]
    assert machine.state is BeltState.STOPPED


@pytest.mark.parametrize(
    ("line", "answer"),
    [
        (b"A30130\r", b"BE\r"),  # 13 mph: above the machine's 12
        (b"A40300\r", b"BE\r"),  # 30 %
        (b"A3026\r", b"BF\r"),  # three digits
        (b"A3+026\r", b"BF\r"),
        (b"A12\r", b"BF\r"),
        (b"A9\r", b"BF\r"),
        (b"A5\r", b"BF\r"),  # no queries unless asked for
        (b"hello\r", b"BF\r"),
        (b"A" * 40 + b"\r", b"BF\r"),
    ],
)
def test_refusals(line: bytes, answer: bytes) -> None:
    side, machine = responder()
    assert answers(side, line) == [answer]
    assert machine.target_speed_kmh == 0 and machine.target_incline_pct == 0


def test_start_without_the_safety_key_is_illegal() -> None:
    side, machine = responder()
    machine.pull_safety_key()
    assert answers(side, b"A1\r") == [b"BF\r"]


def test_queries_report_belt_speed_and_grade() -> None:
    side, machine = responder(status_query=True)
    assert answers(side, b"A5\rA6\r") == [b"B50000\r", b"B60000\r"]
    answers(side, b"A30026\rA40020\rA1\r")
    assert isinstance(machine.clock, ManualClock)
    machine.clock.advance(10)
    assert answers(side, b"A5\rA6\r") == [b"B50026\r", b"B60020\r"]


@settings(deadline=None)
@given(garbage=st.binary(max_size=200))
def test_any_bytes_then_a_good_line_gets_an_answer(garbage: bytes) -> None:
    side, _ = responder()
    handled = side.feed(garbage + b"\rA2\r")
    assert handled[-1].reply == b"B2\r"


@settings(deadline=None)
@given(st.binary(max_size=100))
def test_the_splitter_never_raises(data: bytes) -> None:
    for line, _complete in LineSplitter().feed(data):
        assert b"\r" not in line and b"\n" not in line
