"""intervals.icu workout text in: sections, repeats, paces, ramps, cues."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrotread.program import ProgramError
from retrotread.program.formats import ImportOptions, Units, import_file, parse_rules
from retrotread.units import Unit, kmh, mph
from tests.import_support import (
    assert_mistake_named,
    import_outcome,
    imports_checks_and_rehearses,
    mistaken,
    mutations,
)

# Written for these tests in intervals.icu's builder notation.
SAMPLE = """\
Warmup
- 3m 23:00/mi Pace

Main set 4x
- Backward 30s 21:25/mi Pace
- Easy 1m 24:00/mi Pace

- Steady 2m 22:30-23:30/mi Pace
- 400mtr 23:00/mi Pace
- 1m freeride

Cooldown
- 2m ramp 24:00-27:00/mi Pace
"""
RETRO = parse_rules(["15-45s@2.6-3.2mph"])
OPTIONS = ImportOptions(retro=RETRO, free_speed=mph("2.3"))


def write(tmp_path: Path, text: str | bytes, name: str = "workout.txt") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def problems(tmp_path: Path, text: str, options: ImportOptions = OPTIONS) -> list[str]:
    with pytest.raises(ProgramError) as info:
        import_file(write(tmp_path, text), options)
    return info.value.lines()


def test_sample_imports_checks_and_rehearses(tmp_path: Path) -> None:
    program = imports_checks_and_rehearses(write(tmp_path, SAMPLE), OPTIONS, tmp_path)
    kinds = [str(step.kind) for step in program.steps]
    assert kinds == (
        ["warm-up"]
        + ["turn-around", "retro", "turn-around", "forward"] * 4
        + ["forward"] * 3
        + ["cool-down"] * 4
    )
    assert program.steps[0].block.speed == mph("2.61")  # 23:00 per mile
    retro = program.steps[2]
    assert retro.block.speed == mph("2.8") and retro.duration_s == 30
    assert retro.block.cue == "Backward" and retro.title == "Main set (1/4)"
    steady = program.steps[17]
    assert steady.block.speed == mph("2.61") and steady.block.cue == "Steady"  # middle of range
    assert program.steps[18].duration_s == 343  # 400 m at 23:00/mi
    assert program.steps[19].block.speed == mph("2.3")  # freeride at --free-speed
    cool = [s.block.speed.mph for s in program.steps[-4:] if s.block.speed]
    assert cool == sorted(cool, reverse=True)


def test_repeat_on_a_line_of_its_own_and_time_forms(tmp_path: Path) -> None:
    text = '3x\n- 1m30 20:00/mi Pace\n- 45" 20:00/mi Pace\n- 1\'15" 20:00/mi Pace\n'
    program = import_file(write(tmp_path, text), ImportOptions()).program
    assert [s.duration_s for s in program.steps] == [90, 45, 75] * 3


def test_metric_paces_and_bare_paces(tmp_path: Path) -> None:
    program = import_file(write(tmp_path, "- 5m 12:00/km Pace\n"), ImportOptions()).program
    assert program.steps[0].block.speed == kmh(5)
    assert problems(tmp_path, "- 5m 20:00 Pace\n", ImportOptions())[0].startswith(
        f"{tmp_path / 'workout.txt'}:1: the pace 20:00 has no /km or /mi; --units"
    )
    bare = write(tmp_path, "- 5m 20:00 Pace\n")
    program = import_file(bare, ImportOptions(units=Units.MIN_PER_KM)).program
    assert program.steps[0].block.speed == kmh(3)
    speed = import_file(bare, ImportOptions(units=Units.MPH)).program.steps[0].block.speed
    assert speed is not None and speed.unit is Unit.MPH and speed == mph(3)


def test_a_share_of_threshold_pace_needs_the_reference(tmp_path: Path) -> None:
    text = "- 2m 90% Pace\n"
    assert "pass --pace-ref" in problems(tmp_path, text, ImportOptions())[0]
    program = import_file(write(tmp_path, text), ImportOptions(pace_ref=mph(3))).program
    assert program.steps[0].block.speed == mph("2.7")


MISTAKES = [
    # (change to SAMPLE, line, text)
    (("- 3m 23:00/mi Pace", "- 3m 75%"), 2, "75% is a power target"),
    (("- 3m 23:00/mi Pace", "- 3m Z2 Pace"), 2, "Z2 pace is a pace zone"),
    (("- 3m 23:00/mi Pace", "- 3m 70% HR"), 2, "70% hr is a heart-rate target"),
    (("- 3m 23:00/mi Pace", "- 3m"), 2, "has no pace target"),
    (("- 3m 23:00/mi Pace", "- three minutes easy"), 2, "a step needs a duration"),
    (("Main set 4x", "Main set 400x"), 4, "a repeat runs 1 to 100 rounds"),
    (("- Easy 1m 24:00/mi Pace", "- Easy 5h 24:00/mi Pace"), 6, "longer than the 4-hour limit"),
    (("21:25/mi", "12:00/mi"), 5, "speed 5 mph is above the walking band"),
]


@pytest.mark.parametrize(("change", "line", "text"), MISTAKES, ids=[m[2][:36] for m in MISTAKES])
def test_mistakes_name_file_and_line(
    change: tuple[str, str], line: int, text: str, tmp_path: Path
) -> None:
    assert_mistake_named(
        problems(tmp_path, mistaken(SAMPLE, change)), tmp_path / "workout.txt", line, text
    )


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "- 3m 20:00/mi Pace\n- caf\xe9 1m 20:00/mi Pace\n".encode("latin-1"))
    with pytest.raises(ProgramError) as info:
        import_file(path, OPTIONS)
    assert info.value.lines() == [f"{path}:2: is not UTF-8 text"]


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
FUZZ_OPTIONS = ImportOptions(retro=RETRO, free_speed=mph(2), pace_ref=mph(3), units=Units.MPH)


@FUZZ
@given(raw=st.binary(max_size=400))
def test_arbitrary_bytes_give_a_program_or_a_program_error(raw: bytes, tmp_path: Path) -> None:
    import_outcome(write(tmp_path, raw, "fuzz.txt"), FUZZ_OPTIONS)


@FUZZ
@given(text=mutations(SAMPLE))
def test_mutated_files_give_a_program_or_a_program_error(text: str, tmp_path: Path) -> None:
    import_outcome(write(tmp_path, text, "fuzz.txt"), FUZZ_OPTIONS)
