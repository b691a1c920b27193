"""FIT workout files in: speed targets, repeats, intensities, notes; damaged files refused."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from garmin_fit_sdk import CrcCalculator, Encoder, Profile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrotread.program import BlockKind, ProgramError
from retrotread.program.formats import ImportOptions, Units, import_file, parse_rules
from retrotread.units import Unit, kmh, mph
from tests.import_support import import_outcome, imports_checks_and_rehearses

MESG = Profile["mesg_num"]
MPS_PER_MPH = 0.44704


def speed_step(
    index: int, seconds: int, low_mph: float, high_mph: float, **more: Any
) -> dict[str, Any]:
    return {
        "mesg_num": MESG["WORKOUT_STEP"],
        "message_index": index,
        "duration_type": "time",
        "duration_value": seconds * 1000,
        "target_type": "speed",
        "target_value": 0,
        "custom_target_value_low": round(low_mph * MPS_PER_MPH * 1000),
        "custom_target_value_high": round(high_mph * MPS_PER_MPH * 1000),
        **more,
    }


def repeat_step(index: int, first: int, times: int) -> dict[str, Any]:
    return {
        "mesg_num": MESG["WORKOUT_STEP"],
        "message_index": index,
        "duration_type": "repeat_until_steps_cmplt",
        "duration_value": first,
        "target_value": times,
    }


def sample_steps() -> list[dict[str, Any]]:
    """A walking workout as a watch app would write it (not retrotread): intervals by intensity."""
    return [
        speed_step(0, 180, 2.4, 2.6, intensity="warmup", wkt_step_name="Warm up"),
        speed_step(1, 30, 2.7, 2.9, intensity="interval", notes="controlled steps"),
        speed_step(2, 60, 2.4, 2.6, intensity="recovery"),
        repeat_step(3, 1, 4),
        {  # 200 m at 2.5 mph, then open target (--free-speed)
            **speed_step(4, 0, 2.5, 2.5, intensity="active"),
            "duration_type": "distance",
            "duration_value": 200 * 100,
        },
        {
            "mesg_num": MESG["WORKOUT_STEP"],
            "message_index": 5,
            "duration_type": "time",
            "duration_value": 120_000,
            "target_type": "open",
            "intensity": "cooldown",
        },
    ]


def fit_file(
    steps: list[dict[str, Any]], file_type: str = "workout", sport: str = "walking"
) -> bytes:
    encoder = Encoder()
    encoder.write_mesg(
        {
            "mesg_num": MESG["FILE_ID"],
            "type": file_type,
            "manufacturer": "garmin",
            "product": 1,
            "time_created": 1_000_000_000,
        }
    )
    encoder.write_mesg(
        {
            "mesg_num": MESG["WORKOUT"],
            "sport": sport,
            "num_valid_steps": len(steps),
            "wkt_name": "Backward intervals",
        }
    )
    for step in steps:
        encoder.write_mesg(step)
    return bytes(encoder.close())


RETRO = parse_rules(["15-45s@2.6-3.2mph"])
OPTIONS = ImportOptions(retro=RETRO, free_speed=mph("2.2"))


def write(tmp_path: Path, data: bytes, name: str = "workout.fit") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def problems(tmp_path: Path, data: bytes, options: ImportOptions = OPTIONS) -> list[str]:
    with pytest.raises(ProgramError) as info:
        import_file(write(tmp_path, data), options)
    return info.value.lines()


def test_sample_imports_checks_and_rehearses(tmp_path: Path) -> None:
    path = write(tmp_path, fit_file(sample_steps()))
    program = imports_checks_and_rehearses(path, OPTIONS, tmp_path)
    assert program.name == "Backward intervals"
    kinds = [str(step.kind) for step in program.steps]
    assert kinds == (
        ["warm-up"]
        + ["turn-around", "retro", "turn-around", "recovery"] * 4
        + ["forward", "cool-down"]
    )
    assert program.steps[0].block.speed == mph("2.5")  # the middle of 2.4–2.6
    assert program.steps[0].block.name == "Warm up"
    retro = program.steps[2]
    assert retro.block.speed == mph("2.8") and retro.block.cue == "controlled steps"
    assert program.steps[-2].duration_s == 179  # 200 m at 2.5 mph
    assert program.steps[-1].block.speed == mph("2.2")  # open target at --free-speed


def test_a_foreign_interval_stays_forward_without_rules(tmp_path: Path) -> None:
    path = write(tmp_path, fit_file(sample_steps()))
    program = import_file(path, ImportOptions(free_speed=mph(2))).program
    assert BlockKind.RETRO not in {step.kind for step in program.steps}


def test_kmh_on_request(tmp_path: Path) -> None:
    path = write(tmp_path, fit_file(sample_steps()))
    program = import_file(path, ImportOptions(free_speed=kmh(3), units=Units.KMH)).program
    speed = program.steps[0].block.speed
    assert speed is not None and speed.unit is Unit.KMH and speed == kmh("4.02")


def _with(index: int, **change: Any) -> list[dict[str, Any]]:
    steps = sample_steps()
    steps[index] = {**steps[index], **change}
    return steps


MISTAKES = [
    (_with(1, target_type="heart_rate", target_value=3), "workout step 1: targets heart rate"),
    (_with(1, custom_target_value_low=0, custom_target_value_high=0, target_value=2), "zone 2"),
    (_with(2, duration_type="open"), "workout step 2: ends when the lap button is pressed"),
    (_with(2, duration_type="calories", duration_value=50), "duration_type 'calories'"),
    (_with(3, duration_value=7), "workout step 3: repeats from step 7"),
    (_with(3, duration_type="repeat_until_time"), "repeat until time is not supported"),
    (_with(1, custom_target_value_low=2600, custom_target_value_high=2600), "above the retro"),
]


@pytest.mark.parametrize(("steps", "text"), MISTAKES, ids=[m[1][:32] for m in MISTAKES])
def test_mistakes_name_the_step(steps: list[dict[str, Any]], text: str, tmp_path: Path) -> None:
    wide = ImportOptions(retro=parse_rules(["15-45s@2.6-6mph"]), free_speed=mph(2))
    lines = problems(tmp_path, fit_file(steps), wide)
    assert any(text in line for line in lines), lines
    assert all(line.startswith(f"{tmp_path / 'workout.fit'}: ") for line in lines)


def test_nested_repeats_are_refused(tmp_path: Path) -> None:
    steps = [*sample_steps()[:4], repeat_step(4, 0, 2)]
    lines = problems(tmp_path, fit_file(steps))
    assert lines == [
        f"{tmp_path / 'workout.fit'}: workout step 4: repeats inside repeats are not supported"
    ]


def test_other_fit_files_are_refused(tmp_path: Path) -> None:
    lines = problems(tmp_path, fit_file(sample_steps(), file_type="activity"))
    assert lines == [
        f"{tmp_path / 'workout.fit'}: file_id: is a FIT activity file, not a workout; "
        "retrotread imports workout files"
    ]
    lines = problems(tmp_path, fit_file(sample_steps(), sport="cycling"))
    assert "workout: is a cycling workout" in lines[0]


def test_damaged_files_are_refused(tmp_path: Path) -> None:
    data = bytearray(fit_file(sample_steps()))
    data[40] ^= 0xFF
    assert problems(tmp_path, bytes(data)) == [
        f"{tmp_path / 'workout.fit'}: FIT data is damaged (its size or checksum does not match)"
    ]
    assert problems(tmp_path, b"\x0e\x10" + b"\x00" * 30, ImportOptions(format="fit")) == [
        f"{tmp_path / 'workout.fit'}: is not a FIT file (no FIT header)"
    ]


def with_valid_crc(data: bytearray) -> bytes:
    """Keep a mutated file's checksums right, so the decoder reads on into the damage."""
    size = data[0]
    if len(data) >= size + 2 and size in (12, 14):
        struct.pack_into("<I", data, 4, len(data) - size - 2)
        if size == 14:
            struct.pack_into("<H", data, 12, CrcCalculator.calculate_crc(data, 0, 12))
        struct.pack_into(
            "<H", data, len(data) - 2, CrcCalculator.calculate_crc(data, 0, len(data) - 2)
        )
    return bytes(data)


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
VALID = fit_file(sample_steps())


@FUZZ
@given(raw=st.binary(max_size=400))
def test_arbitrary_bytes_give_a_program_or_a_program_error(raw: bytes, tmp_path: Path) -> None:
    import_outcome(write(tmp_path, raw), ImportOptions(format="fit", free_speed=mph(2)))


@FUZZ
@given(
    changes=st.lists(
        st.tuples(st.integers(14, len(VALID) - 3), st.integers(0, 255)), min_size=1, max_size=6
    ),
    cut=st.integers(0, 40),
)
def test_mutated_files_give_a_program_or_a_program_error(
    changes: list[tuple[int, int]], cut: int, tmp_path: Path
) -> None:
    data = bytearray(VALID)
    for at, value in changes:
        data[at] = value
    if cut:
        del data[len(data) - 2 - cut : len(data) - 2]
    import_outcome(write(tmp_path, with_valid_crc(data)), OPTIONS)
