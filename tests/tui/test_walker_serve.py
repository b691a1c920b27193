"""``retrotread tui --serve --walker`` in a real headless Chromium: the served walker view shows
the big countdown and the cue, counts down once the go is given, and shows a STOP.

textual-serve draws the terminal with xterm.js on a canvas, so the page's text is read from
xterm's own buffer: a script installed before the page loads keeps a handle on the terminal
textual-serve creates (its bundle does not expose it).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from retrotread import cues
from retrotread.events import StopReason
from retrotread.program import find_program
from retrotread.program.model import format_duration
from retrotread.tui.widgets.countdown import SCALES, render_big

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
    "--window-size=1280,800",
]

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):  # make test installs them
    pytest.fail("chromium and chromium-driver are not installed: run `make test` once")

#: Keeps the xterm Terminal that textual-serve's page creates (``this.terminal = new ...``).
KEEP_TERMINAL = """
Object.defineProperty(Object.prototype, 'terminal', {
  configurable: true,
  set(value) {
    Object.defineProperty(this, 'terminal',
      {value, writable: true, configurable: true, enumerable: true});
    if (value && value.buffer) { window.__retrotreadTerminal = value; }
  },
});
"""

READ_SCREEN = """
const term = window.__retrotreadTerminal;
if (!term) { return null; }
const buffer = term.buffer.active;
const rows = [];
for (let y = 0; y < term.rows; y++) {
  const line = buffer.getLine(buffer.viewportY + y);
  rows.push(line ? line.translateToString(true) : '');
}
return rows;
"""

PROGRAM = find_program("first-week")
FIRST = PROGRAM.steps[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def served(log: Path) -> Iterator[str]:
    """``retrotread tui first-week --serve --walker``; yields the address it printed."""
    port = free_port()
    command = [sys.executable, "-m", "retrotread", "tui", "first-week", "--serve", "--walker"]
    with log.open("w") as out:
        server = subprocess.Popen(
            [*command, "--port", str(port), "--mute"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # the consoles it starts for each page go with it
        )
    try:
        deadline = time.monotonic() + 20
        match = None
        while match is None and time.monotonic() < deadline and server.poll() is None:
            match = re.search(r"serving the walker view on (http://\S+)", log.read_text())
            time.sleep(0.1)
        assert match, log.read_text()
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            time.sleep(0.1)
        yield match.group(1)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": KEEP_TERMINAL})
        yield browser
    finally:
        browser.quit()


def screen(browser: webdriver.Chrome) -> list[str]:
    rows: list[str] | None = browser.execute_script(READ_SCREEN)
    return rows or []


def wait_for(
    browser: webdriver.Chrome, condition: Callable[[list[str]], Any], what: str, timeout: float
) -> list[str]:
    deadline = time.monotonic() + timeout
    rows: list[str] = []
    while time.monotonic() < deadline:
        rows = screen(browser)
        if rows and condition(rows):
            return rows
        time.sleep(0.2)
    raise AssertionError(f"not on the page within {timeout} s: {what}\n" + "\n".join(rows))


def countdown_on(rows: list[str], longest_s: int) -> tuple[int, int] | None:
    """The big countdown on the page: (seconds shown, height in rows), read back from the
    block characters the countdown draws; None if no time up to ``longest_s`` is there."""
    for columns, half_rows in reversed(SCALES):
        for seconds in range(longest_s, -1, -1):
            glyph = [
                line.rstrip() for line in render_big(format_duration(seconds), columns, half_rows)
            ]
            for top in range(len(rows) - len(glyph) + 1):
                if all(
                    line.strip() and line.strip() == rows[top + i].strip()
                    for i, line in enumerate(glyph)
                ):
                    return seconds, len(glyph)
    return None


def cue_on(rows: list[str]) -> str:
    return " ".join(
        row.strip()
        for row in rows
        if row.strip() and "█" not in row and "▀" not in row and "▄" not in row
    )


@pytest.mark.realtime
def test_the_served_walker_view_shows_the_countdown_and_the_cue(tmp_path: Path) -> None:
    with served(tmp_path / "serve.log") as address, chromium(tmp_path / "profile") as browser:
        assert address.startswith("http://127.0.0.1:")  # localhost unless told otherwise
        browser.get(address)
        expected_cue = cues.display_cue(FIRST).upper()
        rows = wait_for(browser, lambda r: expected_cue in cue_on(r), "the warm-up's cue", 30)
        shown = countdown_on(rows, FIRST.duration_s)
        assert shown is not None, "\n".join(rows)
        seconds, height = shown
        assert seconds == FIRST.duration_s  # ready: the block's full time, waiting for the go
        assert height >= len(rows) // 3  # very large: a third of the screen or more
        assert "Operator" not in "\n".join(rows) and "STOP (s)" not in "\n".join(rows)

        # The go from the page's keyboard: the countdown runs.
        browser.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea").send_keys(Keys.ENTER)
        rows = wait_for(
            browser,
            lambda r: (c := countdown_on(r, FIRST.duration_s)) is not None and c[0] <= seconds - 2,
            "the countdown running",
            30,
        )
        assert expected_cue in cue_on(rows)

        # STOP from the page: the walker reads what the voice says.
        browser.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea").send_keys("s")
        stop_words = cues.stopped(StopReason.OPERATOR) or ""
        wait_for(browser, lambda r: stop_words in cue_on(r), "the STOP", 30)
