"""What every import shares: --retro rules, turn-arounds, TOML out, safe reading, the command."""

from __future__ import annotations

import itertools
import os
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrotread.program import BlockKind, ProgramError, load_program
from retrotread.program.formats import (
    GRAMMAR,
    ImportOptions,
    RuleError,
    Units,
    import_file,
    parse_rules,
)
from retrotread.program.formats.build import build, place_turns, toml_string
from retrotread.program.formats.source import (
    MAX_IMPORT_BYTES,
    ImportedRepeat,
    ImportedStep,
    ImportedWorkout,
    Where,
    read_source,
)
from retrotread.text import without_control
from retrotread.units import mph
from tests.import_support import blocks, cli

# -- --retro rules -------------------------------------------------------------------------------

RULES = [
    # (rule, kind, shortest, longest, slowest mph, fastest mph)
    ("15-120s@2.6-3.2mph", "retro", 15, 120, 2.6, 3.2),
    ("15s-2m@2.6-3.2mph", "retro", 15, 120, 2.6, 3.2),
    ("1m-1m30s@4.2-5.1km/h", "retro", 60, 90, 2.61, 3.17),
    ("30s@2.8mph", "retro", 30, 30, 2.8, 2.8),
    ("retro-run:30s-1m@3.5-4.5mph", "retro-run", 30, 60, 3.5, 4.5),
    ("15-120s@20:00-18:45/mi", "retro", 15, 120, 3.0, 3.2),
    (" 15 - 120s @ 2.6 - 3.2mph ", "retro", 15, 120, 2.6, 3.2),
]


@pytest.mark.parametrize(("text", "kind", "short", "long", "slow", "fast"), RULES)
def test_rules_follow_the_grammar(
    text: str, kind: str, short: int, long: int, slow: float, fast: float
) -> None:
    (rule,) = parse_rules([text])
    assert (str(rule.kind), rule.shortest_s, rule.longest_s) == (kind, short, long)
    assert rule.slowest is not None and rule.fastest is not None
    assert (round(rule.slowest.mph, 2), round(rule.fastest.mph, 2)) == (slow, fast)


