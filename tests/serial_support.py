"""Shared by the serial tests: the simulator as a child process, and collecting reports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from retrotread.drivers.base import MachineEvent, MachineEventKind, Report, Telemetry, Treadmill
from retrotread.drivers.registry import open_treadmill
from retrotread.events import BlockStarted, CommandUnconfirmed, Event, ProgramFinished
from retrotread.profiles import Profile, get_profile
from retrotread.program import find_program
from retrotread.session import Session, SessionSummary
from retrotread.units import Unit
from retrotread_sim.belt import KMH_PER_MPH
from retrotread_sim.serve import SimProcess

POLL_COMMANDS = ["GET_STATUS", "GET_SPEED", "GET_GRADE", "GET_HORIZONTAL", "GET_TWORK"]


class SimFactory:
    """Starts ``retrotread-sim serve`` processes for one test and stops them afterwards."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[SimProcess] = []

    def __call__(self, protocol: str, *options: str) -> SimProcess:
        record = self.folder / f"{protocol}-{len(self.started)}.jsonl"
        sim = SimProcess(protocol, *options, record=record)
        self.started.append(sim)
        sim.start()
        return sim

    def stop_all(self) -> None:
        for sim in self.started:
            sim.stop()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[SimFactory]:
    factory = SimFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


def commands_received(sim: SimProcess) -> list[str]:
    """Hex of every frame or line the simulator received, telemetry polls left out."""
    return [
        frame["rx"]
        for frame in sim.frames()
        if frame["commands"] != POLL_COMMANDS and frame["commands"] not in (["C1"], ["C2"])
    ]


def profile(name: str, *, quirks: dict[str, Any] | None = None, **confirm: float) -> Profile:
    """A bundled profile, with quirks and ``confirm`` times (seconds) changed for a test."""
    base = get_profile(name)
    if quirks:
        base = base.with_quirks(**quirks)
    changed: dict[str, Any] = dict(confirm)
    return replace(base, confirm=replace(base.confirm, **changed)) if confirm else base


class Reports:
    """Everything a treadmill publishes, with a way to wait for the next one that matters."""

    def __init__(self, treadmill: Treadmill) -> None:
        self.items: list[Report] = []
        self._arrived = asyncio.Event()
        treadmill.subscribe(self._add)

    def _add(self, report: Report) -> None:
        self.items.append(report)
        self._arrived.set()

    def mark(self) -> int:
        return len(self.items)

    def events(self, since: int = 0) -> list[MachineEventKind]:
        return [r.kind for r in self.items[since:] if isinstance(r, MachineEvent)]

    def telemetry(self, since: int = 0) -> list[Telemetry]:
        return [r for r in self.items[since:] if isinstance(r, Telemetry)]

    async def wait_for(
        self, matches: Callable[[Report], bool], *, since: int = 0, within: float = 5.0
    ) -> Report:
        async with asyncio.timeout(within):
            while True:
                for report in self.items[since:]:
                    if matches(report):
                        return report
                since = len(self.items)
                self._arrived.clear()
                await self._arrived.wait()

    async def wait_event(
        self, kind: MachineEventKind, *, since: int = 0, within: float = 5.0
    ) -> MachineEvent:
        report = await self.wait_for(
            lambda r: isinstance(r, MachineEvent) and r.kind is kind, since=since, within=within
        )
        assert isinstance(report, MachineEvent)
        return report

    async def wait_telemetry(
        self, matches: Callable[[Telemetry], bool], *, since: int = 0, within: float = 5.0
    ) -> Telemetry:
        report = await self.wait_for(
            lambda r: isinstance(r, Telemetry) and matches(r), since=since, within=within
        )
        assert isinstance(report, Telemetry)
        return report


RETRO_CHECK = """\
name = "serial-check"
description = "Warm up, turn around, walk backward: a short program for serial end-to-end tests."

[defaults]
incline = 2.0
retro_band = [2.6, 3.2]

[[blocks]]
kind = "warm-up"
duration = "3s"
speed = 2.6

[[blocks]]
kind = "turn-around"

[[blocks]]
kind = "retro"
duration = "3s"
speed = 3.2
"""

TWO_SPEEDS = """\
name = "two-speeds"
description = "2.6 then 3.2 mph at 2.0 %: the retro-walk settings, forward, for the wire tests."

[defaults]
incline = 2.0

[[blocks]]
kind = "warm-up"
duration = "3s"
speed = 2.6

[[blocks]]
kind = "forward"
duration = "3s"
speed = 3.2
"""


