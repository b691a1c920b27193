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
        assert answer == bytes.fromhex("F1 81 81 F2")  # the status byte alone
        floor = (8 + 4) * 10 / 9600  # both ways at 9600 baud, 10 bits a byte
        assert took >= floor
        answer, _ = port.ask("F1 82 85 07 F2")
        assert answer == bytes.fromhex("F1 05 05 F2")
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
    assert records[1]["tx"] == "F1 81 81 F2"
    assert records[2]["state"]["belt"] == "running"
    assert records[-1]["state"]["belt"] == "stopped"


def test_mute_and_corrupt_from_the_console(sim: SimProcess) -> None:
    port = Port(sim.address)
    try:
        sim.console("corrupt 1")
        garbled, _ = port.ask("F1 80 80 F2")
        assert garbled != bytes.fromhex("F1 81 80 01 81 81 F2")
        sim.console("mute")
        with pytest.raises(TimeoutError):
            port.ask("F1 80 80 F2", timeout=0.3)
        sim.console("unmute")
        answer, _ = port.ask("F1 80 80 F2")
        assert answer == bytes.fromhex("F1 81 80 01 81 81 F2")
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
            assert port.ask("F1 80 80 F2")[0] == bytes.fromhex("F1 81 80 01 81 81 F2")
        finally:
            port.close()
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=10)
    assert process.returncode == 0
    assert b"Traceback" not in errors


def test_a_silent_console_neither_hears_nor_answers_then_comes_back(tmp_path: Path) -> None:
    record = tmp_path / "wire.jsonl"
    args = ("--personality", "matrix", "--faults", "silent@0+1.5")
    with SimProcess("csafe", *args, record=record) as sim:
        port = Port(sim.address)
        try:
            with pytest.raises(TimeoutError):
                port.ask("F1 82 85 07 F2", timeout=0.5)  # GoIdle + GoInUse into the silence
            deadline = time.monotonic() + 5
            while True:
                try:
                    answer, _ = port.ask("F1 80 80 F2", timeout=0.3)
                    break
                except TimeoutError:
                    assert time.monotonic() < deadline, "the console never answered again"
            assert answer[1] & 0x0F == 1  # still Ready: nothing it did not hear was done
        finally:
            port.close()
        assert sim.stop() == 0
        events = [r["event"] for r in sim.records()]
    assert "unheard" in events and events[-1] == "closed"


def test_personalities_by_option_and_by_profile(tmp_path: Path) -> None:
    profile = tmp_path / "matrix-csafe.toml"
    profile.write_text('name = "matrix-csafe"\nprotocol = "csafe"\n', encoding="utf-8")
    for args in (("--personality", "matrix"), ("--profile", str(profile))):
        with SimProcess("csafe", *args, record=tmp_path / "wire.jsonl") as sim:
            port = Port(sim.address)
            try:
                assert port.ask("F1 80 80 F2")[0] == bytes.fromhex("F1 81 81 F2")  # bare status
            finally:
                port.close()
    command = [sys.executable, "-m", "retrotread_sim", "serve", "--protocol", "trackmaster"]
    run = subprocess.run([*command, "--personality", "matrix"], capture_output=True, text=True)
    assert run.returncode == 2 and "not a trackmaster console" in run.stderr
    run = subprocess.run([*command, "--profile", str(profile)], capture_output=True, text=True)
    assert run.returncode == 2 and "is for csafe" in run.stderr