def test_any_duration_or_speed_and_several_rules() -> None:
    rules = parse_rules(["*@2.6-3.2mph,retro-run:15-30s@*", "10s@3mph"])
    assert len(rules) == 3
    assert rules[0].shortest_s is None and rules[1].slowest is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("15-120s", "a rule is DURATIONS@SPEEDS"),
        ("15-120@2.6-3.2mph", "duration '120' needs a unit"),
        ("120-15s@2.6-3.2mph", "durations go from short to long"),
        ("15-120s@3.2-2.6mph", "speeds go from slow to fast"),
        ("15-120s@2.6-3.2", "speeds '2.6-3.2' are not like"),
        ("backward:15-120s@2.6-3.2mph", "kind 'backward' is not retro or retro-run"),
        ("15-2x@2.6mph", "duration '2x' is not like"),
    ],
)
def test_bad_rules_repeat_the_grammar(text: str, reason: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_rules([text])
    assert reason in str(info.value)
    assert GRAMMAR in str(info.value)


def step(kind: BlockKind, seconds: int = 30, speed: str = "2.8") -> ImportedStep:
    return ImportedStep(Where(1, "<row>"), seconds, mph(speed), kind=kind)


def test_a_rule_maps_forward_and_recovery_steps_never_warm_up() -> None:
    (rule,) = parse_rules(["15-120s@2.6-3.2mph"])
    assert rule.matches(step(BlockKind.FORWARD))
    assert rule.matches(step(BlockKind.RECOVERY, 120, "3.2"))
    assert not rule.matches(step(BlockKind.WARM_UP))
    assert not rule.matches(step(BlockKind.FORWARD, 121))
    assert not rule.matches(step(BlockKind.FORWARD, 30, "3.21"))


# -- turn-arounds --------------------------------------------------------------------------------

kinds = st.sampled_from(
    [BlockKind.FORWARD, BlockKind.RETRO, BlockKind.RECOVERY, BlockKind.WARM_UP, BlockKind.RETRO]
)
steps = kinds.map(lambda kind: step(kind, 20))
groups = st.builds(
    lambda times, body: ImportedRepeat(Where(2, "<repeat>"), times, body),
    st.integers(1, 4),
    st.lists(steps, min_size=1, max_size=4),
)


@settings(max_examples=200, deadline=None)
@given(items=st.lists(st.one_of(steps, groups), min_size=1, max_size=6))
def test_turns_make_any_sequence_valid_and_never_come_twice(
    items: list[ImportedStep | ImportedRepeat],
) -> None:
    workout = ImportedWorkout("t", "", items, "test")
    program = build(workout, (), "t.xml").program  # raises if any facing were wrong
    turns = [s.kind is BlockKind.TURN_AROUND for s in program.steps]
    assert not any(a and b for a, b in itertools.pairwise(turns))
    wanted = [s.kind for s in program.steps if s.kind is not BlockKind.TURN_AROUND]
    given_kinds = [
        s.kind
        for item in items
        for s in (item.steps * item.times if isinstance(item, ImportedRepeat) else [item])
    ]
    assert wanted == given_kinds


def test_a_round_that_turns_the_walker_closes_its_loop_at_its_start() -> None:
    group = ImportedRepeat(Where(2, ""), 3, [step(BlockKind.RETRO), step(BlockKind.RECOVERY)])
    placed = place_turns([step(BlockKind.WARM_UP), group])
    assert isinstance(placed[1], ImportedRepeat)
    assert [str(s.kind) for s in placed[1].steps] == [
        "turn-around",
        "retro",
        "turn-around",
        "recovery",
    ]


# -- TOML out ----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=60))
def test_any_text_survives_as_a_toml_string(text: str) -> None:
    assert tomllib.loads(f"x = {toml_string(text)}")["x"] == text


@settings(max_examples=60, deadline=None)
@given(name=st.text(max_size=30), cue=st.text(max_size=30))
def test_names_and_cues_from_files_load_back(name: str, cue: str) -> None:
    item = ImportedStep(Where(3, ""), 30, mph("2.8"), kind=BlockKind.FORWARD, name=name, cue=cue)
    imported = build(ImportedWorkout("w", 'a "quoted"\ndescription', [item], "t"), (), "t")
    # words kept; control characters (terminal escapes) dropped
    assert imported.program.steps[0].block.name == without_control(name)
    assert imported.program.steps[0].block.cue == without_control(cue)


# -- reading files -------------------------------------------------------------------------------


def test_only_small_regular_files_are_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.xml"
    os.mkfifo(fifo)
    with pytest.raises(ProgramError, match="is not a regular file"):
        read_source(fifo)  # returns at once: opening never waits for a writer
    with pytest.raises(ProgramError, match="is not a regular file"):
        read_source(Path("/dev/zero"))
    with pytest.raises(ProgramError, match="is a directory"):
        read_source(tmp_path)
    with pytest.raises(ProgramError, match="no such file"):
        read_source(tmp_path / "missing.zwo")
    big = tmp_path / "big.xml"
    with big.open("wb") as handle:
        handle.truncate(MAX_IMPORT_BYTES + 1)
    with pytest.raises(ProgramError, match="workout files are small, at most 1024 KiB"):
        read_source(big)


def test_too_many_steps_are_refused(tmp_path: Path) -> None:
    rows = '<row duration="00:00:10" speed="2"/>' * 30
    path = tmp_path / "many.xml"
    path.write_text(f'<rows><repeat times="100">{rows}</repeat></rows>')
    too_many = "has at least 3000 steps once repeats are counted; at most 2000"
    with pytest.raises(ProgramError, match=too_many):
        import_file(path, ImportOptions(units=Units.MPH))


# -- the command ---------------------------------------------------------------------------------

QZ = """\
<rows>
  <row duration="00:02:00" speed="2.5"/>
  <repeat times="2">
    <row duration="00:00:30" speed="2.8"><textevent message="small steps"/></row>
    <row duration="00:01:00" speed="2.5"/>
  </repeat>
</rows>
"""


def test_import_previews_writes_and_check_accepts(tmp_path: Path) -> None:
    source = tmp_path / "walk.xml"
    source.write_text(QZ)
    out = tmp_path / "walk.toml"
    result = cli(
        "import", str(source), "--units", "mph", "--retro", "15-120s@2.6-3.2mph", "-o", str(out)
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"{source}: QZ treadmill program"
    assert lines[1] == "walk — 5:20 total, 1:00 retro"
    assert (
        "    2:05  RETRO     Retro (1/2): 0:30 at 2.8 mph, 2 % — Hold both handrails. Small steps"
        in lines
    )
    assert f"wrote {out}" in lines
    assert cli("check", str(out)).returncode == 0
    shown = cli("show", str(out)).stdout.splitlines()
    assert shown[2:] == lines[3 : 3 + len(shown) - 2]  # the preview is what `show` prints
    again = import_file(
        source, ImportOptions(units=Units.MPH, retro=parse_rules(["15-120s@2.6-3.2mph"]))
    )
    assert blocks(load_program(out)) == blocks(again.program)


def test_import_never_overwrites_without_force(tmp_path: Path) -> None:
    source = tmp_path / "walk.xml"
    source.write_text(QZ)
    out = tmp_path / "mine.toml"
    out.write_text("precious")
    refused = cli("import", str(source), "--units", "mph", "-o", str(out))
    assert refused.returncode == 2
    assert f"retrotread: {out} exists; pass --force to overwrite it" in refused.stderr
    assert out.read_text() == "precious"
    forced = cli("import", str(source), "--units", "mph", "-o", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    assert load_program(out).name == "walk"


def test_import_to_stdout_and_its_errors(tmp_path: Path) -> None:
    source = tmp_path / "walk.xml"
    source.write_text(QZ)
    piped = cli("import", str(source), "--units", "kmh", "-o", "-")
    assert piped.returncode == 0 and tomllib.loads(piped.stdout)["name"] == "walk"
    assert "QZ treadmill program" in piped.stderr
    no_units = cli("import", str(source))
    assert no_units.returncode == 2
    assert f"{source}:2: <row>: speed 2.5: a QZ file does not say its speed unit" in no_units.stderr
    bad_rule = cli("import", str(source), "--units", "mph", "--retro", "fast@2mph")
    assert bad_rule.returncode == 2 and "RULE      [KIND:]DURATIONS@SPEEDS" in bad_rule.stderr
    bad_pace = cli("import", str(source), "--units", "mph", "--pace-ref", "quick")
    assert bad_pace.returncode == 2 and "--pace-ref expected a speed like 3mph" in bad_pace.stderr
    fifo = tmp_path / "pipe.zwo"
    os.mkfifo(fifo)
    refused = cli("import", str(fifo))
    assert refused.returncode == 2 and "is not a regular file" in refused.stderr
    for result in (no_units, bad_rule, bad_pace, refused):
        assert "Traceback" not in result.stderr


def test_import_help_shows_the_grammar_and_units() -> None:
    result = cli("import", "--help")
    assert result.returncode == 0
    assert "RULE      [KIND:]DURATIONS@SPEEDS" in result.stdout
    assert "--units mph|kmh|min/mi|min/km" in result.stdout
