"""A whole program over a real pty to the simulated CSAFE treadmill in another process.

The wire runs at real CSAFE line rate (9600 baud, ``--line-rate``), on the real clock: a virtual
clock cannot stand in for I/O to another process. So this plays a short program written here
(11 s: warm-up, turn-around, retro) rather than a built-in one (the shortest takes minutes);
the simulated belt accelerates at 6 km/h per second so the ramp steps settle within a 3 s
block.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.serial_support import (
    RETRO_CHECK,
    SimFactory,
    commands_received,
    in_order,
    serve,
    write_program,
)

__all__ = ["serve"]

GRADE_2 = "F1 28 03 14 00 4C 73 F2"
SPEED_2_6 = "F1 25 03 1A 00 11 2D F2"
SPEED_3_2 = "F1 25 03 20 00 11 17 F2"
GO_FINISHED = "F1 86 86 F2"


@pytest.mark.realtime
def test_retrotread_run_plays_a_program_to_the_end_over_a_pty(
    serve: SimFactory, tmp_path: Path
) -> None:
    sim = serve("csafe", "--line-rate", "--accel", "6")
    program = write_program(tmp_path, RETRO_CHECK)
    device = f"serial://{sim.address}?protocol=csafe"
    command = [sys.executable, "-m", "retrotread", "run", str(program), "--device", device]
    run = subprocess.run([*command, "--unattended"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "ended     completed" in run.stdout
    assert "belt      stopped" in run.stdout
    assert "not confirmed" not in run.stdout  # every speed was seen in CSAFE telemetry
    assert "fault" not in run.stdout
    sent = commands_received(sim)
    assert sent[0] == GRADE_2  # incline first, then a first ramp step, then GoIdle + GoInUse
    assert in_order([GRADE_2, "F1 82 85 07 F2", SPEED_2_6, SPEED_3_2, GO_FINISHED], sent)
    assert sent[-1] == GO_FINISHED
    sim.stop()
    final = sim.records()[-1]
    assert final["event"] == "closed"
    assert final["state"]["belt"] == "stopped"
    assert final["state"]["speed_kmh"] == 0.0
    assert final["state"]["csafe_state"] == "finished"
