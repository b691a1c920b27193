"""The simulator's Trackmaster side on its own: commands, acknowledgements, refusals."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrotread_sim import BeltState, MachineSpec, ManualClock, SimTreadmill
from retrotread_sim.trackmaster import CommandSplitter, TrackmasterResponder

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


def test_commands_are_acknowledged_with_one_byte() -> None:
    side, machine = responder()
    assert answers(side, b"\xa40020\xa30026\xa1") == [b"\xb4", b"\xb3", b"\xb1"]
    assert machine.target_incline_pct == pytest.approx(2.0)
    assert machine.target_speed_kmh == pytest.approx(2.6 * KMH_PER_MPH, abs=1e-6)
    assert machine.state is BeltState.RUNNING
    assert answers(side, b"\xa30032\xa2") == [b"\xb3", b"\xb2"]
    assert machine.state is BeltState.STOPPED
    assert answers(side, b"\xa2") == [b"\xb2"]  # stopping a stopped belt is acknowledged


def test_commands_split_anywhere_are_read_whole() -> None:
    side, _ = responder()
    assert answers(side, b"\xa30") == []
    assert answers(side, b"02") == []
    assert answers(side, b"6") == [b"\xb3"]


@pytest.mark.parametrize(
    ("request_bytes", "answer"),
    [
        (b"\xa30130", b"\xbe"),  # 13 mph: above the machine's 12
        (b"\xa40300", b"\xbe"),  # 30 %
        (b"\xa3026\xa2", b"\xbf"),  # three digits, cut short by the next command
        (b"\xa3+026", b"\xbf"),
        (b"\xa9", b"\xbf"),
        (b"\xc1", b"\xbf"),  # no status requests on this machine
        (b"A1\r", b"\xbf"),  # ASCII text is not a command
    ],
)
def test_refusals(request_bytes: bytes, answer: bytes) -> None:
    side, machine = responder()
    assert answers(side, request_bytes)[0] == answer
    assert machine.target_speed_kmh == 0 and machine.target_incline_pct == 0


def test_start_without_the_safety_key_is_illegal() -> None:
    side, machine = responder()
    machine.pull_safety_key()
    assert answers(side, b"\xa1") == [b"\xbf"]
    assert answers(side, b"\xa30026") == [b"\xbf"]


def test_status_requests_report_belt_speed_and_grade() -> None:
    side, machine = responder(status_query=True)
    assert answers(side, b"\xc1\xc2") == [b"\xd10000", b"\xd20000"]
    answers(side, b"\xa30026\xa40020\xa1")
    assert answers(side, b"\xc3\xc4") == [b"\xd30026", b"\xd40020"]  # what is set
    assert isinstance(machine.clock, ManualClock)
    machine.clock.advance(10)
    assert answers(side, b"\xc1\xc2") == [b"\xd10026", b"\xd20020"]  # what the belt does


@settings(deadline=None)
@given(garbage=st.binary(max_size=200))
def test_any_bytes_then_a_good_command_gets_an_answer(garbage: bytes) -> None:
    side, _ = responder()
    handled = side.feed(garbage + b"\xa2")
    assert handled[-1].reply == b"\xb2"


@settings(deadline=None)
@given(st.binary(max_size=100))
def test_the_splitter_never_raises(data: bytes) -> None:
    for request, complete in CommandSplitter().feed(data):
        assert request and (not complete or len(request) in (1, 5))
