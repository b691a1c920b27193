"""Whole programs over a real pty to the simulated CSAFE console in another process, on every
CSAFE personality (``retrotread_sim.csafe``).

The wire runs at real CSAFE line rate (9600 baud, ``--line-rate``) on the real clock: a virtual
clock cannot stand in for I/O to another process. So the programs are short ones written here
rather than built-in ones; the simulated belt accelerates at 6 km/h per second so ramp steps
settle within a block.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from retrotread.drivers.base import MachineEventKind
from retrotread.drivers.registry import open_treadmill
from retrotread.events import Event, StopProgress, StopState
from retrotread.program import find_program
from retrotread.session import Session
from tests.serial_support import (
    RETRO_CHECK,
    Reports,
    SimFactory,
    belt_stopped_at_the_machine,
    commands_received,
    in_order,
    profile,
    serve,
    write_program,
    written_into_pending_answers,
)

__all__ = ["serve"]

DEVICES = Path(__file__).resolve().parents[1] / "devices"
GO_IDLE = "F1 82 82 F2"
GRADE_2 = "F1 28 03 14 00 4C 73 F2"
SPEED_2_6 = "F1 25 03 1A 00 11 2D F2"
SPEED_3_2 = "F1 25 03 20 00 11 17 F2"
GO_IN_USE = "F1 85 85 F2"
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
    # Idle first, where presets hold; incline, a first ramp step, then GoInUse.
    assert sent[:2] == [GO_IDLE, GRADE_2]
    assert in_order([GO_IDLE, GRADE_2, GO_IN_USE, SPEED_2_6, SPEED_3_2, GO_FINISHED], sent)
    assert sent[-1] == GO_FINISHED
    sim.stop()
    final = sim.records()[-1]
    assert final["event"] == "closed"
    assert final["state"]["belt"] == "stopped"
    assert final["state"]["speed_kmh"] == 0.0
    assert final["state"]["csafe_state"] == "finished"


SHORT_RETRO = """\
name = "short-retro"
description = "Backward, two speeds: the program ends while the console is silent."

[defaults]
incline = 2.0
start_facing = "rear"

[[blocks]]
kind = "retro"
duration = "3s"
speed = 2.6

[[blocks]]
kind = "retro"
duration = "4s"
speed = 2.8
"""


@pytest.mark.realtime
@pytest.mark.parametrize("personality", ["matrix", "concept2"])
async def test_the_stop_goes_out_when_a_silent_console_answers_again(
    serve: SimFactory, tmp_path: Path, personality: str
) -> None:
    # Issue 13, finding 3: the console stops answering for 8 s mid-retro; the program ends
    # in the silence. The old driver sent GoFinished into the silence six times, gave up, and
    # sent nothing when the console answered again (2.8 mph, InUse): the belt kept running.
    silence = (6.0, 8.0)  # seconds after the simulator starts
    plan = f"silent@{silence[0]:g}+{silence[1]:g}"
    sim = serve("csafe", "--accel", "6", "--personality", personality, "--faults", plan)
    chosen = profile(f"{'matrix' if personality == 'matrix' else 'generic'}-csafe")
    treadmill = open_treadmill(f"serial://{sim.address}?protocol=csafe", profile=chosen)
    program = find_program(str(write_program(tmp_path, SHORT_RETRO)))
    session = Session(program, treadmill, treadmill.clock, unattended=True, hold_limit_s=60)
    events: list[Event] = []
    session.subscribe(events.append)
    reports = Reports(treadmill)
    summary = await asyncio.wait_for(session.run(), timeout=60)
    assert summary.belt_stopped
    kinds = reports.events()
    assert MachineEventKind.LINK_LOST in kinds and MachineEventKind.LINK_RESTORED in kinds
    # A console that answers nothing is a lost link (docs/csafe.md): the stop says so, waits
    # paced, and keeps trying.
    down = [e for e in events if isinstance(e, StopProgress) and e.state is StopState.LINK_DOWN]
    assert down, "the stop met the silence and kept trying"
    assert await belt_stopped_at_the_machine(sim)
    sim.stop()
    records = sim.records()
    assert written_into_pending_answers(records) == []
    unheard = [r for r in records if r["event"] == "unheard"]
    assert any(r["rx"].startswith(GO_FINISHED) for r in unheard)  # stops into the silence
    back = unheard[-1]["t"]
    heard = [r for r in records if r["event"] == "frame" and r["t"] > back]
    stops = [r for r in heard if r["rx"] == GO_FINISHED and r["note"] == "ok"]
    assert stops, "a stop was carried out after the silence"
    assert stops[0]["t"] - back < 8.0  # the paced retries reach it within one backoff
    assert stops[0]["state"]["target_speed_kmh"] == 0.0
    final = records[-1]
    assert final["event"] == "closed" and final["state"]["stopped"] is True
    assert final["state"]["speed_kmh"] == 0.0
