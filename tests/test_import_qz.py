"""QZ (qdomyos-zwift) treadmill programs (.xml) in: rows, repeats, ramps, text events, units."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrotread.program import BlockKind, ProgramError
from retrotread.program.formats import ImportOptions, Units, import_file, parse_rules
from retrotread.units import Unit, mph
from tests.import_support import (
    assert_mistake_named,
    import_outcome,
    imports_checks_and_rehearses,
    mistaken,
    mutations,
)

# Written for these tests in QZ's format (rows of hh:mm:ss, repeats, a ramp), with text events.
SAMPLE = """\
<?xml version="1.0" encoding="UTF-8"?>
<rows>
  <row duration="00:03:00" speed="2.6" inclination="1" forcespeed="1"/>
  <repeat times="4">
    <row duration="00:00:30" speed="2.8" forcespeed="1">
      <textevent timeoffset="0" message="upright, slight forward lean"/>
    </row>
    <row duration="00:01:00" speed="2.5" inclination="0" forcespeed="1"/>
  </repeat>
  <row duration="00:02:00" speedfrom="2.5" speedto="2.0" fanspeed="2"/>
</rows>
"""
RETRO = parse_rules(["15-120s@2.6-3.2mph"])
OPTIONS = ImportOptions(units=Units.MPH, retro=RETRO)


def write(tmp_path: Path, text: str | bytes, name: str = "intervals.xml") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def problems(tmp_path: Path, text: str, options: ImportOptions = OPTIONS) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ProgramError) as info:
        import_file(path, options)
    return info.value.lines()


def test_sample_imports_checks_and_rehearses(tmp_path: Path) -> None:
    path = write(tmp_path, SAMPLE)
    program = imports_checks_and_rehearses(path, OPTIONS, tmp_path)
    kinds = [str(step.kind) for step in program.steps]
    assert kinds == (
        ["forward"]
        + ["turn-around", "retro", "turn-around", "forward"] * 4
        + ["forward"] * 4  # the ramp, in four 30 s steps
    )
    retro = program.steps[2]
    assert retro.block.speed == mph("2.8") and retro.duration_s == 30
    assert retro.block.cue == "upright, slight forward lean"
    assert retro.block.incline.value == 1  # carried from the first row, as QZ keeps it
    assert program.steps[4].block.incline.value == 0
    ramp = [s.block.speed.mph for s in program.steps[-4:] if s.block.speed]
    assert ramp == sorted(ramp, reverse=True) and 2.0 < ramp[-1] < ramp[0] < 2.5
    assert program.total_s == 180 + 4 * (5 + 30 + 5 + 60) + 120


def test_without_rules_every_row_stays_forward(tmp_path: Path) -> None:
    program = import_file(write(tmp_path, SAMPLE), ImportOptions(units=Units.MPH)).program
    assert {step.kind for step in program.steps} == {BlockKind.FORWARD}


def test_kmh_keeps_the_file_unit(tmp_path: Path) -> None:
    text = SAMPLE.replace('speed="2.6"', 'speed="4.2"').replace('speed="2.8"', 'speed="4.5"')
    text = text.replace('speed="2.5"', 'speed="4.0"').replace('speedto="2.0"', 'speedto="3.5"')
    text = text.replace('speedfrom="2.5"', 'speedfrom="4.0"')
    options = ImportOptions(units=Units.KMH, retro=RETRO)
    program = import_file(write(tmp_path, text), options).program
    retro = next(s for s in program.steps if s.kind is BlockKind.RETRO)
    assert retro.block.speed is not None
    assert retro.block.speed.unit is Unit.KMH and retro.block.speed.value == 45 / 10


def test_no_unit_no_guess(tmp_path: Path) -> None:
    lines = problems(tmp_path, SAMPLE, ImportOptions())
    path = tmp_path / "intervals.xml"
    assert lines == [
        f"{path}:3: <row>: speed 2.6: a QZ file does not say its speed unit; pass --units kmh "
        "(QZ's own unit) or --units mph"
    ]


def test_a_row_without_speed_keeps_the_belt_going(tmp_path: Path) -> None:
    text = '<rows><row duration="00:01:00" speed="2.4"/><row duration="00:00:30"/></rows>'
    program = import_file(write(tmp_path, text), ImportOptions(units=Units.MPH)).program
    assert [s.block.speed for s in program.steps] == [mph("2.4"), mph("2.4")]


def test_distance_rows_take_their_time_from_the_speed(tmp_path: Path) -> None:
    text = '<rows><row distance="0.5" duration="00:00:00" speed="5"/></rows>'
    program = import_file(write(tmp_path, text), ImportOptions(units=Units.KMH)).program
    assert program.steps[0].duration_s == 360  # 0.5 km at 5 km/h


MISTAKES = [
    # (change to SAMPLE, line, text)
    (
        ('forcespeed="1"/>\n  <repeat', 'forcespd="1"/>\n  <repeat'),
        3,
        "unknown attribute 'forcespd'",
    ),
    (('duration="00:03:00"', 'duration="3 minutes"'), 3, "duration must be hh:mm:ss"),
    (('<repeat times="4">', '<repeat times="four">'), 4, "times must be a whole number"),
    (('speed="2.8"', 'speed="fast"'), 5, "speed must be a number, got 'fast'"),
    (('speed="2.6"', 'speed="9"'), 3, "speed 9 mph is above the walking band"),
    (('inclination="1"', 'inclination="40"'), 3, "incline 40 % is outside"),
    (("<textevent", "<texteven"), 6, "unknown element <texteven> in a row"),
    (("</rows>", "<lap/></rows>"), 11, "unknown element <lap>; expected <row> or <repeat>"),
    (("</repeat>", '<repeat times="2"><row duration="00:00:10"/></repeat></repeat>'), 9, "nested"),
    (("<rows>", "<rowz>"), 11, "not valid XML: mismatched tag"),
    (("</rows>", ""), 12, "not valid XML: no element found"),
    (('duration="00:00:30"', 'duration="05:00:00"'), 5, "longer than the 4-hour limit"),
]


@pytest.mark.parametrize(("change", "line", "text"), MISTAKES, ids=[m[2][:36] for m in MISTAKES])
def test_mistakes_name_file_line_and_field(
    change: tuple[str, str], line: int, text: str, tmp_path: Path
) -> None:
    assert_mistake_named(
        problems(tmp_path, mistaken(SAMPLE, change)), tmp_path / "intervals.xml", line, text
    )


def test_a_rule_wider_than_the_retro_band_fails_at_the_row(tmp_path: Path) -> None:
    wide = ImportOptions(units=Units.MPH, retro=parse_rules(["15-45s@3.3-4mph"]))
    lines = problems(tmp_path, SAMPLE.replace('speed="2.8"', 'speed="3.5"'), wide)
    assert lines == [
        f"{tmp_path / 'intervals.xml'}:5: <row>: speed 3.5 mph is above the retro band 2.6–3.2 mph"
    ]


def test_a_zwift_file_is_not_a_qz_program(tmp_path: Path) -> None:
    lines = problems(tmp_path, "<workout_file>\n</workout_file>", ImportOptions(format="qz"))
    assert lines == [
        f"{tmp_path / 'intervals.xml'}:1: <workout_file>: a QZ program's root element is <rows> "
        "(a Zwift workout's is <workout_file>)"
    ]


def test_every_mistake_at_once(tmp_path: Path) -> None:
    text = SAMPLE.replace('speed="2.8"', 'speed="3.5"').replace(
        'duration="00:03:00"', 'duration="x"'
    )
    lines = problems(tmp_path, text)
    assert any("duration must be hh:mm:ss" in entry for entry in lines)
    # the row with a bad duration loads nothing, so the band check waits for a file that reads
    assert len(lines) >= 1


def test_entities_are_never_expanded(tmp_path: Path) -> None:
    laughs = (
        '<?xml version="1.0"?>\n<!DOCTYPE rows [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n<rows>&b;</rows>'
    )
    lines = problems(tmp_path, laughs)
    assert lines == [
        f"{tmp_path / 'intervals.xml'}:2: has a document type declaration "
        "(<!DOCTYPE>); workout files need none and retrotread does not read them"
    ]


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
FUZZ_OPTIONS = ImportOptions(units=Units.MPH, retro=RETRO, free_speed=mph("2.5"))


@FUZZ
@given(raw=st.binary(max_size=400))
def test_arbitrary_bytes_give_a_program_or_a_program_error(raw: bytes, tmp_path: Path) -> None:
    import_outcome(write(tmp_path, raw, "fuzz.xml"), FUZZ_OPTIONS)


@FUZZ
@given(text=mutations(SAMPLE))
def test_mutated_files_give_a_program_or_a_program_error(text: str, tmp_path: Path) -> None:
    import_outcome(write(tmp_path, text, "fuzz.xml"), FUZZ_OPTIONS)
