"""The simulator's CSAFE side on its own: its frame reader, its state machine, its answers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrotread_sim import BeltState, MachineSpec, ManualClock, SimTreadmill
from retrotread_sim.csafe import (
    PERSONALITIES,
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


def responder(
    personality: str = "concept2", **options: object
) -> tuple[CsafeResponder, SimTreadmill, ManualClock]:
    clock = ManualClock()
    spec = MachineSpec(speed_min_kmh=0.5 * KMH_PER_MPH, speed_increment_kmh=0.1 * KMH_PER_MPH)
    machine = SimTreadmill(spec, clock)
    chosen = CsafeOptions(personality=PERSONALITIES[personality], **options)  # type: ignore[arg-type]
    return CsafeResponder(machine, chosen), machine, clock


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


POLL = "F1 80 A5 A8 A1 A0 8C F2"
GRADE_2 = "F1 28 03 14 00 4C 73 F2"
SPEED_2_6 = "F1 25 03 1A 00 11 2D F2"
GO_IN_USE = "F1 85 85 F2"
GO_IDLE = "F1 82 82 F2"


@pytest.mark.parametrize("personality", ["matrix", "concept2"])
def test_set_and_go_commands_are_answered_by_the_status_byte_alone(personality: str) -> None:
    side, machine, _ = responder(personality)
    assert ask(side, GRADE_2) == "F1 81 81 F2"  # toggle, ok, Ready: no 28 00 echo
    assert machine.target_incline_pct == pytest.approx(2.0)
    assert ask(side, SPEED_2_6) == "F1 01 01 F2"
    assert machine.target_speed_kmh == pytest.approx(2.6 * KMH_PER_MPH, abs=1e-6)


def test_get_status_matrix_answers_the_bare_status_byte() -> None:
    side, _, _ = responder("matrix")
    assert ask(side, "F1 80 80 F2") == "F1 81 81 F2"
    # The connect poll of issue 14, finding 1: GetSpeed first, no 80 record.
    assert (
        ask(side, POLL) == "F1 01 A5 03 00 00 11 A8 03 00 00 4A A1 03 00 00 24 A0 03 00 00 00 72 F2"
    )


def test_get_status_concept2_answers_80_01_status() -> None:
    side, _, _ = responder("concept2")
    assert ask(side, "F1 80 80 F2") == "F1 81 80 01 81 81 F2"
    answer = ask(side, POLL)
    assert answer is not None and answer.startswith("F1 01 80 01 01 A5 03")


def test_go_idle_resets_the_presets_on_both() -> None:
    for personality in ("matrix", "concept2"):
        side, machine, clock = responder(personality)
        ask(side, GRADE_2)  # in Ready: taken ...
        ask(side, SPEED_2_6)
        ask(side, "F1 82 85 07 F2")  # ... then GoIdle + GoInUse: the presets are gone
        clock.advance(10)
        snap = machine.snapshot()
        assert snap.target_incline_pct == 0 and snap.incline_pct == 0, personality
        assert snap.speed_kmh == pytest.approx(0.5 * KMH_PER_MPH)  # the machine's minimum


def test_matrix_takes_sets_only_before_the_workout() -> None:
    side, machine, _ = responder("matrix")
    ask(side, GO_IDLE)
    assert ask(side, GRADE_2) == "F1 02 02 F2"
    assert ask(side, GO_IN_USE) == "F1 85 85 F2"
    # In use: not carried out, toggle held (the firmware restores FC), refusal reported next.
    assert ask(side, SPEED_2_6) == "F1 85 85 F2"
    assert ask(side, "F1 80 80 F2") == "F1 15 15 F2"  # toggle flips; previous frame rejected
    assert machine.target_speed_kmh == 0


def test_concept2_takes_sets_in_use_and_reports_a_refusal_in_its_own_answer() -> None:
    side, machine, _ = responder("concept2")
    assert ask(side, GO_IN_USE) == "F1 85 85 F2"  # InUse straight from Ready is allowed
    assert ask(side, SPEED_2_6) == "F1 05 05 F2"
    assert machine.target_speed_kmh == pytest.approx(2.6 * KMH_PER_MPH, abs=1e-6)
    assert ask(side, GO_IDLE) == "F1 95 95 F2"  # not in use: rejected, toggle flips anyway
    assert ask(side, "F1 80 80 F2") == "F1 05 80 01 05 81 F2"


def test_matrix_needs_idle_before_in_use() -> None:
    side, machine, _ = responder("matrix")
    assert ask(side, GO_IN_USE) == "F1 01 01 F2"  # from Ready: not carried out, toggle held
    assert machine.state is BeltState.IDLE
    assert ask(side, "F1 82 85 07 F2") == "F1 95 95 F2"
    assert side.state is CsafeState.IN_USE and machine.state is BeltState.RUNNING


@pytest.mark.parametrize("personality", ["matrix", "concept2"])
def test_a_workout_goes_idle_in_use_finished(personality: str) -> None:
    side, machine, clock = responder(personality)
    ask(side, "F1 82 85 07 F2")
    assert side.state is CsafeState.IN_USE and machine.state is BeltState.RUNNING
    clock.advance(3)
    assert ask(side, "F1 86 86 F2") is not None
    assert side.state is CsafeState.FINISHED and machine.state is BeltState.STOPPED
    finished_twice = ask(side, "F1 86 86 F2")  # not carried out: nothing to finish
    assert finished_twice is not None and side.state is CsafeState.FINISHED


def test_telemetry_answers_in_the_console_units() -> None:
    side, machine, clock = responder("concept2")
    ask(side, SPEED_2_6)
    ask(side, GO_IN_USE)
    clock.advance(65)
    [handled] = side.feed(build_frame(bytes.fromhex("80 A5 A8 A1 A0")))
    assert handled.reply is not None
    answers = replies(parse_frame(handled.reply).contents)
    assert answers[0xA5] == bytes.fromhex("1A 00 11")  # 2.6 mph in 0.1 mph
    assert answers[0xA8] == bytes.fromhex("00 00 4C")
    metres = int.from_bytes(answers[0xA1][:2], "little")
    assert metres == round(machine.snapshot().distance_m) and answers[0xA1][2] == 0x24
    assert answers[0xA0] == bytes((0, 1, 5))  # 0 h 1 min 5 s


def test_matrix_reports_grade_in_whole_percent() -> None:
    side, _, clock = responder("matrix")
    ask(side, GO_IDLE)
    ask(side, GRADE_2)
    clock.advance(10)
    [handled] = side.feed(build_frame(bytes.fromhex("A8")))
    assert handled.reply is not None
    assert replies(parse_frame(handled.reply).contents)[0xA8] == bytes.fromhex("02 00 4A")


def test_counters_are_per_workout_unless_an_odometer_is_asked_for() -> None:
    side, _, clock = responder("concept2")
    ask(side, GO_IN_USE)
    clock.advance(30)
    ask(side, "F1 86 86 F2")
    clock.advance(5)
    ask(side, GO_IDLE)  # a new workout: the counters start again
    assert replies(parse_frame(side.feed(build_frame(b"\xa1"))[0].reply or b"").contents)[
        0xA1
    ] == bytes.fromhex("00 00 24")
    odometer, _, _ = responder("concept2", odometer_m=56.0)
    [handled] = odometer.feed(build_frame(b"\xa1"))
    assert replies(parse_frame(handled.reply or b"").contents)[0xA1] == bytes.fromhex("38 00 24")


def test_bad_frames_get_no_answer_and_are_reported_next_time() -> None:
    side, _, _ = responder("matrix")
    assert ask(side, "F1 85 84 F2") is None  # wrong checksum
    assert ask(side, "F1 80 80 F2") == "F1 A1 A1 F2"  # previous frame: bad


def test_the_empty_frame_reports_the_status_and_changes_nothing() -> None:
    side, _, _ = responder("matrix")
    ask(side, GO_IN_USE)  # refused from Ready
    assert ask(side, "F1 00 F2") == "F1 11 11 F2"  # previous frame rejected, toggle as it was
    assert ask(side, "F1 00 F2") == "F1 11 11 F2"


def test_unknown_commands_and_foreign_units_are_rejected() -> None:
    side, machine, _ = responder("concept2")
    assert ask(side, "F1 99 99 F2") == "F1 91 91 F2"
    assert ask(side, "F1 25 03 1A 00 4C 70 F2") == "F1 11 11 F2"
    assert machine.target_speed_kmh == 0


def test_out_of_range_speed_is_refused() -> None:
    side, machine, _ = responder("concept2")
    too_fast = build_frame(bytes.fromhex("25 03 E8 03 11"))  # 100 mph
    [handled] = side.feed(too_fast)
    assert handled.reply is not None and "refused" in handled.note
    assert parse_frame(handled.reply).contents == b"\x91"
    assert machine.target_speed_kmh == 0


def test_the_console_changes_the_csafe_state() -> None:
    side, machine, _ = responder("matrix")
    ask(side, "F1 82 85 07 F2")
    machine.console_pause()
    assert side.state is CsafeState.PAUSED
    machine.console_start()
    assert side.state is CsafeState.IN_USE
    machine.pull_safety_key()
    assert ask(side, "F1 80 80 F2") == "F1 00 00 F2"  # error
    assert ask(side, GO_IN_USE) == "F1 00 00 F2"  # no GoInUse without the key
    machine.insert_safety_key()
    assert ask(side, "F1 80 80 F2") == "F1 92 92 F2"  # idle; previous rejected


def test_a_read_only_console_refuses_to_be_driven() -> None:
    side, machine, _ = responder("concept2", read_only=True)
    assert side.state is CsafeState.IDLE
    assert ask(side, SPEED_2_6) == "F1 92 92 F2"
    assert machine.target_speed_kmh == 0
    machine.console_start()
    assert ask(side, "F1 80 80 F2") == "F1 05 80 01 05 81 F2"  # in use, by hand


def test_extended_frames_are_answered_when_addressed_to_us() -> None:
    side, _, _ = responder("concept2", address=0x07)
    assert ask(side, "F0 05 00 80 80 F2") is None  # for another console on the bus
    assert ask(side, "F0 07 00 80 80 F2") == "F0 00 07 81 80 01 81 81 F2"
    assert ask(side, "F0 FF 00 80 80 F2") == "F0 00 07 01 80 01 01 81 F2"  # broadcast


def test_stuffing_both_ways() -> None:
    frame = build_frame(b"\xa5\x03\xf2\x00\x11")
    assert frame == bytes.fromhex("F1 A5 03 F3 02 00 11 45 F2")
    assert parse_frame(frame) == Frame(b"\xa5\x03\xf2\x00\x11")
    assert build_frame(b"\x80\x71") == bytes.fromhex("F1 80 71 F3 01 F2")
    assert parse_frame(bytes.fromhex("F0 00 F3 00 85 85 F2")) == Frame(b"\x85", 0x00, 0xF0)


@pytest.mark.parametrize(
    "wire",
    ["F1 85 F3 09 F2", "F1 85 F3 F2", "F1 F2", "F1 01 F2", "F0 01 F2", "F1 " + "00 " * 96 + "F2"],
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
    assert parse_frame(handled[-1].reply).contents[1:] == b"\x80\x01" + bytes(
        parse_frame(handled[-1].reply).contents[:1]
    )


@settings(deadline=None)
@given(st.binary(max_size=100))
def test_the_splitter_never_raises(data: bytes) -> None:
    arrivals = FrameSplitter().feed(data)
    assert all((a.frame is None) == bool(a.error) for a in arrivals)
