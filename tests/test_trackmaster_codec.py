"""retrotread's Trackmaster codec: command bytes, one-byte answers, a fuzzed answer decoder.

The wire as the Trackmaster manual lists it "in HEX" and the public trackmaster-python library
sends it (``raw.py``: ``a2b_hex('A' + code) + data.encode('ascii')``): one command byte, then
ASCII digits for A3/A4, no terminator; one answer byte.
"""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrotread.drivers.trackmaster import AnswerDecoder, encode, read_value
from retrotread.errors import ProtocolError


def test_commands_from_the_protocol_notes() -> None:
    assert encode("A1") == b"\xa1"
    assert encode("A2") == b"\xa2"
    assert encode("A3", 26) == b"\xa30026"  # 2.6 mph
    assert encode("A4", 20) == b"\xa40020"  # 2.0 %
    assert encode("C1") == b"\xc1"
    with pytest.raises(ValueError, match="4 digits"):
        encode("A3", 10000)
    with pytest.raises(ValueError, match="one hex byte"):
        encode("A3 0")


def test_answers_are_one_byte_and_status_answers_carry_four_digits() -> None:
    decoder = AnswerDecoder()
    assert decoder.feed(b"\xb3\xb4\xbe") == ["B3", "B4", "BE"]
    assert decoder.feed(b"\xbf\xd10") == ["BF"]
    assert decoder.feed(b"026\xd2") == ["D10026"]
    assert decoder.feed(b"0020") == ["D20020"]


def test_unexpected_bytes_and_cut_status_answers_are_errors_not_exceptions() -> None:
    decoder = AnswerDecoder()
    out = decoder.feed(b"\x8e\xd100\xb1\x42\xb2")
    assert isinstance(out[0], ProtocolError)
    assert isinstance(out[1], ProtocolError) and "cut short" in str(out[1])
    assert out[2] == "B1"
    assert isinstance(out[3], ProtocolError)
    assert out[4] == "B2"


def test_read_value() -> None:
    assert read_value("D10026", "D1") == 26
    for broken in ("D1002", "D1002x", "D2 026", "D20026"):
        with pytest.raises(ProtocolError):
            read_value(broken, "D1")


@settings(deadline=None)
@given(garbage=st.binary(max_size=200), cuts=st.lists(st.integers(0, 300), max_size=5))
def test_a_good_answer_after_garbage_is_read(garbage: bytes, cuts: list[int]) -> None:
    stream = garbage + b"\xb3"
    decoder = AnswerDecoder()
    out: list[str | ProtocolError] = []
    start = 0
    for cut in [*sorted({min(c, len(stream)) for c in cuts}), len(stream)]:
        out += decoder.feed(stream[start:cut])
        start = cut
    # A status answer cut short by the B3 comes out as an error first, then the B3.
    assert out[-1] == "B3"
    for item in out:
        if isinstance(item, str):
            with contextlib.suppress(ProtocolError):
                read_value(item, "D1")
