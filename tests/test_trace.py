"""Wire traces: every frame of a run recorded, and the run's machine served back from it.

A CSAFE console over a real pty is traced by ``retrotread run --trace``, the trace is served
by ``retrotread-sim replay`` on a pty of its own, and the same program passes against it
(the Bluetooth side: ``test_trace_ble.py``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from retrotread import trace
from retrotread.cli import main
from retrotread_sim.serve import SimProcess
from tests.serial_support import TWO_SPEEDS, SimFactory, serve, write_program

__all__ = ["serve"]  # the fixture, used by name

CLIENT = "Ana Walker-Example"


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def frames(path: Path, **match: str) -> list[dict[str, Any]]:
    return [
        r
        for r in records(path)
        if r["type"] == "frame" and all(r.get(k) == v for k, v in match.items())
    ]


@pytest.fixture
def replayer(tmp_path: Path) -> Iterator[list[SimProcess]]:
    started: list[SimProcess] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def replay_process(trace_file: Path, started: list[SimProcess]) -> SimProcess:
    process = SimProcess("csafe")
    process.command = [sys.executable, "-m", "retrotread_sim", "replay", str(trace_file)]
    started.append(process)
    process.start()
    return process


def test_a_csafe_run_is_traced_and_replays(
    serve: SimFactory,
    replayer: list[SimProcess],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    program = write_program(tmp_path, TWO_SPEEDS)
    db = str(tmp_path / "records.sqlite3")
    assert main(["clients", "add", CLIENT, "--db", db]) == 0
    sim = serve("csafe")
    traced = tmp_path / "run.trace.jsonl"
    url = f"serial://{sim.address}?protocol=csafe"
    argv = ["run", str(program), "--unattended", "--mute", "--quiet", "--device", url]
    status = main([*argv, "--trace", str(traced), "--client", CLIENT, "--db", db])
    assert status == 0, capsys.readouterr()

    text = traced.read_text(encoding="utf-8")
    assert CLIENT not in text and "Ana" not in text  # the machine's side only, never the client
    header, link, *_ = records(traced)
    assert header["type"] == "header" and header["format"] == "retrotread-trace"
    assert link["type"] == "link" and link["protocol"] == "csafe"
    (machine,) = [r for r in records(traced) if r["type"] == "machine"]
    assert machine["declared"]["speed"]["increment"] == "0.1 mph"
    sent = [f["hex"] for f in frames(traced, dir="out")]
    assert "f1 25 03 1a 00 11 2d f2" in sent  # SetSpeed 2.6 mph in 0.1 mph, as the sim got it
    assert "f1 85 85 f2" in sent  # GoInUse
    assert frames(traced, dir="in")
    times = [r["t"] for r in records(traced) if r["type"] == "frame"]
    assert times == sorted(times)

    replay = replay_process(traced, replayer)
    replay_url = f"serial://{replay.address}?protocol=csafe"
    capsys.readouterr()
    assert main([*argv[:-1], replay_url]) == 0, capsys.readouterr()


def test_no_trace_is_written_without_the_option(
    serve: SimFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(trace.TRACE_ENV, raising=False)
    trace.request(None)
    assert trace.active_trace() is None
    monkeypatch.setenv(trace.TRACE_ENV, str(tmp_path / "env.jsonl"))
    assert trace.active_trace() is not None  # the setting, for every command that connects
