"""retrotread's CSAFE codec: the wire bytes from the protocol notes, stuffing, and fuzzing."""

import contextlib
from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from retrotread.errors import ProtocolError
from retrotread.protocols import csafe
from retrotread.protocols.csafe import (
    Frame,
    FrameDecoder,
    MachineState,
    PreviousFrame,
    Status,
    decode_frame,
    encode_frame,
    parse_response,
)
from retrotread.units import Quantity, Unit, kmh, mph, percent

TENTH_MPH = csafe.speed_unit_named("0.1 mph")
TENTH_PERCENT = csafe.grade_unit_named("0.1%")


# -- the bytes the issue names ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "wire"),
    [
        (csafe.set_speed(mph("2.6"), TENTH_MPH), "F1 25 03 1A 00 11 2D F2"),
        (csafe.set_speed(mph("3.2"), TENTH_MPH), "F1 25 03 20 00 11 17 F2"),
        (csafe.set_grade(percent("2.0"), TENTH_PERCENT), "F1 28 03 14 00 4C 73 F2"),
        (csafe.GO_IN_USE, "F1 85 85 F2"),
    ],
)
def test_frames_match_the_protocol_notes(command: csafe.Command, wire: str) -> None:
    assert encode_frame([command]) == bytes.fromhex(wire)
    assert decode_frame(bytes.fromhex(wire)).contents == command.encode()


def test_speed_units_carry_exact_integers() -> None:
    hundredth_kmh = csafe.speed_unit_named("0.01 km/h")
    assert csafe.set_speed(kmh("4.19"), hundredth_kmh).data == bytes.fromhex("A3 01 32")
    assert hundredth_kmh.quantity(419) == kmh("4.19")
    with pytest.raises(ValueError, match="whole number"):
        csafe.set_speed(mph("2.6"), hundredth_kmh)  # 418.43 counts: never rounded silently
    with pytest.raises(ValueError, match="16 bits"):
        csafe.set_speed(mph(7000), TENTH_MPH)


def test_unit_names() -> None:
    assert csafe.speed_unit_named("0.1mph").code == 0x11
    assert csafe.speed_unit_named("0.01 KM/H").code == 0x32
    assert csafe.speed_unit_named("kph").code == 0x30
    assert csafe.grade_unit_named("0.01 %").code == 0x4B
    with pytest.raises(ValueError, match="known: mph"):
        csafe.speed_unit_named("furlongs")


# -- stuffing, checksum, extended frames ------------------------------------------------------


def test_flag_bytes_in_contents_and_checksum_are_stuffed() -> None:
    # contents 80 71: checksum F1 is itself a flag and travels as F3 01
    assert Frame(b"\x80\x71").encode() == bytes.fromhex("F1 80 71 F3 01 F2")
    # a content byte F2 travels as F3 02 and comes back whole
    wire = Frame(b"\xa5\x03\xf2\x00\x11").encode()
    assert wire == bytes.fromhex("F1 A5 03 F3 02 00 11 45 F2")
    assert decode_frame(wire).contents == b"\xa5\x03\xf2\x00\x11"


def test_extended_frames_carry_addresses() -> None:
    wire = encode_frame([csafe.GET_STATUS], destination=0x01, source=0x00)
    assert wire == bytes.fromhex("F0 01 00 80 80 F2")
    frame = decode_frame(bytes.fromhex("F0 00 F3 00 85 85 F2"))  # source F0 is stuffed
    assert (frame.destination, frame.source, frame.contents) == (0x00, 0xF0, b"\x85")


@pytest.mark.parametrize(
    ("wire", "complaint"),
    [
        ("F1 85 84 F2", "checksum"),
        ("F1 85 F3 07 F2", "stuffed"),
        ("F1 85 F3 F2", "inside a stuffed byte"),
        ("F1 85 F2 85 F2", "flag F2 inside"),
        ("F1 F2", "no contents"),
        ("F0 01 F2", "addresses"),
        ("F1 85 85", "end with F2"),
        ("85 85 F2", "begin with"),
        ("F1 " + "80 " * 95 + "F2", "exceeds 96"),
    ],
)
def test_broken_frames_raise_protocol_error(wire: str, complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint):
        decode_frame(bytes.fromhex(wire))


