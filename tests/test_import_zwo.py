"""Zwift run workouts (.zwo) in: pace fractions, intervals, ramps, free rides, text events."""

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

# Written for these tests in Zwift's run-workout form: Power is a share of the runner's pace.
SAMPLE = """\
<workout_file>
  <author>A coach</author>
  <name>Backward intervals</name>
  <description>Short backward intervals between easy walks.</description>
  <sportType>run</sportType>
  <durationType>time</durationType>
  <tags><tag name="walk"/></tags>
  <workout>
    <Warmup Duration="120" PowerLow="0.8" PowerHigh="0.87" pace="0"/>
    <IntervalsT Repeat="3" OnDuration="30" OffDuration="60" OnPower="0.93" OffPower="0.8" pace="0">
      <textevent timeoffset="0" message="controlled steps"/>
      <textevent timeoffset="10" message="look over your shoulder now and then"/>
    </IntervalsT>
    <SteadyState Duration="60" Power="0.85" Incline="0.01" pace="0">
      <textevent timeoffset="0" message="easy now"/>
    </SteadyState>
    <FreeRide Duration="60"/>
    <Cooldown Duration="120" PowerLow="0.8" PowerHigh="0.7" pace="0"/>
  </workout>
</workout_file>
"""
RETRO = parse_rules(["15-45s@2.6-3.2mph"])
OPTIONS = ImportOptions(retro=RETRO, pace_ref=mph(3), free_speed=mph("2.4"))


def write(tmp_path: Path, text: str | bytes, name: str = "intervals.zwo") -> Path:
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
    assert program.name == "Backward intervals"
    kinds = [str(step.kind) for step in program.steps]
    assert kinds == (
        ["warm-up"] * 4
        + ["turn-around", "retro", "turn-around", "recovery"] * 3
        + ["forward", "forward"]
        + ["cool-down"] * 4
    )
    retro = program.steps[5]
    assert retro.block.speed == mph("2.79")  # 0.93 of 3 mph
    assert retro.block.cue == "controlled steps; look over your shoulder now and then"
    steady = program.steps[-6]
    assert steady.block.speed == mph("2.55") and steady.block.incline.value == 1
    assert steady.block.cue == "easy now"
    assert program.steps[-5].block.speed == mph("2.4")  # the free ride at --free-speed
    warm = [s.block.speed.mph for s in program.steps[:4] if s.block.speed]
    assert warm == sorted(warm) and warm[0] > 2.4 and warm[-1] < 2.61


def test_the_file_can_carry_its_own_pace(tmp_path: Path) -> None:
    text = SAMPLE.replace("<tags>", "<thresholdSecPerKm>720</thresholdSecPerKm>\n  <tags>")
    program = import_file(write(tmp_path, text), ImportOptions(free_speed=mph(2))).program
    steady = next(s for s in program.steps if s.block.cue == "easy now")
    assert steady.block.speed == mph("2.64")  # 0.85 of 12:00/km (5 km/h), to 0.01 mph
    metric = ImportOptions(free_speed=kmh(3), units=Units.KMH)
    program = import_file(write(tmp_path, text), metric).program
    steady = next(s for s in program.steps if s.block.cue == "easy now")
    assert steady.block.speed == kmh("4.25")


def test_range_targets_play_at_their_middle(tmp_path: Path) -> None:
    text = (
        "<workout_file><sportType>run</sportType><durationType>time</durationType><workout>"
        '<IntervalsT Repeat="2" OnDuration="30" OffDuration="30" PowerOnLow="0.9" '
        'PowerOnHigh="0.96" PowerOffLow="0.8" PowerOffHigh="0.8"/>'
        '<SteadyState Duration="60" PowerLow="0.8" PowerHigh="0.9"/>'
        "</workout></workout_file>"
    )
    program = import_file(write(tmp_path, text), ImportOptions(pace_ref=mph(3))).program
    assert [s.block.speed for s in program.steps] == [mph("2.79"), mph("2.4")] * 2 + [mph("2.55")]