def write_program(folder: Path, text: str, name: str = "program.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def in_order(wanted: list[str], received: list[str]) -> bool:
    """Whether ``wanted`` appear in ``received`` in this order (others may come between)."""
    remaining = iter(received)
    return all(any(item == got for got in remaining) for item in wanted)


def written_into_pending_answers(records: list[dict[str, Any]], window_s: float = 1.0) -> list[str]:
    """Frames the simulator received while the answer to the frame before was still due.

    From the simulator's journal: an answer goes out when its frame is recorded, or later
    (an ``answer`` entry, for a late one); a frame never answered keeps the wire for the reply
    window. One frame in flight means this list is empty.
    """
    problems: list[str] = []
    due: float | None = None  # when the wire was free again after the last frame
    late: dict[str, list[float]] = {}
    for entry in records:
        if entry.get("event") == "answer":
            late.setdefault(entry["to"], []).append(entry["t"])
    for entry in records:
        if entry.get("event") not in ("frame", "unheard"):
            continue
        at = entry["t"]
        if due is not None and at < due:
            problems.append(f"{entry['rx']} at {at:.3f} s, the answer before was due at {due:.3f}")
        answered = entry.get("tx") is not None
        if answered and "answered late" in entry.get("note", ""):
            times = [t for t in late.get(entry["rx"], []) if t >= at]
            due = min(times) if times else at + window_s
        elif answered:
            due = at
        else:
            due = at + window_s - 0.05  # the driver counts from its write, a moment earlier
    return problems


#: the status frame that follows every CSAFE command (and is the telemetry poll)
STATUS_FRAME = "F1 80 A5 A8 A1 A0 8C F2"


#: about 41 s: every kind of block a retro session has, each at its own speed
PERSONALITY_PROGRAM = """\
name = "serial-personalities"
description = "Warm-up, turn-around, retro, turn-around, recovery, cool-down: about 40 s."

[defaults]
incline = 2.0
retro_band = [2.6, 3.2]

[[blocks]]
kind = "warm-up"
duration = "8s"
speed = 2.6

[[blocks]]
kind = "turn-around"

[[blocks]]
kind = "retro"
duration = "8s"
speed = 3.0

[[blocks]]
kind = "turn-around"

[[blocks]]
kind = "recovery"
duration = "8s"
speed = 2.6

[[blocks]]
kind = "cool-down"
duration = "7s"
speed = 2.2
"""


@dataclass
class Played:
    """A program played over the wire: the session's summary and events, and the machine's
    own state sampled through the simulator's console (the truth, whatever the link says)."""

    summary: SessionSummary
    events: list[Event]
    samples: list[tuple[float, dict[str, Any]]]
    asked_of_operator: list[str]

    def off_target(self, tolerance_mph: float = 0.2) -> list[str]:
        """Blocks whose belt never ran at the block's speed, or ran above its band.

        Judged on the machine's own samples while the block ran (the belt ramps into a block,
        and slows before a turn-around ahead of it).
        """
        starts = [e for e in self.events if isinstance(e, BlockStarted)]
        finished = [e.at for e in self.events if isinstance(e, ProgramFinished)]
        ends = [s.at for s in starts[1:]] + finished[:1]
        problems = []
        for started, ended in zip(starts, ends, strict=False):
            block = started.step.block
            if block.speed is None:
                continue
            target = float(block.speed.to(Unit.MPH).value)
            ceiling = float(started.step.band.high.value) + tolerance_mph
            during = [
                state["speed_kmh"] / KMH_PER_MPH
                for at, state in self.samples
                if started.at <= at <= ended
            ]
            reached = any(abs(s - target) <= tolerance_mph for s in during)
            if not reached or any(s > ceiling for s in during):
                problems.append(f"{started.step.title} at {target} mph: belt {during}")
        return problems


async def play_program(
    sim: SimProcess,
    url: str,
    chosen: Profile,
    folder: Path,
    *,
    operator: bool = False,
    allow_blind: bool = False,
) -> Played:
    """Play ``PERSONALITY_PROGRAM`` unattended; ``operator``: a person at the console sets
    what the console will not take over the wire during a workout, as retrotread asks."""
    treadmill = open_treadmill(url, profile=chosen)
    program = find_program(str(write_program(folder, PERSONALITY_PROGRAM, "personalities.toml")))
    session = Session(program, treadmill, treadmill.clock, unattended=True, allow_blind=allow_blind)
    events: list[Event] = []
    samples: list[tuple[float, dict[str, Any]]] = []
    asked: list[str] = []
    loop = asyncio.get_running_loop()
    helping: set[asyncio.Future[str]] = set()
    one_at_a_time = threading.Lock()  # the console answers in order: one question at a time

    def at_console(command: str) -> str:
        with one_at_a_time:
            return sim.console(command)

    def on_event(event: Event) -> None:
        events.append(event)
        if (
            operator
            and isinstance(event, CommandUnconfirmed)
            and event.rejected
            and "on the treadmill console" in event.reason
            and event.value is not None
        ):
            asked.append(event.reason)
            what = "speed" if event.value.unit is not Unit.PERCENT else "grade"
            amount = float(event.value.to(Unit.MPH).value if what == "speed" else event.value.value)
            job = asyncio.ensure_future(asyncio.to_thread(at_console, f"{what} {amount}"))
            helping.add(job)

    async def sample() -> None:
        while True:
            state = json.loads(await asyncio.to_thread(at_console, "state"))
            samples.append((loop.time(), state))
            await asyncio.sleep(0.25)

    session.subscribe(on_event)
    sampler = asyncio.create_task(sample())
    try:
        summary = await asyncio.wait_for(session.run(), timeout=90)
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        for job in helping:
            await job
    return Played(summary, events, samples, asked)


async def belt_stopped_at_the_machine(sim: SimProcess, within: float = 5.0) -> bool:
    """Whether the simulated belt is (or comes to) a standstill, asked at its console."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        state = json.loads(await asyncio.to_thread(sim.console, "state"))
        if state["stopped"]:
            return True
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.1)
