"""Wire traces over Bluetooth: an FTMS run over the simulator's bleak backend is traced (GATT
reads, writes, notifications, indications), served back by ``retrotread_sim.replay`` on an
in-process radio, and the same program passes against it; on the virtual clock.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from retrotread import trace
from retrotread.clock import LoopClock, run
from retrotread.drivers.ftms_ble import FtmsBleDriver
from retrotread.drivers.url import DeviceUrl
from retrotread.program import find_program
from retrotread.session import Outcome, Session, SessionSummary
from retrotread_sim import SimTreadmill
from retrotread_sim.ftms import FtmsServer, Radio, SimPeripheral, personality
from retrotread_sim.replay import ftms_peripheral, pick_link, read_trace
from tests.serial_support import TWO_SPEEDS, write_program


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def frames(path: Path, **match: str) -> list[dict[str, Any]]:
    return [
        r
        for r in records(path)
        if r["type"] == "frame" and all(r.get(k) == v for k, v in match.items())
    ]


async def play_over_ble(peripheral: SimPeripheral, program_file: Path) -> SessionSummary:
    radio = Radio()
    radio.add(peripheral)
    clock = LoopClock()
    driver = FtmsBleDriver.from_url(
        DeviceUrl.parse(f"ble://{peripheral.address}"), clock=clock, routing=radio.routed
    )
    session = Session(find_program(str(program_file)), driver, clock, unattended=True)
    return await session.run()


@pytest.mark.parametrize("kind", ["lenient", "strict", "pause-first"])
def test_an_ftms_run_is_traced_and_replays(kind: str, tmp_path: Path) -> None:
    program = write_program(tmp_path, TWO_SPEEDS)
    traced = tmp_path / "ble.trace.jsonl"

    async def record() -> SessionSummary:
        server = FtmsServer(SimTreadmill(), personality(kind))
        with trace.recording(traced):
            return await play_over_ble(SimPeripheral(server), program)

    summary = run(record(), virtual=True)
    assert summary.outcome is Outcome.COMPLETED and summary.belt_stopped

    (machine,) = [r for r in records(traced) if r["type"] == "machine"]
    declared = machine["declared"]
    assert declared["speed_kmh"] == {"min": 0.8, "max": 19.3, "increment": 0.01}
    assert "speed" in declared["target_settings"]
    assert declared["device_info"]["serial_number"] == "SIM-0001"
    writes = [f["hex"] for f in frames(traced, kind="write", char="2ad9") if "error" not in f]
    assert writes[0] == "00"  # Request Control first
    assert any(w.startswith("02 ") for w in writes) and "07" in writes  # speeds, start
    assert "80 02 01" in [f["hex"] for f in frames(traced, kind="indicate")]
    assert frames(traced, kind="notify", char="2acd")  # Treadmill Data
    assert {f["char"] for f in frames(traced, kind="read")} >= {"2acc", "2ad4", "2ad5"}
    if kind == "strict":  # the first write met an unpaired link, and the driver paired
        assert any("error" in f for f in frames(traced, kind="write"))

    link = pick_link(read_trace(traced))

    async def replay() -> tuple[SessionSummary, list[str]]:
        peripheral = ftms_peripheral(link)
        summary = await play_over_ble(peripheral, program)
        return summary, [w.hex for w in peripheral.server.writes]

    replayed, replay_writes = run(replay(), virtual=True)
    assert replayed.outcome is Outcome.COMPLETED and replayed.belt_stopped
    assert [w for w in replay_writes if w.startswith("02")] == [
        w.upper() for w in writes if w.startswith("02")
    ]  # the same speeds, asked of the machine the trace describes
