"""Shell completion: what a shell gets for a partly typed retrotread command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def complete(line: str, tmp_path: Path, **env: str) -> list[str]:
    """Ask retrotread as bash does (argcomplete's protocol), in a child process."""
    answer = tmp_path / "completions"
    done = subprocess.run(
        [sys.executable, "-m", "retrotread"],
        env={
            **os.environ,
            **env,
            "_ARGCOMPLETE": "1",
            "_ARGCOMPLETE_SHELL": "bash",
            "_ARGCOMPLETE_STDOUT_FILENAME": str(answer),
            "_ARGCOMPLETE_IFS": "\n",
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            "COMP_TYPE": "9",
        },
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return sorted(answer.read_text().split("\n")) if answer.read_text() else []


def test_commands_complete(tmp_path: Path) -> None:
    assert [c.strip() for c in complete("retrotread ru", tmp_path)] == ["run"]
    assert [c.strip() for c in complete("retrotread conf", tmp_path)] == ["config"]


def test_program_names_and_files_complete(tmp_path: Path) -> None:
    (tmp_path / "first-day.toml").write_text("")
    found = [c.strip() for c in complete("retrotread run fir", tmp_path)]
    assert found == ["first-day.toml", "first-week"]


def test_client_names_complete_from_the_records(tmp_path: Path) -> None:
    records = tmp_path / "records.db"
    env = {"RETROTREAD_DATA_DIR": str(tmp_path / "data")}
    for name in ("Ana Silva", "Andre", "Bob"):
        subprocess.run(
            [sys.executable, "-m", "retrotread", "clients", "add", name, "--db", str(records)],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
            timeout=60,
        )
    found = complete(f"retrotread next --db {records} --client An", tmp_path, **env)
    assert [c.strip().replace("\\ ", " ") for c in found] == ["Ana Silva", "Andre"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_shell_code(shell: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "retrotread", "completion", shell],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "retrotread" in done.stdout
