"""The loader on hostile input: what it refuses, and how long it may take.

A program file is read whole and parsed by tomllib, then scanned for the lines errors name. Each
step must end in a moment and in a ``file:line`` message whatever the file holds: a device that
never ends, a fifo nobody writes, a number or nesting tomllib cannot take, a line built to make
a regular expression backtrack. The slow cases run in a child process with a time limit, so the
old loader fails them instead of holding the suite for minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from retrotread.program.loader import (
    MAX_PROGRAM_BYTES,
    ProgramError,
    load_program,
    locate,
    parse_program,
)

VALID = (
    'name = "limits"\n[defaults]\nretro_band = [2.6, 3.2]\n'
    '[[blocks]]\nkind = "warm-up"\nduration = "1m"\nspeed = 2.5\n'
)
#: What one fuzzed file may take to load (ms for a sane file; the old scanner took seconds).
BUDGET_S = 1.0


def _check(path: Path | str) -> subprocess.CompletedProcess[str]:
    """``retrotread check PATH`` as a user runs it, with 512 MiB of memory and 20 s at most."""
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20)); "
    code = limit + "import sys; from retrotread.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, "check", str(path)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def _issue(text: str) -> tuple[int | None, str]:
    with pytest.raises(ProgramError) as caught:
        parse_program(text, "p.toml")
    assert len(caught.value.issues) == 1
    issue = caught.value.issues[0]
    return issue.line, issue.message


# -- what is read --------------------------------------------------------------------------------


def test_check_refuses_a_device_at_once_instead_of_reading_it_until_memory_runs_out() -> None:
    checked = _check("/dev/zero")
    assert checked.returncode == 2, checked.stderr
    assert "/dev/zero: is not a regular file" in checked.stderr
    assert "internal error" not in checked.stderr


def test_check_refuses_a_fifo_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "program.toml"
    os.mkfifo(fifo)
    checked = _check(fifo)  # the old loader waited here for a writer until the time limit
    assert checked.returncode == 2, checked.stderr
    assert f"{fifo}: is not a regular file (a device, fifo or socket)" in checked.stderr


def test_a_file_larger_than_any_program_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    with big.open("wb") as handle:
        handle.truncate(MAX_PROGRAM_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(ProgramError, match=r"program files are small, at most 2048 KiB"):
        load_program(big)
    with pytest.raises(ProgramError, match=r"is a directory, not a program file"):
        load_program(tmp_path)
    with pytest.raises(ProgramError, match=r"no such file"):
        load_program(tmp_path / "missing.toml")


def test_text_longer_than_any_program_is_refused_before_parsing() -> None:
    line, message = _issue(VALID + "#" * MAX_PROGRAM_BYTES)
    assert line is None and "program file is small" in message


# -- what tomllib cannot take ----------------------------------------------------------------


def test_an_integer_of_thousands_of_digits_is_a_message_at_its_line(tmp_path: Path) -> None:
    assert _issue(VALID + "[meta]\nsize = " + "7" * 5000 + "\n") == (
        9,
        "a number with thousands of digits; program numbers have a few",
    )
    path = tmp_path / "digits.toml"
    path.write_text(VALID + "x = 1_" + "2" * 4400 + "\n")
    checked = _check(path)
    assert checked.returncode == 2
    assert f"{path}:8: a number with thousands of digits" in checked.stderr


def test_nesting_thousands_deep_is_a_message_at_its_line() -> None:
    line, message = _issue(VALID + "deep = " + "[" * 5000 + "]" * 5000 + "\n")
    assert (line, message) == (
        8,
        "arrays or tables nested too deep; program files nest a few levels",
    )
    line, _ = _issue(VALID + "deep = [\n" + "{ a = " * 3000 + "1" + "}" * 3000 + "]\n")
    assert line == 9


def test_a_key_of_thousands_of_dotted_parts_is_refused_before_tomllib_squares_on_it() -> None:
    started = time.perf_counter()
    line, message = _issue(VALID + "a." * 40_000 + "b = 1\n")
    assert time.perf_counter() - started < BUDGET_S  # tomllib alone: 23 s
    assert line == 8 and "more than 32 dotted parts" in message


# -- where things are, in time proportional to the file --------------------------------------------


def _timed_locate(text: str) -> float:
    code = "import sys, time; from retrotread.program.loader import locate\n" + (
        "text = sys.stdin.read(); began = time.perf_counter(); locate(text)\n"
        "print(time.perf_counter() - began)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=text, capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 0, done.stderr
    return float(done.stdout)


@pytest.mark.parametrize("spaces", [50_000, 200_000])
def test_a_long_whitespace_run_in_an_array_line_is_scanned_in_linear_time(spaces: int) -> None:
    # The old scanner took 6.7 s at 50 KB and minutes at 200 KB (its header pattern backtracked
    # over the run); it also took such an array line for a table header.
    text = VALID + "band = [\n[" + " " * spaces + "1, 2],\n]\n"
    assert _timed_locate(text) < BUDGET_S
    assert "1" not in {key[0] for key in locate(text)}


def test_lines_are_found_past_multiline_strings_arrays_and_dotted_keys() -> None:
    text = (
        'a."b c".d = 1\n'
        "[t]\n"
        'x = """\n[not_a_table]\ny = 2\n"""\n'
        "z = [\n  [1],\n  {k = 1},\n]\n"
        "'q' = 1 # a comment [\n"
        "[[u.v]]\n"
        "k = '''\nz = 3'''''\n"
        "m = 1\n"
    )
    lines = locate(text)
    assert lines[("a", "b c", "d")] == 1
    assert lines[("t",)] == 2
    assert lines[("t", "x")] == 3 and ("not_a_table",) not in lines and ("t", "y") not in lines
    assert lines[("t", "z")] == 7 and ("1",) not in lines
    assert lines[("t", "q")] == 11
    assert lines[("u", "v", 0)] == 12
    assert lines[("u", "v", 0, "m")] == 15


def test_an_error_names_the_line_after_a_multiline_array() -> None:
    text = VALID.replace(
        "retro_band = [2.6, 3.2]", "retro_band = [\n  2.6,\n  3.2,\n]\n  walk_band = [9, 1]"
    )
    line, message = _issue(text)
    assert line == 7 and "walk_band" in message


# -- fuzzed: every file ends in a moment, in a program or a ProgramError ---------------------------

_PIECES = [
    "[", "]", "[[", "]]", "{", "}", '"', "'", '"""', "'''", "=", ".", ",", "#", "\n", " ", "\t",
    "\\", "\r\n", "a", "blocks", "name", "1", "2.5", "-", "_", '"x"', "'y'", 'kind = "retro"',
    "[[blocks]]", "[[blocks.blocks]]", "[defaults]", "repeat = 2", 'duration = "30s"', "1e999",
    "0x", "é", "\x00",
]  # fmt: skip
_RUN = st.tuples(st.sampled_from(_PIECES), st.integers(1, 1500)).map(lambda run: run[0] * run[1])
_TEXT = st.lists(st.one_of(st.sampled_from(_PIECES), _RUN), max_size=40).map("".join)


@settings(
    max_examples=120,
    deadline=None,  # the budget below is the deadline, checked on every example
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(prefix=st.sampled_from(["", VALID, "x = [\n"]), body=_TEXT)
@example(prefix=VALID + "band = [\n", body="[" + " " * 1500 + "1, 2],\n]\n")
@example(prefix=VALID, body="[[" + " " * 1500 + "blocks")
def test_any_text_loads_or_fails_with_a_program_error_within_the_budget(
    prefix: str, body: str
) -> None:
    text = prefix + body
    started = time.perf_counter()
    try:
        parse_program(text, "fuzz.toml")
    except ProgramError as err:
        assert err.issues and all(str(err).startswith("fuzz.toml") for _ in err.issues)
    locate(text)  # the scanner alone takes any text too (it also runs on the guards' behalf)
    assert time.perf_counter() - started < BUDGET_S
