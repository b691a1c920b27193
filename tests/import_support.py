"""What the import and export tests share: rehearsing a program, the CLI, comparing blocks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import strategies as st

from retrotread.clock import LoopClock, run
from retrotread.drivers.registry import open_treadmill
from retrotread.program import Program, ProgramError, load_program
from retrotread.program.formats import ImportOptions, import_file
from retrotread.session import Outcome, Session, SessionSummary
from retrotread.units import Unit


def rehearse(program: Program) -> SessionSummary:
    """Play the program on the in-process simulator, on the virtual clock (milliseconds)."""

    async def main() -> SessionSummary:
        clock = LoopClock()
        driver = open_treadmill("sim://", clock=clock)
        return await Session(program, driver, clock, unattended=True).run()

    return run(main(), virtual=True)


def imports_checks_and_rehearses(path: Path, options: ImportOptions, tmp_path: Path) -> Program:
    """The whole way a user goes: import, write the TOML, `check` it, load it back, play it."""
    imported = import_file(path, options)
    written = tmp_path / f"{path.stem}-imported.toml"
    written.write_text(imported.toml, encoding="utf-8")
    check = cli("check", str(written))
    assert check.returncode == 0, check.stderr
    loaded = load_program(written)
    assert blocks(loaded) == blocks(imported.program)
    summary = rehearse(loaded)
    assert summary.outcome is Outcome.COMPLETED, summary
    assert summary.blocks_done == len(loaded.steps)
    assert summary.belt_stopped
    return loaded


def blocks(program: Program) -> list[tuple[str, int, float | None, float]]:
    """What "the same blocks" means: kind, duration, speed (mph, to 0.01) and incline."""
    return [
        (
            str(step.kind),
            step.duration_s,
            round(step.block.speed.mph, 2) if step.block.speed else None,
            float(step.block.incline.value),
        )
        for step in program.steps
    ]


def blocks_without_incline(program: Program) -> list[tuple[str, int, float | None]]:
    return [(kind, seconds, speed) for kind, seconds, speed, _ in blocks(program)]


def speeds_mph(program: Program) -> list[float]:
    return [float(s.block.speed.to(Unit.MPH).value) for s in program.steps if s.block.speed]


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retrotread", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def import_outcome(path: Path, options: ImportOptions) -> Program | ProgramError:
    """A program or the loader's kind of error: the only two things an importer may give."""
    try:
        return import_file(path, options).program
    except ProgramError as err:
        assert err.issues, "a ProgramError lists its reasons"
        for line in err.lines():
            assert line.startswith(str(path)), line
        return err


def mutations(text: str) -> st.SearchStrategy[str]:
    """A valid file with a slice cut out, a span replaced, or characters inserted."""
    size = len(text)
    cut = st.tuples(st.integers(0, size), st.integers(0, 40)).map(
        lambda at: text[: at[0]] + text[at[0] + at[1] :]
    )
    insert = st.tuples(st.integers(0, size), st.text(max_size=12)).map(
        lambda at: text[: at[0]] + at[1] + text[at[0] :]
    )
    replace = st.tuples(st.integers(0, size), st.integers(0, 8), st.text(max_size=8)).map(
        lambda at: text[: at[0]] + at[2] + text[at[0] + at[1] :]
    )
    return st.one_of(cut, insert, replace)


def mistaken(sample: str, change: tuple[str, str]) -> str:
    """``sample`` with one mistake put in: ``change`` is (what is there, what replaces it)."""
    old, new = change
    assert old in sample
    return sample.replace(old, new, 1)


def assert_mistake_named(lines: list[str], path: Path, line: int, text: str) -> None:
    """The first problem saying ``text`` names the file and the line, as the loader does."""
    matching = [entry for entry in lines if text in entry]
    assert matching, lines
    assert matching[0].startswith(f"{path}:{line}: "), matching