def test_frames_longer_than_96_bytes_are_not_built() -> None:
    with pytest.raises(ValueError, match="exceeds 96"):
        encode_frame([csafe.GET_STATUS] * 94)


# -- status and responses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("byte", "state", "previous", "toggle"),
    [
        (0x85, MachineState.IN_USE, PreviousFrame.OK, True),
        (0x17, MachineState.FINISHED, PreviousFrame.REJECTED, False),
        (0xA2, MachineState.IDLE, PreviousFrame.BAD, True),
        (0x31, MachineState.READY, PreviousFrame.NOT_READY, False),
        (0x08, MachineState.MANUAL, PreviousFrame.OK, False),
    ],
)
def test_status_byte(byte: int, state: MachineState, previous: PreviousFrame, toggle: bool) -> None:
    assert Status.from_byte(byte) == Status(state, previous, toggle)


def test_status_byte_without_a_state_is_an_error() -> None:
    with pytest.raises(ProtocolError, match="no machine state"):
        Status.from_byte(0x04)


def test_multi_command_response() -> None:
    contents = bytes.fromhex("85 80 00 A5 03 1A 00 11 A8 03 14 00 4C A1 03 2A 00 24 A0 03 00 01 1E")
    response = parse_response(contents)
    assert response.status.state is MachineState.IN_USE
    assert [r.name for r in response.replies] == [
        "GET_STATUS",
        "GET_SPEED",
        "GET_GRADE",
        "GET_HORIZONTAL",
        "GET_TWORK",
    ]
    speed, grade, distance, work = response.replies[1:]
    assert csafe.read_speed(speed) == mph("2.6")
    assert csafe.read_grade(grade) == percent("2.0")
    assert csafe.read_distance_m(distance) == 42.0
    assert csafe.read_elapsed_s(work) == 90.0
    commands = (csafe.GET_STATUS, csafe.GET_SPEED, csafe.GET_GRADE)
    assert response.answered(commands) == 3


def test_a_refused_frame_answers_only_what_ran() -> None:
    response = parse_response(bytes.fromhex("82 82 00"))  # GoIdle ran, GoInUse refused
    assert response.answered((csafe.GO_IDLE, csafe.GO_IN_USE)) == 1


@pytest.mark.parametrize(
    ("contents", "complaint"),
    [
        ("", "empty"),
        ("85 A5", "no length byte"),
        ("85 A5 03 1A 00", "claims 3 bytes"),
    ],
)
def test_broken_responses(contents: str, complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint):
        parse_response(bytes.fromhex(contents))


def test_readings_reject_foreign_units_and_sizes() -> None:
    reply = csafe.Reply(0xA5, bytes.fromhex("1A 00 4C"))
    with pytest.raises(ProtocolError, match="not a speed unit"):
        csafe.read_speed(reply)
    with pytest.raises(ProtocolError, match="2 bytes, not 3"):
        csafe.read_grade(csafe.Reply(0xA8, b"\x14\x00"))
    with pytest.raises(ProtocolError, match="not a time"):
        csafe.read_elapsed_s(csafe.Reply(0xA0, bytes((0, 61, 0))))
    assert csafe.read_distance_m(csafe.Reply(0xA1, bytes.fromhex("0A 00 02"))) == pytest.approx(
        1609.344
    )


# -- the stream decoder -----------------------------------------------------------------------


def test_decoder_reads_frames_split_anywhere_and_skips_noise() -> None:
    decoder = FrameDecoder()
    wire = b"\x00\x13" + encode_frame([csafe.GO_IN_USE]) + encode_frame([csafe.GET_STATUS])
    out = [item for byte in wire for item in decoder.feed(bytes((byte,)))]
    assert out == [Frame(b"\x85"), Frame(b"\x80")]
    assert decoder.discarded == 2


