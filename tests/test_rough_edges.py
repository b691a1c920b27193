"""What a new user hit (issue 19): bad input is a clear error with the right exit status,
text from outside is shown and never obeyed, and any terminal can show the output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from retrotread.cli import main
from retrotread.program import ProgramError, parse_program
from retrotread.text import printable

ESC = "\x1b"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_a_serial_port_that_does_not_exist_is_bad_input_said_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, err = cli(
        capsys,
        "run",
        "first-week",
        "--unattended",
        "--mute",
        "--no-record",
        "--device",
        "serial:///dev/ttyNOPE?protocol=csafe",
    )
    assert status == 2
    said = out + err
    assert said.count("/dev/ttyNOPE") == 1 and "[Errno" not in said
    assert "No such file or directory" in err and "retrotread scan" in err


def test_a_client_name_with_a_terminal_escape_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, err = cli(capsys, "clients", "add", f"Ana{ESC}[2J", "--db", str(tmp_path / "x.db"))
    assert status == 2 and ESC not in out + err
    assert "control characters" in err and "\\x1b[2J" in err


def test_a_program_with_a_terminal_escape_names_its_line() -> None:
    text = (
        'name = "escape"\n'
        "[[blocks]]\n"
        'kind = "warm-up"\n'
        "duration = 60\n"
        "speed = 2.5\n"
        'cue = "Relax\\u001b]0;pwned\\u0007"\n'  # TOML's own escapes: a raw ESC is not TOML
    )
    with pytest.raises(ProgramError) as caught:
        parse_program(text, "escape.toml")
    lines = caught.value.lines()
    assert any(line.startswith("escape.toml:6:") and "control character" in line for line in lines)
    assert all(ESC not in line for line in lines)


def test_printable_writes_out_every_control_character() -> None:
    assert printable(f"a{ESC}[31mb\x07\x9bc\td\n") == "a\\x1b[31mb\\x07\\x9bc\td\n"


def test_any_terminal_encoding_shows_the_output() -> None:
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    done = subprocess.run(
        [sys.executable, "-m", "retrotread", "show", "first-week"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "first-week ? 14:00 total" in done.stdout and "internal error" not in done.stderr


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("incline = -3.001", "incline -3.001 % is outside -3–15 %"),
        ("speed = 13", "speed 13 mph is outside what any treadmill here runs (0.3–12 mph)"),
        ('speed = "25 km/h"', "speed 25 km/h is outside what any treadmill here runs"),
    ],
)
def test_a_value_out_of_range_is_shown_as_written(line: str, expected: str) -> None:
    fields = {"speed": "speed = 2.5", "incline": "incline = 1"}
    fields[line.split()[0]] = line
    text = 'name = "odd"\n[[blocks]]\nkind = "warm-up"\nduration = 60\n' + "\n".join(
        fields.values()
    )
    with pytest.raises(ProgramError) as caught:
        parse_program(text, "odd.toml")
    assert any(expected in said for said in caught.value.lines()), caught.value.lines()
