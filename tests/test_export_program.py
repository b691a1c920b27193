"""Programs out to FIT workouts and Zwift workouts, read by other parsers, and back in."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path
from typing import Any

import fitdecode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrotread.program import BlockKind, Handrail, Program, builtin_programs, parse_program
from retrotread.program.formats import ImportOptions, export_program, import_file
from retrotread.program.model import Block, Repeat
from retrotread.session import Outcome
from retrotread.units import Unit, mph, percent
from tests.import_support import blocks, blocks_without_incline, cli, rehearse

BUILTINS = {program.name: program for program in builtin_programs()}
MPS_PER_MPH = 0.44704


def fit_messages(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Every data message, decoded by fitdecode (not the SDK retrotread writes with)."""
    messages = []
    with fitdecode.FitReader(io.BytesIO(data), check_crc=fitdecode.CrcCheck.RAISE) as reader:
        for frame in reader:
            if isinstance(frame, fitdecode.FitDataMessage):
                messages.append((frame.name, {f.name: f.value for f in frame.fields}))
    return messages


def roundtrip(program: Program, suffix: str, tmp_path: Path) -> Program:
    path = tmp_path / f"program{suffix}"
    path.write_bytes(export_program(program, path))
    return import_file(path, ImportOptions()).program


@pytest.mark.parametrize("name", list(BUILTINS))
def test_a_builtin_as_fit_decodes_with_fitdecode(name: str) -> None:
    program = BUILTINS[name]
    path = Path(f"{name}.fit")
    messages = fit_messages(export_program(program, path))
    file_id = next(fields for kind, fields in messages if kind == "file_id")
    assert file_id["type"] == "workout" and file_id["product_name"] == "retrotread"
    workout = next(fields for kind, fields in messages if kind == "workout")
    assert workout["wkt_name"] == program.name
    steps = [fields for kind, fields in messages if kind == "workout_step"]
    assert workout["num_valid_steps"] == len(steps)
    expected: list[tuple[Block, int] | Repeat] = []
    for item in program.items:
        if isinstance(item, Block):
            expected.append((item, len(expected)))
        else:
            first = len(expected)
            expected.extend((block, first + n) for n, block in enumerate(item.blocks))
            expected.append(item)
    assert len(steps) == len(expected)
    first_cue = {id(step.block): step.cue for step in reversed(program.steps)}
    for fields, want in zip(steps, expected, strict=True):
        if isinstance(want, Repeat):
            assert fields["duration_type"] == "repeat_until_steps_cmplt"
            assert fields["repeat_steps"] == want.times
            continue
        block, _ = want
        assert fields["duration_type"] == "time"
        assert fields["duration_time"] == block.duration_s
        assert fields["wkt_step_name"] == block.title
        assert fields["notes"] == first_cue[id(block)]
        assert (
            fields["intensity"]
            == {
                BlockKind.TURN_AROUND: "rest",
                BlockKind.RETRO: "interval",
                BlockKind.RETRO_RUN: "interval",
                BlockKind.WARM_UP: "warmup",
                BlockKind.COOL_DOWN: "cooldown",
                BlockKind.RECOVERY: "recovery",
                BlockKind.FORWARD: "active",
            }[block.kind]
        )
        assert block.speed is not None
        assert fields["target_type"] == "speed"
        mps = block.speed.mph * MPS_PER_MPH
        assert fields["custom_target_speed_low"] == pytest.approx(mps, abs=0.0006)
        assert fields["custom_target_speed_high"] == pytest.approx(mps, abs=0.0006)


@pytest.mark.parametrize("name", list(BUILTINS))
def test_a_builtin_comes_back_from_fit_with_the_same_blocks(name: str, tmp_path: Path) -> None:
    program = BUILTINS[name]
    back = roundtrip(program, ".fit", tmp_path)
    # FIT workouts have no incline target: kinds, durations and speeds are what it carries
    assert blocks_without_incline(back) == blocks_without_incline(program)
    assert [s.block.handrail for s in back.steps] == [s.block.handrail for s in program.steps]
    assert [s.title for s in back.steps] == [s.title for s in program.steps]
    assert [s.cue for s in back.steps] == [s.cue for s in program.steps]


@pytest.mark.parametrize("name", list(BUILTINS))
def test_a_builtin_comes_back_from_zwo_with_the_same_blocks(name: str, tmp_path: Path) -> None:
    program = BUILTINS[name]
    path = tmp_path / f"{name}.zwo"
    data = export_program(program, path)
    root = ET.fromstring(data)  # any XML parser reads it
    assert root.findtext("sportType") == "run" and root.findtext("name") == program.name
    workout = root.find("workout")
    assert workout is not None
    segments = list(workout)
    assert len(segments) == len(program.steps)
    for element, step in zip(segments, program.steps, strict=True):
        assert int(element.get("Duration", "0")) == step.duration_s
        assert element.get("retrotread_kind") == str(step.kind)
        event = element.find("textevent")
        assert event is not None and event.get("message") == step.cue
    back = roundtrip(program, ".zwo", tmp_path)
    assert blocks(back) == blocks(program)  # the incline too
    assert [s.cue for s in back.steps] == [s.cue for s in program.steps]


