"""The real ``retrotread`` console in a pseudo-terminal: keys in, the simulator's journal out.

These run the installed command on the real clock, the way an operator (or SSH) does, with
``TERM=linux`` for the plain Linux console. What the simulated machine received is read from
its journal (``sim://?record=PATH``).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest


class Terminal:
    def __init__(
        self,
        args: list[str],
        term: str = "xterm-256color",
        size: tuple[int, int] = (80, 24),
        controlling: bool = False,
    ) -> None:
        env = dict(os.environ, TERM=term)
        env.pop("NO_COLOR", None)
        self.fd, child = pty.openpty()
        fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "retrotread", *args],
            stdin=child,
            stdout=child,
            stderr=child,
            env=env,
            start_new_session=True,
            # As a shell or sshd starts it: the pty is its controlling terminal, so closing the
            # terminal sends it SIGHUP.
            preexec_fn=(lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0)) if controlling else None,
        )
        os.close(child)
        self.pid = self.process.pid
        self.output = bytearray()
        self.status: int | None = None

    def read_until(self, marker: bytes, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.output:
            left = deadline - time.monotonic()
            assert left > 0, f"{marker!r} never shown; last output: {bytes(self.output[-400:])!r}"
            self._read(min(left, 0.2))

    def _read(self, wait_s: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], wait_s)
        if ready:
            try:
                self.output += os.read(self.fd, 65536)
            except OSError:
                time.sleep(wait_s)

    def press(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def wait_exit(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read(0.1)
            status = self.process.poll()
            if status is not None:
                self.status = status
                return status
        raise AssertionError(
            f"the console did not exit; last output: {bytes(self.output[-400:])!r}"
        )

    def hang_up(self) -> None:
        """Close the terminal, as a closed window or a dropped SSH session does."""
        os.close(self.fd)
        self.fd = -1

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.fd >= 0:
            os.close(self.fd)


@pytest.fixture
def terminals() -> Any:
    opened: list[Terminal] = []

    def open_terminal(
        *args: str, term: str = "xterm-256color", controlling: bool = False
    ) -> Terminal:
        terminal = Terminal(list(args), term, controlling=controlling)
        opened.append(terminal)
        return terminal

    yield open_terminal
    for terminal in opened:
        terminal.close()


def journal(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def link_commands(entries: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in entries if e["event"] == "command" and e["source"] == "link"]


def play_until_moving(
    terminals: Any, record: Path, term: str = "xterm-256color", controlling: bool = False
) -> Terminal:
    console = terminals(
        "tui",
        "first-week",
        "--mute",
        "--device",
        f"sim://?record={record}",
        term=term,
        controlling=controlling,
    )
    console.read_until(b"press enter")
    console.press(b"\r")
    console.read_until(b"running")
    deadline = time.monotonic() + 10
    while "start" not in link_commands(journal(record)):
        assert time.monotonic() < deadline, "the belt never started"
        console._read(0.1)
    return console


def test_retrotread_alone_opens_the_console_in_a_linux_terminal(terminals: Any) -> None:
    console = terminals(term="linux")
    console.read_until(b"operator console")
    console.press(b"q")
    assert console.wait_exit() == 0


def test_stop_key_in_a_terminal_stops_the_belt(terminals: Any, tmp_path: Path) -> None:
    record = tmp_path / "belt.jsonl"
    console = play_until_moving(terminals, record, term="linux")
    console.press(b"s")
    console.read_until(b"Session over")
    entries = journal(record)
    commands = link_commands(entries)
    assert commands.index("stop") > commands.index("start")
    assert entries[-1]["event"] == "closed"
    assert entries[-1]["stopped"] is True  # halted and reading zero, as the session saw it
    console.press(b"q")
    assert console.wait_exit() == 0


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT], ids=["TERM", "HUP", "QUIT"]
)
def test_a_signal_stops_the_belt_before_the_console_exits(
    terminals: Any, tmp_path: Path, signum: signal.Signals
) -> None:
    record = tmp_path / "belt.jsonl"
    console = play_until_moving(terminals, record)
    os.kill(console.pid, signum)
    assert console.wait_exit() == 0
    entries = journal(record)
    assert "stop" in link_commands(entries)
    assert entries[-1]["event"] == "closed"
    assert entries[-1]["stopped"] is True  # halted and reading zero, as the session saw it


@pytest.mark.parametrize("key", [b"q", b"\x03"], ids=["q", "ctrl-c"])
def test_quit_keys_stop_the_belt_before_the_console_exits(
    terminals: Any, tmp_path: Path, key: bytes
) -> None:
    record = tmp_path / "belt.jsonl"
    console = play_until_moving(terminals, record)
    console.press(key)
    assert console.wait_exit() == 0
    entries = journal(record)
    assert "stop" in link_commands(entries)
    assert entries[-1]["event"] == "closed"
    assert entries[-1]["stopped"] is True  # halted and reading zero, as the session saw it


def test_closing_the_terminal_stops_the_belt(terminals: Any, tmp_path: Path) -> None:
    """Issue 13, finding 11: a closed terminal or SSH session (the kernel's SIGHUP)."""
    record = tmp_path / "belt.jsonl"
    console = play_until_moving(terminals, record, controlling=True)
    console.hang_up()
    deadline = time.monotonic() + 20
    while console.process.poll() is None:
        assert time.monotonic() < deadline, "the console did not exit after its terminal closed"
        time.sleep(0.05)
    entries = journal(record)
    commands = link_commands(entries)
    assert commands.index("stop") > commands.index("start")
    assert entries[-1]["event"] == "closed"
    assert entries[-1]["stopped"] is True
