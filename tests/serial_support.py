"""Shared by the serial tests: the simulator as a child process, and collecting reports."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from retrotread.drivers.base import MachineEvent, MachineEventKind, Report, Telemetry, Treadmill
from retrotread.profiles import Profile, get_profile
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
        if frame["commands"] != POLL_COMMANDS and frame["commands"] not in (["A5"], ["A6"])
    ]


def profile(name: str, *, quirks: dict[str, Any] | None = None, **confirm: float) -> Profile:
    base = get_profile(name)
    if quirks:
        base = base.with_quirks(**quirks)
    return replace(base, confirm=replace(base.confirm, **confirm)) if confirm else base


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