def test_a_roundtripped_builtin_rehearses(tmp_path: Path) -> None:
    for suffix in (".fit", ".zwo"):
        summary = rehearse(roundtrip(BUILTINS["first-week"], suffix, tmp_path))
        assert summary.outcome is Outcome.COMPLETED and summary.belt_stopped


ODD = """\
name = "odd"
description = "km/h speeds, a paused turn, a retro run"

[defaults]
turn = "pause"
retro_run_band = [3.5, 4.5]

[[blocks]]
kind = "forward"
duration = "1m"
speed = "4.2 km/h"
incline = 1.5

[[blocks]]
kind = "turn-around"
duration = 8

[[blocks]]
kind = "retro-run"
duration = "20s"
speed = 3.6
cue = "quick, short steps"
"""


@pytest.mark.parametrize("suffix", [".fit", ".zwo"])
def test_km_h_speeds_and_paused_turns_come_back(suffix: str, tmp_path: Path) -> None:
    program = parse_program(ODD, "odd.toml")
    back = roundtrip(program, suffix, tmp_path)
    assert [str(s.kind) for s in back.steps] == ["forward", "turn-around", "retro-run"]
    assert [s.duration_s for s in back.steps] == [60, 8, 20]
    assert back.steps[1].block.speed is None  # the belt pauses for the turn
    forward = back.steps[0].block.speed
    assert forward is not None and forward.to(Unit.KMH).value == pytest.approx(4.2, abs=0.01)
    assert back.steps[2].block.cue == "Quick, short steps"
    assert back.steps[2].cue == program.steps[2].cue


def test_export_program_command(tmp_path: Path) -> None:
    out = tmp_path / "first-week.fit"
    result = cli("export-program", "first-week", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {out}: FIT workout 'first-week', 26 blocks, 14:00"
    again = cli("export-program", "first-week", "-o", str(out))
    assert again.returncode == 2 and "exists; pass --force to overwrite it" in again.stderr
    assert cli("export-program", "first-week", "-o", str(out), "--force").returncode == 0
    program_file = tmp_path / "odd.toml"
    program_file.write_text(ODD)
    zwo = tmp_path / "odd.zwo"
    assert cli("export-program", str(program_file), "-o", str(zwo)).returncode == 0
    wrong = cli("export-program", "first-week", "-o", str(tmp_path / "x.gpx"))
    assert wrong.returncode == 2 and "export writes .fit or .zwo files" in wrong.stderr
    toml = tmp_path / "back.toml"
    imported = cli("import", str(out), "-o", str(toml))
    assert imported.returncode == 0, imported.stderr
    assert cli("check", str(toml)).returncode == 0


# -- any program, both ways ------------------------------------------------------------------

# text as people write it: files' names and cues are read without surrounding blanks
words = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=24).map(str.strip)


def _block(kind: BlockKind, seconds: int, tenths: int, name: str, cue: str, grade: int) -> Block:
    return Block(
        kind=kind,
        duration_s=seconds,
        speed=mph(Fraction(tenths, 10)),
        incline=percent(grade),
        handrail=Handrail.BOTH_HANDS if kind.is_retro else Handrail.HANDS_FREE,
        name=name,
        cue=cue,
    )


TURN = Block(BlockKind.TURN_AROUND, 5, mph(1), percent(2), Handrail.BOTH_HANDS)
walks = st.builds(
    _block,
    st.sampled_from(
        [BlockKind.WARM_UP, BlockKind.FORWARD, BlockKind.RECOVERY, BlockKind.COOL_DOWN]
    ),
    st.integers(1, 900),
    st.integers(5, 45),
    words,
    words,
    st.integers(0, 10),
)
retros = st.builds(
    _block,
    st.just(BlockKind.RETRO),
    st.integers(5, 300),
    st.integers(26, 32),
    words,
    words,
    st.integers(0, 10),
).map(lambda block: [TURN, block, TURN])
programs = st.builds(
    lambda parts, name: Program(
        name=name or "p",
        description="any",
        items=tuple(b for part in parts for b in (part if isinstance(part, list) else [part])),
    ),
    st.lists(st.one_of(walks, retros), min_size=1, max_size=6),
    words,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(program=programs)
def test_any_program_comes_back_from_both_formats(program: Program, tmp_path: Path) -> None:
    from_zwo = roundtrip(program, ".zwo", tmp_path)
    assert blocks(from_zwo) == blocks(program)
    assert [s.cue for s in from_zwo.steps] == [s.cue for s in program.steps]
    from_fit = roundtrip(program, ".fit", tmp_path)
    assert blocks_without_incline(from_fit) == blocks_without_incline(program)
