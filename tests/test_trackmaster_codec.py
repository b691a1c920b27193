"""retrotread's Trackmaster codec: commands, answers, and a fuzzed line decoder."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrotread.drivers.trackmaster import LineDecoder, encode, read_value
from retrotread.errors import ProtocolError


def test_commands_from_the_protocol_notes() -> None:
    assert encode("A1") == b"A1\r"
    assert encode("A2") == b"A2\r"
    assert encode("A3", 26) == b"A30026\r"  # 2.6 mph
    assert encode("A4", 20) == b"A40020\r"  # 2.0 %
    with pytest.raises(ValueError, match="4 digits"):
        encode("A3", 10000)


def test_answers_are_split_at_cr_or_lf() -> None:
    decoder = LineDecoder()
    assert decoder.feed(b"B3\rB") == ["B3"]
    assert decoder.feed(b"4\r\nBE\n\r\rBF\r") == ["B4", "BE", "BF"]


def test_unreadable_and_overlong_answers_are_errors_not_exceptions() -> None:
    decoder = LineDecoder()
    out = decoder.feed(b"\x8eB3\r" + b"9" * 40 + b"\rB1\r")
    assert isinstance(out[0], ProtocolError)
    assert isinstance(out[1], ProtocolError)
    assert out[2:] == ["B1"]


def test_read_value() -> None:
    assert read_value("B50026", "B5") == 26
    for broken in ("B5002", "B5002x", "B6 026", "B60026"):
        with pytest.raises(ProtocolError):
            read_value(broken, "B5")


@settings(deadline=None)
@given(garbage=st.binary(max_size=200), cuts=st.lists(st.integers(0, 300), max_size=5))
def test_a_good_answer_after_garbage_is_read(garbage: bytes, cuts: list[int]) -> None:
    stream = garbage + b"\rB3\r"
    decoder = LineDecoder()
    out: list[str | ProtocolError] = []
    start = 0
    for cut in [*sorted({min(c, len(stream)) for c in cuts}), len(stream)]:
        out += decoder.feed(stream[start:cut])
        start = cut
    assert out[-1] == "B3"
    for item in out:
        if isinstance(item, str):
            with contextlib.suppress(ProtocolError):
                read_value(item, "B5")
