"""A whole program plays to the end over a real pty, on both serial protocols at once.

Real I/O to another process cannot run on the virtual clock, so instead of a built-in (the
shortest takes 7:10) this plays a 47 s program that has every block kind and every change of
facing and speed a built-in has: forward to turn-around to retro, retro to retro-run and back,
turn-around to forward, recovery, cool-down with a change of incline. Both protocols play
concurrently (a simulator process on a pty and ``retrotread run`` in another process each), at
the real line rate, so the test costs about 50 s of wall time and little CPU.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from retrotread_sim.serve import SimProcess

PROGRAM = """\
name = "every-kind"
description = "Every block kind and every change of facing, a few seconds each."

[defaults]
incline = 2.0
retro_band = [2.6, 3.2]
retro_run_band = [3.5, 4.5]

[[blocks]]
kind = "warm-up"
duration = "6s"
speed = 2.6
incline = 1.0

[[blocks]]
kind = "turn-around"

[[blocks]]
kind = "retro"
duration = "6s"
speed = 2.8
handrail = "light-touch"

[[blocks]]
kind = "retro-run"
duration = "5s"
speed = 3.6

[[blocks]]
kind = "retro"
duration = "5s"
speed = 2.6

[[blocks]]
kind = "turn-around"

[[blocks]]
kind = "forward"
duration = "5s"
speed = 3.0

[[blocks]]
kind = "recovery"
duration = "5s"
speed = 2.5

[[blocks]]
kind = "cool-down"
duration = "5s"
speed = 2.2
incline = 0.0
"""

#: protocol -> (simulator options, device profile)
LINKS = {
    "csafe": (("--line-rate", "--accel", "6"), "generic-csafe"),
    "trackmaster": (("--line-rate", "--accel", "6", "--status-query"), "trackmaster-query"),
}
MPH_TO_KMH = 1.609344


def frames(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("event") == "frame"]


@pytest.mark.realtime
def test_a_whole_program_plays_to_the_end_over_a_pty_on_both_protocols(tmp_path: Path) -> None:
    program = tmp_path / "every-kind.toml"
    program.write_text(PROGRAM)
    sims: dict[str, SimProcess] = {}
    players: dict[str, subprocess.Popen[str]] = {}
    try:
        for protocol, (options, profile) in LINKS.items():
            sim = SimProcess(protocol, *options, record=tmp_path / f"{protocol}.jsonl")
            sims[protocol] = sim
            sim.start()
            device = f"serial://{sim.address}?protocol={protocol}&profile={profile}"
            command = [sys.executable, "-m", "retrotread", "run", str(program), "--unattended"]
            players[protocol] = subprocess.Popen(
                [*command, "--mute", "--device", device],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
            )
        deadline = time.monotonic() + 120
        outputs = {
            protocol: player.communicate(timeout=max(1.0, deadline - time.monotonic()))[0]
            for protocol, player in players.items()
        }
    finally:
        for player in players.values():
            if player.poll() is None:
                player.kill()
                player.wait()
        for sim in sims.values():
            sim.stop()

    for protocol, output in outputs.items():
        assert players[protocol].returncode == 0, (protocol, output)
        assert "▶ every-kind" in output, (protocol, output)
        assert "blocks    9 of 9" in output, (protocol, output)
        assert "ended     completed" in output, (protocol, output)
        assert "belt      stopped" in output, (protocol, output)
        records = sims[protocol].records()
        answered = frames(records)
        assert answered, f"{protocol}: the simulator received nothing over the pty"
        # The belt took every speed of the program and the retro incline, in band...
        states = [r["state"] for r in answered]
        top = max(s["speed_kmh"] for s in states)
        assert 3.5 * MPH_TO_KMH <= top <= 3.6 * MPH_TO_KMH + 0.05, (protocol, top)
        assert any(abs(s["incline_pct"] - 2.0) < 0.05 for s in states), protocol
        # ...and ended halted at zero, its incline moving to the cool-down's 0 %.
        closed = [r for r in records if r.get("event") == "closed"]
        assert closed, f"{protocol}: the simulator journal was not closed"
        assert closed[-1]["state"]["stopped"] is True, (protocol, closed[-1])
        assert closed[-1]["state"]["target_incline_pct"] == 0.0, (protocol, closed[-1])
