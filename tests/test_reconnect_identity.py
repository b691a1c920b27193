"""Issue 13, finding 13: a reconnect never drives a different treadmill.

Treadmill A is unplugged; treadmill B appears at the same serial port. retrotread used to say
"link restored … belt confirmed stopped: restarting the program" and run B's belt, unattended.
A session now resumes on its own only on a machine whose identity it checked; where the
protocol cannot say which machine it is, a person must confirm; a machine that says it is
another is stopped and the session ends.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from retrotread.clock import LoopClock, run
from retrotread.drivers.base import MachineEventKind, Report
from retrotread.drivers.registry import open_treadmill
from retrotread.drivers.sim import SimDriver
from retrotread.events import Event, Fault, Notice
from retrotread.session import Outcome, Session
from retrotread_sim.serve import SimProcess
from tests.helpers import retro_program


@pytest.mark.realtime
async def test_a_treadmill_that_appears_at_the_same_port_is_not_driven(tmp_path: Path) -> None:
    port = str(tmp_path / "ttyTREAD")
    first = SimProcess("csafe", "--link", port, record=tmp_path / "a.jsonl")
    second = SimProcess("csafe", "--link", port, record=tmp_path / "b.jsonl")
    await asyncio.to_thread(first.start)
    try:
        clock = LoopClock()
        driver = open_treadmill(f"serial://{port}?protocol=csafe", clock=clock)
        session = Session(retro_program([40]), driver, clock, unattended=True, hold_limit_s=6)
        events: list[Event] = []
        session.subscribe(events.append)
        playing = asyncio.create_task(session.run())
        while not any(
            r.get("event") == "frame" and r["state"]["speed_kmh"] > 1 for r in first.records()
        ):
            assert not playing.done(), events
            await asyncio.sleep(0.1)
        await asyncio.to_thread(first.stop)  # A is unplugged for good...
        await asyncio.to_thread(second.start)  # ...and B appears at the same port
        summary = await asyncio.wait_for(playing, timeout=60)
    finally:
        await asyncio.to_thread(first.stop)
        await asyncio.to_thread(second.stop)
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert any("cannot say which treadmill it is" in n for n in notices), notices
    assert summary.outcome is Outcome.FAULT  # held until the hold limit: nobody confirmed
    on_b = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    sent_to_b = [c for r in on_b if r.get("event") == "frame" for c in r.get("commands", [])]
    assert "GO_IN_USE" not in sent_to_b and "SET_SPEED" not in sent_to_b, sent_to_b
    assert on_b[-1]["state"]["speed_kmh"] == 0.0  # B's belt never moved


class Swapped(SimDriver):
    """The in-process simulator, standing for a machine that answers with another identity
    after its link comes back (no in-process simulator can be two machines at once)."""

    swapped = False

    def publish(self, report: Report) -> None:
        if getattr(report, "kind", None) is MachineEventKind.LINK_RESTORED:
            self.swapped = True
        super().publish(report)

    @property
    def identity(self) -> str | None:
        return "treadmill B" if self.swapped else "treadmill A"


def test_a_machine_that_says_it_is_another_is_stopped_and_the_session_ends() -> None:
    async def main() -> tuple[Outcome, list[Event], list[str]]:
        clock = LoopClock()
        url = "sim://?faults=drop@15+5"
        plain = open_treadmill(url, clock=clock)
        driver = Swapped(plain.url, plain.profile, clock)
        session = Session(retro_program([30, 30]), driver, clock, unattended=True)
        events: list[Event] = []
        session.subscribe(events.append)
        summary = await session.run()
        assert driver.machine is not None
        sent = [c.name for c in driver.machine.commands if c.source == "link"]
        return summary.outcome, events, sent

    outcome, events, sent = run(main(), virtual=True)
    assert outcome is Outcome.FAULT
    assert "different-machine" in [e.kind for e in events if isinstance(e, Fault)]
    after_drop = sent[sent.index("start") + 1 :]
    assert "start" not in after_drop  # never restarted
    assert sent[-1] == "stop"
