"""A treadmill that cannot report its belt (a Trackmaster without status queries).

Issue 13, finding 5: a pulled safety key went unnoticed, the program went on announcing 3-2-1s
and the run was recorded "completed". Now the operator is told before the start, an
unattended run needs an explicit ``--allow-blind``, and a run that plays to the end is
recorded "unconfirmed", never "completed". Real I/O over a pty to the simulator, so real time:
the program is 12 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from retrotread_sim.serve import SimProcess

PROGRAM = """\
name = "blind"
description = "two short blocks on a machine that cannot report its belt"
[[blocks]]
kind = "warm-up"
duration = "6s"
speed = 2.0
[[blocks]]
kind = "cool-down"
duration = "6s"
speed = 1.5
"""


def run_blind(tmp_path: Path, *options: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    program = tmp_path / "blind.toml"
    program.write_text(PROGRAM)
    with SimProcess("trackmaster", record=tmp_path / "tm.jsonl") as sim:
        device = f"serial://{sim.address}?protocol=trackmaster&profile=generic-trackmaster"
        command = [sys.executable, "-m", "retrotread", "run", str(program), "--mute"]
        result = subprocess.run(
            [*command, "--device", device, "--unattended", *options],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
    frames = [
        json.loads(line)
        for line in (tmp_path / "tm.jsonl").read_text().splitlines()
        if '"frame"' in line
    ]
    return result, [str(f.get("request", "")) for f in frames]


@pytest.mark.realtime
def test_unattended_on_a_blind_machine_is_refused_before_the_belt_moves(tmp_path: Path) -> None:
    result, _ = run_blind(tmp_path)
    assert "cannot report its belt" in result.stdout
    assert "--allow-blind" in result.stdout
    assert result.returncode == 4, result.stdout + result.stderr
    history = subprocess.run(
        [sys.executable, "-m", "retrotread", "history"], capture_output=True, text=True, check=True
    )
    assert "completed" not in history.stdout


@pytest.mark.realtime
def test_a_blind_run_that_plays_to_the_end_is_unconfirmed_never_completed(tmp_path: Path) -> None:
    result, _ = run_blind(tmp_path, "--allow-blind")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "cannot report its belt" in out.split("1/2")[0]  # said before the first block
    assert "ended     unconfirmed" in out
    assert "ended     completed" not in out
    history = subprocess.run(
        [sys.executable, "-m", "retrotread", "history"], capture_output=True, text=True, check=True
    )
    assert "unconfirmed" in history.stdout and "completed" not in history.stdout
