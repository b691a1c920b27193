"""The simulator's CSAFE side on its own: its frame reader, its state machine, its answers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrotread_sim import BeltState, MachineSpec, ManualClock, SimTreadmill
from retrotread_sim.csafe import (
    CsafeOptions,
    CsafeResponder,
    CsafeState,
    Frame,
    FrameError,
    FrameSplitter,
    build_frame,
    parse_frame,
    split_commands,
)

KMH_PER_MPH = 1.609344


def responder(**options: object) -> tuple[CsafeResponder, SimTreadmill, ManualClock]:
    clock = ManualClock()
    spec = MachineSpec(speed_min_kmh=0.5 * KMH_PER_MPH, speed_increment_kmh=0.1 * KMH_PER_MPH)
    machine = SimTreadmill(spec, clock)
    return CsafeResponder(machine, CsafeOptions(**options)), machine, clock  # type: ignore[arg-type]


def replies(contents: bytes) -> dict[int, bytes]:
    """An answer's ``<id> <len> <data>`` records after the status byte."""
    out: dict[int, bytes] = {}
    at = 1
    while at < len(contents):
        ident, size = contents[at], contents[at + 1]
        out[ident] = contents[at + 2 : at + 2 + size]
        at += 2 + size
    return out


def ask(side: CsafeResponder, wire: str) -> str | None:
    [handled] = side.feed(bytes.fromhex(wire))
    return handled.reply.hex(" ").upper() if handled.reply is not None else None


def test_the_documented_frames_reach_the_machine() -> None:
    side, machine, _ = responder()
    assert ask(side, "F1 28 03 14 00 4C 73 F2") == "F1 81 28 00 A9 F2"  # toggle, ok, Ready
    assert machine.target_incline_pct == pytest.approx(2.0)
    assert ask(side, "F1 25 03 1A 00 11 2D F2") == "F1 01 25 00 24 F2"
    assert machine.target_speed_kmh == pytest.approx(2.6 * KMH_PER_MPH, abs=1e-6)
    assert ask(side, "F1 25 03 20 00 11 17 F2") == "F1 81 25 00 A4 F2"
    assert machine.target_speed_kmh == pytest.approx(3.2 * KMH_PER_MPH, abs=1e-6)


def test_a_workout_goes_idle_in_use_finished() -> None:
    side, machine, clock = responder()
    reply = ask(side, "F1 85 85 F2")  # GoInUse straight from Ready: not allowed
    assert reply == "F1 81 81 F2"  # status only: the command was not carried out
    assert machine.state is BeltState.IDLE
    assert ask(side, "F1 80 80 F2") == "F1 31 80 00 B1 F2"  # previous frame: not ready
    assert ask(side, "F1 82 85 07 F2") == "F1 85 82 00 85 00 82 F2"
    assert side.state is CsafeState.IN_USE and machine.state is BeltState.RUNNING
    clock.advance(3)
    assert ask(side, "F1 86 86 F2") == "F1 07 86 00 81 F2"
    assert side.state is CsafeState.FINISHED and machine.state is BeltState.STOPPED
    assert ask(side, "F1 86 86 F2") is not None  # finishing twice is harmless


def test_telemetry_answers_in_the_console_units() -> None:
    side, machine, clock = responder()
    ask(side, "F1 25 03 1A 00 11 2D F2")
    ask(side, "F1 82 85 07 F2")
    clock.advance(65)
    [handled] = side.feed(build_frame(bytes.fromhex("80 A5 A8 A1 A0")))
    assert handled.reply is not None
    answers = replies(parse_frame(handled.reply).contents)
    assert answers[0xA5] == bytes.fromhex("1A 00 11")  # 2.6 mph in 0.1 mph
    assert answers[0xA8] == bytes.fromhex("00 00 4C")
    metres = int.from_bytes(answers[0xA1][:2], "little")
    assert metres == round(machine.snapshot().distance_m) and answers[0xA1][2] == 0x24
    assert answers[0xA0] == bytes((0, 1, 5))  # 0 h 1 min 5 s


def test_bad_frames_get_no_answer_and_are_reported_next_time() -> None:
    side, _, _ = responder()
    assert ask(side, "F1 85 84 F2") is None  # wrong checksum
    assert ask(side, "F1 80 80 F2") == "F1 A1 80 00 21 F2"  # previous frame: bad