def test_distance_durations_take_their_time_from_the_speed(tmp_path: Path) -> None:
    text = (
        "<workout_file><sportType>run</sportType><durationType>distance</durationType>"
        '<workout><SteadyState Duration="400" Power="1.0"/></workout></workout_file>'
    )
    program = import_file(write(tmp_path, text), ImportOptions(pace_ref=kmh("4.8"))).program
    assert program.steps[0].duration_s == 300  # 400 m at 4.8 km/h
    assert program.steps[0].block.speed is not None
    assert program.steps[0].block.speed.to(Unit.KMH).value == pytest.approx(4.8, abs=0.01)


def test_without_a_reference_pace_there_is_no_speed(tmp_path: Path) -> None:
    lines = problems(tmp_path, SAMPLE, ImportOptions(free_speed=mph(2)))
    assert lines == [
        f"{tmp_path / 'intervals.zwo'}:8: <workout>: Power in a run workout is a fraction of the "
        "runner's pace, so the file gives no speed: pass --pace-ref with the pace 1.0 stands for "
        "(e.g. --pace-ref 20:00/mi), or add <thresholdSecPerKm>"
    ]


MISTAKES = [
    # (change to SAMPLE, line, text)
    (("<sportType>run", "<sportType>bike"), 5, "<sportType>: is 'bike': retrotread imports run"),
    (("<sportType>run</sportType>", ""), 1, "<sportType> is missing: Zwift reads such a file"),
    (("<durationType>time</durationType>", ""), 1, "<durationType> is missing"),
    (("<durationType>time", "<durationType>laps"), 6, "is 'laps'; time or distance"),
    (('Power="0.85"', 'Power="fast"'), 14, "<SteadyState>: Power must be a number, got 'fast'"),
    (('Power="0.85"', 'Power="0"'), 14, "Power must be above zero"),
    (("<FreeRide ", "<FreeRid "), 17, "unknown element (did you mean <FreeRide>?)"),
    (('OnPower="0.93"', 'OnPower="1.6"'), 10, "speed 4.8 mph is above the walking band"),
    (('Repeat="3"', 'Repeat="many"'), 10, "Repeat must be a whole number of rounds"),
    (("<FreeRide Duration", "<FreeRide Durations"), 17, "Duration is missing"),
    (('Incline="0.01"', 'Incline="0.5"'), 14, "incline 50 % is outside"),
    (('pace="0"/>\n  </workout>', 'pace="2"/>\n  </workout>'), 9, "different paces of the runner"),
    (("<workout>", "<workout_>"), 19, "not valid XML: mismatched tag"),
    (("<workout_file>", "<!DOCTYPE x>\n<workout_file>"), 1, "document type declaration"),
]


@pytest.mark.parametrize(("change", "line", "text"), MISTAKES, ids=[m[2][:36] for m in MISTAKES])
def test_mistakes_name_file_line_and_field(
    change: tuple[str, str], line: int, text: str, tmp_path: Path
) -> None:
    assert_mistake_named(
        problems(tmp_path, mistaken(SAMPLE, change)), tmp_path / "intervals.zwo", line, text
    )


def test_a_free_ride_needs_a_speed(tmp_path: Path) -> None:
    lines = problems(tmp_path, SAMPLE, ImportOptions(pace_ref=mph(3)))
    assert lines == [
        f"{tmp_path / 'intervals.zwo'}:17: <FreeRide>: <FreeRide> has no speed target; pass "
        "--free-speed (e.g. 2.5mph) to walk it at one speed"
    ]


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(raw=st.binary(max_size=400))
def test_arbitrary_bytes_give_a_program_or_a_program_error(raw: bytes, tmp_path: Path) -> None:
    import_outcome(write(tmp_path, raw, "fuzz.zwo"), OPTIONS)


@FUZZ
@given(text=mutations(SAMPLE))
def test_mutated_files_give_a_program_or_a_program_error(text: str, tmp_path: Path) -> None:
    import_outcome(write(tmp_path, text, "fuzz.zwo"), OPTIONS)
