"""``retrotread-sim serve --protocol csafe`` as a separate process, reached through its pty
with plain file I/O (the simulator needs no serial library)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrotread_sim.serve import SimProcess


class Port:
    """The client end of the pty, opened raw."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)

    def ask(self, wire: str, timeout: float = 2.0) -> tuple[bytes, float]:
        began = time.perf_counter()
        os.write(self.fd, bytes.fromhex(wire))
        answer = b""
        while not answer.endswith(b"\xf2"):
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if not ready:
                raise TimeoutError(f"no answer to {wire}")
            answer += os.read(self.fd, 256)
        return answer, time.perf_counter() - began

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimProcess]:
    with SimProcess("csafe", "--line-rate", record=tmp_path / "wire.jsonl") as process:
        yield process


def test_serves_on_a_pty_at_line_rate_and_records_every_frame(sim: SimProcess) -> None:
    assert sim.address.startswith("/dev/")
    port = Port(sim.address)
    try:
        answer, took = port.ask("F1 25 03 1A 00 11 2D F2")
        assert answer == bytes.fromhex("F1 81 25 00 A4 F2")
        floor = (8 + 6) * 10 / 9600  # both ways at 9600 baud, 10 bits a byte
        assert took >= floor
        answer, _ = port.ask("F1 82 85 07 F2")
        assert answer == bytes.fromhex("F1 05 82 00 85 00 02 F2")
        assert sim.console("stop") == "stop"
        answer, _ = port.ask("F1 80 80 F2")
        assert answer[1] & 0x0F == 7  # Finished: stopped at the console
    finally:
        port.close()
    assert sim.stop() == 0
    records = sim.records()
    assert [r["event"] for r in records] == [
        "serving",
        "frame",
        "frame",
        "console",
        "frame",
        "closed",
    ]
    assert records[1]["rx"] == "F1 25 03 1A 00 11 2D F2"
    assert records[1]["tx"] == "F1 81 25 00 A4 F2"
    assert records[2]["state"]["belt"] == "running"
    assert records[-1]["state"]["belt"] == "stopped"


def test_mute_and_corrupt_from_the_console(sim: SimProcess) -> None:
    port = Port(sim.address)
    try:
        sim.console("corrupt 1")
        garbled, _ = port.ask("F1 80 80 F2")
        assert garbled != bytes.fromhex("F1 81 80 00 01 F2")
        sim.console("mute")
        with pytest.raises(TimeoutError):
            port.ask("F1 80 80 F2", timeout=0.3)
        sim.console("unmute")
        answer, _ = port.ask("F1 80 80 F2")
        assert answer == bytes.fromhex("F1 81 80 00 01 F2")
    finally:
        port.close()
    notes = [r["note"] for r in sim.frames()]
    assert notes == ["ok", "muted", "ok"]


def test_console_state_and_mistakes(sim: SimProcess) -> None:
    assert '"belt": "idle"' in sim.console("state")
    with pytest.raises(RuntimeError, match="unknown console command"):
        sim.console("fly")
    with pytest.raises(RuntimeError, match="error speed"):
        sim.console("speed fast")


def test_bad_arguments_are_refused() -> None:
    command = [sys.executable, "-m", "retrotread_sim", "serve", "--protocol", "csafe"]
    run = subprocess.run(
        [*command, "--tcp", "127.0.0.1:0", "--link", "/tmp/x"], capture_output=True, text=True
    )
    assert run.returncode == 2 and "--link is for the pty" in run.stderr
    run = subprocess.run([*command, "--tcp", "nowhere"], capture_output=True, text=True)
    assert run.returncode == 2 and "HOST:PORT" in run.stderr


def test_without_a_console_on_stdin_it_serves_quietly() -> None:
    command = [sys.executable, "-m", "retrotread_sim", "serve", "--protocol", "csafe"]
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        path = process.stdout.readline().decode().strip()
        port = Port(path)
        try:
            assert port.ask("F1 80 80 F2")[0] == bytes.fromhex("F1 81 80 00 01 F2")
        finally:
            port.close()
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=10)
    assert process.returncode == 0
    assert b"Traceback" not in errors