def test_unknown_commands_and_foreign_units_are_rejected() -> None:
    side, machine, _ = responder()
    assert ask(side, "F1 99 99 F2") == "F1 81 81 F2"
    assert ask(side, "F1 25 03 1A 00 4C 70 F2") == "F1 11 11 F2"  # previous rejected
    assert machine.target_speed_kmh == 0


def test_out_of_range_speed_is_refused() -> None:
    side, machine, _ = responder()
    too_fast = build_frame(bytes.fromhex("25 03 E8 03 11"))  # 100 mph
    [handled] = side.feed(too_fast)
    assert handled.reply is not None and "refused" in handled.note
    assert parse_frame(handled.reply).contents == b"\x81"
    assert machine.target_speed_kmh == 0


def test_the_console_changes_the_csafe_state() -> None:
    side, machine, _ = responder()
    ask(side, "F1 82 85 07 F2")
    machine.console_pause()
    assert side.state is CsafeState.PAUSED
    machine.console_start()
    assert side.state is CsafeState.IN_USE
    machine.pull_safety_key()
    assert ask(side, "F1 80 80 F2") == "F1 00 80 00 80 F2"  # error
    assert ask(side, "F1 85 85 F2") == "F1 80 80 F2"  # no GoInUse without the key
    machine.insert_safety_key()
    assert ask(side, "F1 80 80 F2") == "F1 32 80 00 B2 F2"  # idle; previous not ready


def test_a_read_only_console_refuses_to_be_driven() -> None:
    side, machine, _ = responder(read_only=True)
    assert side.state is CsafeState.IDLE
    assert ask(side, "F1 25 03 1A 00 11 2D F2") == "F1 82 82 F2"
    assert ask(side, "F1 82 85 07 F2") == "F1 12 12 F2"
    machine.console_start()
    assert ask(side, "F1 80 80 F2") == "F1 95 80 00 15 F2"  # in use, by hand


def test_extended_frames_are_answered_when_addressed_to_us() -> None:
    side, _, _ = responder(address=0x07)
    assert ask(side, "F0 05 00 80 80 F2") is None  # for another console on the bus
    assert ask(side, "F0 07 00 80 80 F2") == "F0 00 07 81 80 00 01 F2"
    assert ask(side, "F0 FF 00 80 80 F2") == "F0 00 07 01 80 00 81 F2"  # broadcast


def test_stuffing_both_ways() -> None:
    frame = build_frame(b"\xa5\x03\xf2\x00\x11")
    assert frame == bytes.fromhex("F1 A5 03 F3 02 00 11 45 F2")
    assert parse_frame(frame) == Frame(b"\xa5\x03\xf2\x00\x11")
    assert build_frame(b"\x80\x71") == bytes.fromhex("F1 80 71 F3 01 F2")
    assert parse_frame(bytes.fromhex("F0 00 F3 00 85 85 F2")) == Frame(b"\x85", 0x00, 0xF0)


@pytest.mark.parametrize(
    "wire",
    ["F1 85 F3 09 F2", "F1 85 F3 F2", "F1 F2", "F0 01 F2", "F1 " + "00 " * 96 + "F2"],
)
def test_broken_frames(wire: str) -> None:
    with pytest.raises(FrameError):
        parse_frame(bytes.fromhex(wire))


def test_truncated_long_command() -> None:
    with pytest.raises(FrameError, match="announces 3 bytes"):
        split_commands(bytes.fromhex("25 03 1A"))


@settings(deadline=None, max_examples=300)
@given(garbage=st.binary(max_size=200), cuts=st.lists(st.integers(0, 300), max_size=5))
def test_any_bytes_then_a_good_frame_gets_an_answer(garbage: bytes, cuts: list[int]) -> None:
    side, _, _ = responder()
    stream = garbage + bytes.fromhex("F1 80 80 F2")
    handled = []
    start = 0
    for cut in [*sorted({min(c, len(stream)) for c in cuts}), len(stream)]:
        handled += side.feed(stream[start:cut])  # never raises
        start = cut
    assert handled[-1].request == bytes.fromhex("F1 80 80 F2")
    assert handled[-1].reply is not None
    assert parse_frame(handled[-1].reply).contents[1:] == b"\x80\x00"


@settings(deadline=None)
@given(st.binary(max_size=100))
def test_the_splitter_never_raises(data: bytes) -> None:
    arrivals = FrameSplitter().feed(data)
    assert all((a.frame is None) == bool(a.error) for a in arrivals)
