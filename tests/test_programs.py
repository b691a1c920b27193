"""Program files: the built-in library, the TOML format, and errors that name file, line, field."""

from pathlib import Path

import pytest

from retrotread.program import (
    BlockKind,
    Facing,
    Handrail,
    ProgramError,
    builtin_programs,
    find_program,
    load_program,
    parse_program,
)
from retrotread.units import mph

GOOD = """\
name = "test-intervals"
description = "two rounds"

[defaults]
incline = 2.0

[[blocks]]
kind = "warm-up"
duration = "1m"
speed = 2.5

[[blocks]]
repeat = 2

  [[blocks.blocks]]
  kind = "turn-around"

  [[blocks.blocks]]
  kind = "retro"
  duration = "30s"
  speed = 2.8
  cue = "controlled steps"

  [[blocks.blocks]]
  kind = "turn-around"

  [[blocks.blocks]]
  kind = "recovery"
  duration = 60
  speed = "4.0 km/h"
"""


def test_every_builtin_validates_and_cites_the_seeds() -> None:
    programs = builtin_programs()
    names = [p.name for p in programs]
    assert names == [
        "first-week",
        "building-intervals",
        "two-minute-retro",
        "retro-run-starter",
        "warm-up",
        "cool-down",
        "dedicated-session",
        "uphill",
    ]
    for program in programs:
        assert "seed" in program.description.lower(), program.name
        assert program.retro_s > 0
        for step in program.steps:
            if step.kind is BlockKind.RETRO:
                assert mph("2.6") <= step.block.speed.to(mph(0).unit) <= mph("3.2")  # type: ignore[union-attr]
            if step.kind is BlockKind.TURN_AROUND:
                assert step.duration_s >= 5
                assert step.block.handrail is Handrail.BOTH_HANDS


def test_first_week_follows_the_seed() -> None:
    program = find_program("first-week")
    retro = [s for s in program.steps if s.kind is BlockKind.RETRO]
    assert all(15 <= s.duration_s <= 30 for s in retro)
    assert all(s.block.handrail is Handrail.BOTH_HANDS for s in retro)
    assert all(s.block.incline.value == 2 for s in retro)


def test_repeat_groups_flatten_with_rounds_and_facing() -> None:
    program = parse_program(GOOD, "good.toml")
    kinds = [s.kind.value for s in program.steps]
    assert kinds == ["warm-up"] + ["turn-around", "retro", "turn-around", "recovery"] * 2
    assert program.total_s == 60 + 2 * (5 + 30 + 5 + 60)
    assert program.retro_s == 60
    retro = program.steps[2]
    assert retro.facing is Facing.REAR and retro.round == (1, 2)
    assert program.steps[1].cue.startswith("Hold both handrails, turn to face the rear")
    assert program.steps[3].cue.startswith("Hold both handrails, turn to face the front")
    assert program.steps[4].block.speed is not None
    assert program.steps[4].block.speed.kmh == pytest.approx(4.0)


def _error(text: str, tmp_path: Path, name: str = "intervals.toml") -> list[str]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProgramError) as info:
        load_program(path)
    return info.value.lines()


MISTAKES = [
    # (what to change in GOOD, expected line, expected text)
    (
        ("speed = 2.8", "speed = 4.1"),
        21,
        "block 2.2 'retro': speed 4.1 mph is above the retro band 2.6–3.2 mph",
    ),
    (("speed = 2.8", "speed = 2.0"), 21, "speed 2 mph is below the retro band 2.6–3.2 mph"),
    (
        ('duration = "30s"', 'duraton = "30s"'),
        20,
        "unknown key 'duraton' (did you mean 'duration'?)",
    ),
    (('kind = "retro"', 'kind = "retor"'), 19, "kind is 'retor' (did you mean 'retro'?)"),
    (('duration = "30s"', 'duration = "30 seconds"'), 20, "duration must be seconds or text like"),
    (('duration = "30s"', "duration = -5"), 20, "duration must be more than zero"),
    (("incline = 2.0", "incline = 40"), 5, "defaults: incline 40 % is outside"),
    (('speed = "4.0 km/h"', 'speed = "fast"'), 30, "speed expected a speed like 2.8"),
    (('kind = "warm-up"', 'kind = "warm-up"\nhandrail = "one hand"'), 9, "handrail is 'one hand'"),
    (("repeat = 2", "repeat = 0"), 13, "repeat must be a whole number 1–100"),
    (('name = "test-intervals"\n', ""), None, "name is missing"),
    (
        ('  kind = "turn-around"\n\n  [[blocks.blocks]]\n  kind = "retro"', '  kind = "retro"'),
        None,
        "the walker faces the front here",
    ),
    (("speed = 2.5", 'speed = 2.5\ncolour = "red"'), 11, "unknown key 'colour'"),
    (
        ('kind = "warm-up"\nduration = "1m"', 'kind = "turn-around"\nduration = 3'),
        9,
        "at least 5 s",
    ),
    (
        ('kind = "warm-up"', 'kind = "turn-around"\nhandrail = "hands-free"'),
        9,
        "must be 'both-hands'",
    ),
    (("[defaults]", "[defaults\n"), 4, "not valid TOML"),
]


@pytest.mark.parametrize(("change", "line", "text"), MISTAKES, ids=[m[2][:40] for m in MISTAKES])
def test_mistakes_name_file_line_and_field(
    change: tuple[str, str], line: int | None, text: str, tmp_path: Path
) -> None:
    old, new = change
    assert old in GOOD
    lines = _error(GOOD.replace(old, new, 1), tmp_path)
    matching = [entry for entry in lines if text in entry]
    assert matching, lines
    prefix = f"{tmp_path / 'intervals.toml'}:"
    assert matching[0].startswith(prefix + (f"{line}: " if line else ""))


def test_all_mistakes_reported_at_once_and_nothing_loaded(tmp_path: Path) -> None:
    text = GOOD.replace("speed = 2.8", "speed = 4.1").replace('duration = "1m"', 'duraton = "1m"')
    lines = _error(text, tmp_path)
    assert len(lines) >= 2
    assert any("4.1 mph" in entry for entry in lines)
    assert any("duraton" in entry for entry in lines)


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(ProgramError, match="no such file"):
        load_program(tmp_path / "missing.toml")
    (tmp_path / "latin.toml").write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(ProgramError, match=r"latin\.toml:1: is not UTF-8"):
        load_program(tmp_path / "latin.toml")


def test_find_program_accepts_name_or_path(tmp_path: Path) -> None:
    assert find_program("uphill").name == "uphill"
    path = tmp_path / "mine.toml"
    path.write_text(GOOD, encoding="utf-8")
    assert find_program(str(path)).name == "test-intervals"
    with pytest.raises(ProgramError, match="built-ins: first-week"):
        find_program("no-such-program")


def test_pause_mode_turn_has_no_speed() -> None:
    text = GOOD.replace("incline = 2.0", 'incline = 2.0\nturn = "pause"')
    program = parse_program(text, "pause.toml")
    assert program.steps[1].block.speed is None


def test_the_retro_run_starter_never_keeps_the_walker_backward_past_two_minutes() -> None:
    # The seed starts retro running once a two-minute retro walk succeeds: no stretch between
    # turn-arounds may ask for more than that (it was 460 s without a turn).
    from retrotread.progression import backward_stretches

    stretches = backward_stretches(find_program("retro-run-starter"))
    assert stretches and max(stretches) <= 120