def test_decoder_reports_a_bad_frame_and_reads_the_next() -> None:
    decoder = FrameDecoder()
    out = decoder.feed(bytes.fromhex("F1 85 84 F2 F1 85 85 F2"))
    assert isinstance(out[0], ProtocolError)
    assert out[1] == Frame(b"\x85")


def test_decoder_gives_up_on_a_frame_without_a_stop_flag() -> None:
    decoder = FrameDecoder()
    out = decoder.feed(b"\xf1" + b"\x80" * 200 + encode_frame([csafe.GO_IN_USE]))
    assert isinstance(out[0], ProtocolError)
    assert out[-1] == Frame(b"\x85")


# -- fuzzing ----------------------------------------------------------------------------------

contents_strategy = st.binary(min_size=1, max_size=40)
flag_heavy = st.lists(st.sampled_from([0xF0, 0xF1, 0xF2, 0xF3, 0x00, 0x85]), min_size=1).map(bytes)
addresses = st.one_of(st.none(), st.tuples(st.integers(0, 255), st.integers(0, 255)))


def _frame(contents: bytes, address: tuple[int, int] | None) -> Frame:
    return Frame(contents, *(address or (None, None)))


@settings(deadline=None)
@given(st.one_of(contents_strategy, flag_heavy.filter(lambda b: len(b) <= 40)), addresses)
def test_round_trip(contents: bytes, address: tuple[int, int] | None) -> None:
    frame = _frame(contents, address)
    wire = frame.encode()
    assert not any(flag in wire[1:-1] for flag in (0xF0, 0xF1, 0xF2))
    assert decode_frame(wire) == frame


@settings(deadline=None)
@given(st.binary(max_size=120))
@example(b"\xf1\xf3")
@example(b"\xf0\xf2")
def test_decode_frame_raises_only_protocol_error(wire: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_frame(wire)


@settings(deadline=None)
@given(st.binary(max_size=120))
def test_parse_response_raises_only_protocol_error(contents: bytes) -> None:
    try:
        response = parse_response(contents)
    except ProtocolError:
        return
    for reply in response.replies:
        for reader in (csafe.read_speed, csafe.read_grade, csafe.read_distance_m):
            with contextlib.suppress(ProtocolError):
                reader(reply)
        with contextlib.suppress(ProtocolError):
            csafe.read_elapsed_s(reply)


@settings(deadline=None)
@given(
    garbage=st.binary(max_size=200),
    contents=contents_strategy,
    address=addresses,
    cuts=st.lists(st.integers(0, 400), max_size=6),
)
def test_a_good_frame_after_garbage_is_read(
    garbage: bytes, contents: bytes, address: tuple[int, int] | None, cuts: list[int]
) -> None:
    good = _frame(contents, address)
    stream = garbage + good.encode()
    decoder = FrameDecoder()
    out: list[Frame | ProtocolError] = []
    start = 0
    for cut in [*sorted({min(c, len(stream)) for c in cuts}), len(stream)]:
        out += decoder.feed(stream[start:cut])  # never raises, whatever the chunking
        start = cut
    assert out[-1] == good
    assert all(isinstance(item, Frame | ProtocolError) for item in out)


@settings(deadline=None)
@given(contents=contents_strategy, keep=st.integers(1, 60), flip=st.integers(1, 255))
def test_truncated_and_corrupted_frames_do_not_hide_the_next(
    contents: bytes, keep: int, flip: int
) -> None:
    wire = Frame(contents).encode()
    truncated = wire[: min(keep, len(wire) - 1)]
    corrupted = bytearray(wire)
    corrupted[-2] ^= flip  # the checksum (or its stuffed tail) is wrong now
    decoder = FrameDecoder()
    follow = Frame(b"\x85")
    out = decoder.feed(truncated + bytes(corrupted) + follow.encode())
    assert out[-1] == follow
    assert Frame(contents) not in out[:-1] or contents == b"\x85"


def test_exact_units_of_reported_readings() -> None:
    reply = csafe.Reply(0xA5, bytes.fromhex("A3 01 32"))
    assert csafe.read_speed(reply) == Quantity(Fraction(419, 100), Unit.KMH)
