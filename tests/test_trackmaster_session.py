"""Programs over a real pty to the simulated Trackmaster treadmill in another process.

Real clock and real line rate (4800 baud), so the programs are short ones written here; see
test_csafe_session for why a built-in one is not played over the wire.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from retrotread.drivers.registry import open_treadmill
from retrotread.events import CommandConfirmed, CommandUnconfirmed, Event
from retrotread.program import find_program
from retrotread.session import Outcome, Session
from retrotread.units import mph
from tests.serial_support import (
    TWO_SPEEDS,
    SimFactory,
    in_order,
    profile,
    serve,
    write_program,
)

__all__ = ["serve"]

ONE_BLOCK = """\
name = "one-block"
description = "A few seconds at 2.6 mph and 2.0 %."

[[blocks]]
kind = "warm-up"
duration = "2s"
speed = 2.6
incline = 2.0
"""


def _texts(frames: list[dict[str, object]]) -> list[str]:
    return [str(f["text"]) for f in frames if f["text"] not in ("C1", "C2")]


@pytest.mark.realtime
async def test_a_program_plays_to_the_end_with_polled_telemetry(
    serve: SimFactory, tmp_path: Path
) -> None:
    sim = serve("trackmaster", "--line-rate", "--status-query", "--accel", "6")
    querying = profile("generic-trackmaster", quirks={"status_query": True})
    treadmill = open_treadmill(f"serial://{sim.address}?protocol=trackmaster", profile=querying)
    session = Session(
        find_program(str(write_program(tmp_path, TWO_SPEEDS))),
        treadmill,
        treadmill.clock,
        unattended=True,
    )
    events: list[Event] = []
    session.subscribe(events.append)
    summary = await session.run()
    assert summary.outcome is Outcome.COMPLETED
    assert summary.belt_stopped
    confirmed = [e.value for e in events if isinstance(e, CommandConfirmed)]
    assert mph("2.6") in confirmed and mph("3.2") in confirmed
    sent = _texts(sim.frames())
    assert in_order(["A4 0020", "A1", "A3 0026", "A3 0032", "A2"], sent)
    assert sent[-1] == "A2"
    sim.stop()
    final = sim.records()[-1]
    assert final["event"] == "closed" and final["state"]["stopped"] is True


@pytest.mark.realtime
async def test_without_telemetry_speeds_and_the_stop_stay_unconfirmed(
    serve: SimFactory, tmp_path: Path
) -> None:
    sim = serve("trackmaster", "--accel", "6")
    treadmill = open_treadmill(f"serial://{sim.address}?protocol=trackmaster")
    session = Session(
        find_program(str(write_program(tmp_path, ONE_BLOCK))),
        treadmill,
        treadmill.clock,
        unattended=True,
        allow_blind=True,  # a machine that cannot report its belt runs unattended by opt-in
    )
    events: list[Event] = []
    session.subscribe(events.append)
    summary = await session.run()
    assert summary.outcome is Outcome.UNCONFIRMED  # played to the end, but nothing saw it
    assert not summary.belt_stopped  # nothing can confirm it: the operator is told to check
    assert not [e for e in events if isinstance(e, CommandConfirmed) and e.command == "set speed"]
    sent = _texts(sim.frames())
    # The first ramp step goes out before start; the next waits for the belt to get there,
    # and without telemetry only its timeout ends that wait: 2.6 mph is not reached in 2 s.
    assert in_order(["A4 0020", "A3 0015", "A1", "A2"], sent)
    assert "A3 0026" not in sent
    sim.stop()
    assert sim.records()[-1]["state"]["belt"] == "stopped"  # the belt did stop
    assert all(not isinstance(e, CommandUnconfirmed) or "telemetry" in e.reason for e in events)
