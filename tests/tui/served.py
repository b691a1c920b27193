"""Helpers for the served console's tests: a real ``retrotread tui PROGRAM --serve`` process
(bound to port 0, its own journal and folders, stopped by the fixture), raw websocket clients,
headless Chromium, and what the simulator's journal and /proc say.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: A short program: a warm-up long enough to act in, a turn-around, a light-touch retro block.
PROGRAM = """\
name = "served"
description = "a short program for the served console's tests"
[[blocks]]
kind = "warm-up"
duration = "30s"
speed = 2.5
[[blocks]]
kind = "turn-around"
[[blocks]]
kind = "retro"
duration = "10s"
speed = 3.0
handrail = "light-touch"
"""

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--window-size=1280,800",
]


@dataclass
class Served:
    """One serving process and what it printed."""

    process: subprocess.Popen[bytes]
    log: Path
    journal: Path
    operator_url: str = ""
    walker_url: str = ""
    base: str = ""
    token: str = ""
    exit_status: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def ws_base(self) -> str:
        return self.base.replace("http", "ws", 1)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def entries(self) -> list[dict[str, Any]]:
        if not self.journal.exists():
            return []
        return [json.loads(line) for line in self.journal.read_text().splitlines() if line]

    def link_commands(self) -> list[str]:
        return [
            e["name"] for e in self.entries() if e["event"] == "command" and e["source"] == "link"
        ]

    def wait_for_output(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output())
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} never printed:\n{self.output()}")

    def wait_for_journal(
        self, condition: Callable[[list[dict[str, Any]]], bool], what: str, timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        entries: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            entries = self.entries()
            if condition(entries):
                return entries
            time.sleep(0.05)
        raise AssertionError(f"not in the journal within {timeout} s: {what}\n{entries[-5:]}")

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait_exit(self, timeout: float = 30.0) -> int:
        self.exit_status = self.process.wait(timeout=timeout)
        return self.exit_status

    def close(self) -> None:
        """SIGTERM (the belt stops first), then SIGKILL to the whole group if it hangs."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # anything it left behind in its group


def start_served(tmp_path: Path, *args: str, program: str = PROGRAM, parse: bool = True) -> Served:
    program_file = tmp_path / "served.toml"
    program_file.write_text(program)
    journal = tmp_path / "belt.jsonl"
    log = tmp_path / "serve.log"
    command = [
        sys.executable,
        "-m",
        "retrotread",
        "tui",
        str(program_file),
        "--serve",
        "--port",
        "0",
        "--mute",
        "--device",
        f"sim://?record={journal}",
        *args,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # its own group: a test can check nothing is left in it
        )
    served = Served(process, log, journal)
    if not parse:
        return served  # the caller reads what it printed
    found = served.wait_for_output(r"operator \(controls the belt[^:]*: (\S+)")
    served.operator_url = found.group(1)
    served.base, _, fragment = served.operator_url.partition("/#")
    served.token = fragment.removeprefix("token=")
    served.walker_url = served.wait_for_output(r"walker view \(read-only[^:]*:\s+(\S+)").group(1)
    return served


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(
        *args: str, program: str = PROGRAM, folder: Path | None = None, parse: bool = True
    ) -> Served:
        where = folder or tmp_path
        where.mkdir(parents=True, exist_ok=True)
        served = start_served(where, *args, program=program, parse=parse)
        started.append(served)
        return served

    try:
        yield start
    finally:
        for served in started:
            served.close()


# -- /proc ---------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def children(pid: int) -> list[int]:
    """Every live process whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# -- the browser ---------------------------------------------------------------------------------


def require_browser() -> None:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):  # make test installs them
        pytest.fail("chromium and chromium-driver are not installed: run `make test` once")


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield browser
    finally:
        browser.quit()


def wait_until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what} (last: {last!r})")


def text_of(browser: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    text: str = browser.find_element(By.ID, element_id).text
    return text


def seconds_shown(text: str) -> int:
    minutes, _, secs = text.partition(":")
    return int(minutes) * 60 + int(secs)
