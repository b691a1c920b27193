"""A whole program plays to the end over a real pty on every serial console, all at once.

Real I/O to another process cannot run on the virtual clock, so the programs play in real time,
and they play concurrently (each console a simulator process on its own pty) so the whole
proof costs about 50 s of wall time and little CPU:

* the session in this process, on each console personality (issue 14): a Matrix-style CSAFE
  console (which takes no speed during a workout: a person at the console makes each change,
  as retrotread asks), a Concept2-style one, a Trackmaster with status queries and one without
  (which cannot report its belt: opted in, and the run is "unconfirmed");
* ``retrotread run`` as a user types it, on CSAFE and Trackmaster, with a 47 s program that has
  every block kind and every change of facing and speed a built-in has (issue 12: the proof
  that a whole program plays over a pty, without waiting seven minutes for a built-in).
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from retrotread.events import CommandConfirmed, CommandUnconfirmed
from retrotread.session import Outcome
from retrotread.units import mph
from retrotread_sim.serve import SimProcess
from tests.serial_support import (
    Played,
    SimFactory,
    belt_stopped_at_the_machine,
    play_program,
    profile,
    serve,
    written_into_pending_answers,
)

__all__ = ["serve"]

DEVICES = Path(__file__).resolve().parents[1] / "devices"
MPH_TO_KMH = 1.609344

EVERY_KIND = """\
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

#: consoles the session in this process plays: name -> (simulator options, device profile)
CONSOLES = {
    "matrix": (("--profile", str(DEVICES / "matrix-csafe.toml")), "matrix-csafe"),
    "concept2": (("--personality", "concept2"), "generic-csafe"),
    "trackmaster-query": (("--personality", "trackmaster-query"), "trackmaster-query"),
    "trackmaster": (("--personality", "trackmaster"), "generic-trackmaster"),
}
#: protocol -> (simulator options, device URL options) for `retrotread run`
COMMAND_LINE = {
    "csafe": (("--personality", "concept2"), "protocol=csafe&profile=generic-csafe"),
    "trackmaster": (
        ("--personality", "trackmaster-query"),
        "protocol=trackmaster&profile=trackmaster-query",
    ),
}


@dataclass
class Ran:
    status: int
    output: str
    sim: SimProcess


async def run_command_line(sim: SimProcess, url: str, program: Path) -> Ran:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "retrotread",
        "run",
        str(program),
        "--unattended",
        "--mute",
        "--device",
        url,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=150)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Ran(process.returncode, output.decode(errors="replace"), sim)


def check_session(name: str, played: Played, sim: SimProcess) -> None:
    """What the session in this process saw and did on console ``name``."""
    blind = name == "trackmaster"
    assert played.summary.outcome is (Outcome.UNCONFIRMED if blind else Outcome.COMPLETED), name
    assert played.summary.belt_stopped is not blind, name  # a blind machine confirms nothing
    assert played.off_target() == [], name
    refused = [e for e in played.events if isinstance(e, CommandUnconfirmed) and e.rejected]
    if name == "matrix":
        # Every change after the first block is made at the console, as retrotread asks.
        wanted = [mph(speed) for speed in ("1.0", "3.0", "1.0", "2.6", "2.2")]
        assert [e.value for e in refused] == wanted
        assert len(played.asked_of_operator) == len(wanted)
    else:
        assert refused == [] and played.asked_of_operator == [], name
    if blind:
        confirmed = [e.command for e in played.events if isinstance(e, CommandConfirmed)]
        assert "set speed" not in confirmed  # an acknowledgement is not the belt getting there
    records = sim.records()
    assert written_into_pending_answers(records) == [], name
    if not blind:
        running = [s for _, s in played.samples if s["belt"] == "running" and s["speed_kmh"] > 1]
        assert running and {s["target_incline_pct"] for s in running} == {2.0}, name
        assert all(s["incline_pct"] == 2.0 for s in running[len(running) // 3 :]), name
    else:
        assert not [r for r in records if r.get("text") in ("C1", "C2")]  # never asked
    final = records[-1]
    assert final["event"] == "closed" and final["state"]["stopped"] is True, (name, final)


def check_command_line(protocol: str, ran: Ran) -> None:
    """What `retrotread run` printed, and what the console received, for ``protocol``."""
    assert ran.status == 0, (protocol, ran.output)
    for line in ("▶ every-kind", "blocks    9 of 9", "ended     completed", "belt      stopped"):
        assert line in ran.output, (protocol, line, ran.output)
    records = ran.sim.records()
    states = [r["state"] for r in records if r.get("event") == "frame"]
    assert states, f"{protocol}: the simulator received nothing over the pty"
    # The belt took every speed of the program, retro-run's 3.6 mph the fastest, and 2.0 %.
    top = max(s["speed_kmh"] for s in states)
    assert 3.5 * MPH_TO_KMH <= top <= 3.6 * MPH_TO_KMH + 0.05, (protocol, top)
    assert any(abs(s["incline_pct"] - 2.0) < 0.05 for s in states), protocol
    assert written_into_pending_answers(records) == [], protocol
    closed = [r for r in records if r.get("event") == "closed"]
    assert closed and closed[-1]["state"]["stopped"] is True, (protocol, closed[-1:])
    assert closed[-1]["state"]["target_incline_pct"] == 0.0, protocol  # the cool-down's 0 %


@pytest.mark.realtime
async def test_a_whole_program_plays_to_the_end_on_every_serial_console(
    serve: SimFactory, tmp_path: Path
) -> None:
    sessions: dict[str, Any] = {}
    sims: dict[str, SimProcess] = {}
    for name, (options, device) in CONSOLES.items():
        protocol = "csafe" if device.endswith("csafe") else "trackmaster"
        sims[name] = serve(protocol, "--line-rate", "--accel", "6", *options)
        folder = tmp_path / name
        folder.mkdir()
        sessions[name] = play_program(
            sims[name],
            f"serial://{sims[name].address}?protocol={protocol}",
            profile(device),
            folder,
            operator=name == "matrix",
            allow_blind=name == "trackmaster",
        )
    program = tmp_path / "every-kind.toml"
    program.write_text(EVERY_KIND)
    commands: dict[str, Any] = {}
    for protocol, (options, url_options) in COMMAND_LINE.items():
        sim = serve(protocol, "--line-rate", "--accel", "6", *options)
        commands[protocol] = run_command_line(sim, f"serial://{sim.address}?{url_options}", program)

    everything = await asyncio.gather(*sessions.values(), *commands.values())
    played = dict(zip(sessions, everything[: len(sessions)], strict=True))
    ran = dict(zip(commands, everything[len(sessions) :], strict=True))

    for name, result in played.items():
        assert await belt_stopped_at_the_machine(sims[name]), name
        sims[name].stop()
        check_session(name, result, sims[name])
    for protocol, result in ran.items():
        result.sim.stop()
        check_command_line(protocol, result)
