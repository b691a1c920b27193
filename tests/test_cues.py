"""Cue wording: one place, the seeds' phrasing, numbers as words, every fault covered."""

from __future__ import annotations

import pytest

from retrotread import cues
from retrotread.events import StopReason
from retrotread.program import find_program, parse_program
from retrotread.program.model import Handrail
from retrotread.vocabulary import FaultKind

RETRO_30 = """\
name = "one-retro"
description = "a warm-up, one retro block with no cue of its own, a cool-down"
[[blocks]]
kind = "warm-up"
duration = "2m"
speed = 2.5
[[blocks]]
kind = "turn-around"
[[blocks]]
kind = "retro"
duration = "30s"
speed = 2.8
handrail = "both-hands"
[[blocks]]
kind = "turn-around"
[[blocks]]
kind = "cool-down"
duration = "1m30s"
speed = 2.0
handrail = "light-touch"
cue = "controlled steps, let the breathing settle"
"""


def steps():  # type: ignore[no-untyped-def]
    return parse_program(RETRO_30, "one-retro.toml").steps


@pytest.mark.parametrize(
    ("n", "words"),
    [(0, "zero"), (5, "five"), (15, "fifteen"), (30, "thirty"), (45, "forty-five"),
     (90, "ninety"), (120, "one hundred twenty")],
)  # fmt: skip
def test_numbers_are_words(n: int, words: str) -> None:
    assert cues.number_words(n) == words


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(1, "one second"), (30, "thirty seconds"), (60, "one minute"), (90, "one minute thirty"),
     (120, "two minutes"), (150, "two minutes thirty"), (600, "ten minutes")],
)  # fmt: skip
def test_durations_are_words(seconds: int, words: str) -> None:
    assert cues.duration_words(seconds) == words


def test_a_retro_block_starts_with_the_seeds_phrasing() -> None:
    retro = steps()[2]
    said = cues.block_start(retro)
    assert said.startswith("Retro walk, thirty seconds, hold both handrails.")
    # No cue in the program: the seeds' reminders fill in.
    assert "upright, slight forward lean" in said.lower()
    assert "controlled steps" in said.lower()
    assert "look over your shoulder now and then" in said.lower()


def test_a_block_with_its_own_cue_says_it_after_retrotreads_words() -> None:
    cool_down = steps()[4]
    assert cues.block_start(cool_down) == (
        "Cool-down, one minute thirty, light touch on the handrails. "
        "Controlled steps, let the breathing settle."
    )


def test_the_turn_around_says_hold_both_handrails_before_turning() -> None:
    turn_to_rear, turn_to_front = steps()[1], steps()[3]
    said = cues.block_start(turn_to_rear)
    assert said.index("hold both handrails") < said.index("turn to face the rear")
    assert "turn to face the front" in cues.block_start(turn_to_front)
    assert said == "Turn around: hold both handrails, turn to face the rear."
    assert cues.coming_up(turn_to_rear) == "Next: turn around, both handrails."
    assert cues.coming_up(steps()[2]) == "Next, retro walk."


def test_the_console_and_the_voice_share_one_wording() -> None:
    for step in find_program("first-week").steps:
        assert step.cue == cues.display_cue(step)
        assert step.block.handrail.cue == cues.HANDRAIL[step.block.handrail]
        handrail_words = "hold both handrails"
        if step.kind.value != "turn-around":
            handrail_words = cues.handrail(step.block.handrail)
        assert handrail_words in cues.block_start(step).lower()
    assert set(cues.HANDRAIL) == {h.value for h in Handrail}


def test_halfway_on_a_retro_block_reminds_to_look_over_the_shoulder() -> None:
    assert cues.halfway(steps()[2]) == "Halfway. Look over your shoulder now and then."
    assert cues.halfway(steps()[0]) == "Halfway."


def test_every_stop_reason_has_words_or_defers_to_its_fault() -> None:
    for reason in StopReason:
        said = cues.stopped(reason)
        if reason is StopReason.FAULT:
            assert said is None  # the fault itself is spoken
        else:
            assert said and ("stop" in said.lower() or "safety key" in said.lower())


def test_every_fault_kind_has_its_own_words() -> None:
    # Fault.kind is a FaultKind (the type checker refuses a string), and every kind is spoken.
    assert set(cues.FAULTS) == set(FaultKind)
    for kind in FaultKind:
        said = cues.fault(kind)
        assert said.endswith(".") and len(said.split()) <= 16, kind
