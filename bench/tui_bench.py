"""The operator console: STOP latency, idle cost while a program runs, start-up time.

    python bench/tui_bench.py [--quick]

* **STOP key -> stop written**: in process, on the real clock. The key enters Textual where a
  terminal's keys do (the driver's ``send_message``), goes through the bindings, the session and
  the sim driver, and the clock stops when the simulated machine's ``stop`` runs. Each sample
  is a fresh session: start screen -> go -> belt running -> STOP.
* **Idle CPU and RSS**: the real console (``retrotread tui``) in a pseudo-terminal (80x24),
  playing a program on the simulator with nobody touching it; CPU from /proc over a window.
* **Start-up to first frame**: spawn ``retrotread`` (no arguments: the start screen) in a
  pseudo-terminal until the screen's title has been drawn; and ``retrotread tui PROGRAM`` until
  the run screen says it is ready.

Measured, never asserted; ``bench/run.py`` prints these rows with the others.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import pty
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from textual import events

from bench.core import Row, dist_row
from retrotread.drivers.sim import SimDriver
from retrotread.program import find_program
from retrotread.scheduler import EngineState
from retrotread.session import Belt
from retrotread.tui.app import ConsoleApp
from retrotread.tui.screens.run import RunScreen
from retrotread.tui.screens.summary import SummaryScreen

#: Fast belt physics so each STOP sample ends in a blink (the path to stop is the same).
FAST_SIM = "sim://?accel=50&decel=50"
TERMINAL = (80, 24)


# -- STOP key -> stop written --------------------------------------------------------------------


async def _wait(condition: Callable[[], bool], what: str, limit_s: float = 10.0) -> None:
    deadline = time.perf_counter() + limit_s
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"waiting for {what}")
        await asyncio.sleep(0.005)


async def _stop_latencies(samples: int) -> list[float]:
    program = find_program("first-week")
    app = ConsoleApp(
        program=program, device=FAST_SIM, go_straight_to_run=True, muted=True, scanner=None
    )
    latencies: list[float] = []
    async with app.run_test(size=TERMINAL) as pilot:
        for sample in range(samples):
            if sample:
                app.start_session(program, FAST_SIM)
            await _wait(
                lambda: isinstance(app.screen, RunScreen) and app.screen.waiting_for_go, "ready"
            )
            await pilot.press("enter")
            session = app.session
            assert session is not None
            await _wait(
                lambda s=session: (
                    s.scheduler.state is EngineState.RUNNING  # type: ignore[misc]
                    and s.applied.belt is Belt.RUNNING
                ),
                "the belt running",
            )
            driver = session.treadmill
            assert isinstance(driver, SimDriver)
            assert driver.machine is not None
            machine = driver.machine
            written: list[float] = []
            real_stop = machine.stop

            def timed_stop(
                real: Callable[[], None] = real_stop, out: list[float] = written
            ) -> None:
                out.append(time.perf_counter())
                real()

            machine.stop = timed_stop  # type: ignore[method-assign]
            assert app._driver is not None
            key = events.Key("s", "s")
            key.set_sender(app)
            pressed = time.perf_counter()
            app._driver.send_message(key)
            await _wait(lambda out=written: bool(out), "stop written")  # type: ignore[misc]
            latencies.append(written[0] - pressed)
            await _wait(lambda: isinstance(app.screen, SummaryScreen), "the summary")
    return latencies


# -- the console in a pseudo-terminal ------------------------------------------------------------


class Console:
    """``retrotread ARGS`` on a pty of 80x24, its output drained and kept."""

    def __init__(self, args: list[str], data_dir: str) -> None:
        env = dict(os.environ, RETROTREAD_DATA_DIR=data_dir, RETROTREAD_LOG_DIR=data_dir)
        env.update(TERM="xterm-256color", COLUMNS=str(TERMINAL[0]), LINES=str(TERMINAL[1]))
        self.fd, child = pty.openpty()
        size = struct.pack("HHHH", TERMINAL[1], TERMINAL[0], 0, 0)
        fcntl.ioctl(child, termios.TIOCSWINSZ, size)
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "retrotread", *args],
            stdin=child,
            stdout=child,
            stderr=child,
            env=env,
            start_new_session=True,
        )
        os.close(child)
        self.pid = self.process.pid
        self.output = bytearray()

    def read_until(self, marker: bytes, timeout: float = 30.0) -> float:
        """Seconds since spawn when ``marker`` first appeared in the output."""
        deadline = time.perf_counter() + timeout
        while marker not in self.output:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(
                    f"{marker!r} not seen; output tail: {bytes(self.output[-300:])!r}"
                )
            self._read(left)
        return time.perf_counter() - self.started

    def drain(self, seconds: float) -> None:
        end = time.perf_counter() + seconds
        while (left := end - time.perf_counter()) > 0:
            if not self._read(left):
                return

    def _read(self, wait_s: float) -> bool:
        """Read what is there (waiting up to ``wait_s``); False once the console has gone."""
        ready, _, _ = select.select([self.fd], [], [], wait_s)
        if ready:
            try:
                self.output += os.read(self.fd, 65536)
            except OSError:
                return False
        return True

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def close(self) -> None:
        with_timeout = time.perf_counter() + 10
        self.write(b"q")  # quit: the console stops the belt first
        while time.perf_counter() < with_timeout:
            self.drain(0.1)
            if self.process.poll() is not None:
                break
        else:
            self.process.kill()
            self.process.wait()
        os.close(self.fd)


def _startup(runs: int, data_dir: str) -> tuple[list[float], list[float]]:
    start_screen: list[float] = []
    run_screen: list[float] = []
    for _ in range(runs):
        console = Console([], data_dir)
        try:
            start_screen.append(console.read_until(b"operator console"))
        finally:
            console.close()
        console = Console(["tui", "first-week", "--mute"], data_dir)
        try:
            run_screen.append(console.read_until(b"press enter"))
        finally:
            console.close()
    return start_screen, run_screen


def _idle(window_s: float, data_dir: str) -> tuple[float, float, float]:
    """CPU % and RSS (MiB) of a console playing a program untouched, and bytes/s it draws."""
    console = Console(["tui", "first-week", "--mute"], data_dir)
    try:
        console.read_until(b"press enter")
        console.write(b"\r")  # the go
        console.read_until(b"running")
        console.drain(2.0)  # settle: the belt ramps up, telemetry flows
        cpu_before, drawn_before = console.cpu_seconds(), len(console.output)
        began = time.perf_counter()
        console.drain(window_s)
        elapsed = time.perf_counter() - began
        cpu = (console.cpu_seconds() - cpu_before) / elapsed * 100
        return cpu, console.rss_mib(), (len(console.output) - drawn_before) / elapsed
    finally:
        console.close()


# -- the table -----------------------------------------------------------------------------------


def measure(quick: bool = False) -> list[Row]:
    samples = 30 if quick else 100
    latencies = asyncio.run(_stop_latencies(samples))
    rows = [dist_row("console: STOP key -> stop written to the machine", latencies, 50)]
    with tempfile.TemporaryDirectory(prefix="retrotread-bench-") as data_dir:
        cpu, rss, drawn = _idle(10.0 if quick else 30.0, data_dir)
        rows.append(
            Row(
                "console: idle CPU while a program plays (80x24 pty)",
                f"{cpu:.1f} % of one core; {drawn / 1024:.1f} KiB/s drawn",
                "<= 3 % of a core",
                "ok" if cpu <= 3 else "MISSED",
            )
        )
        rows.append(
            Row(
                "console: RSS while a program plays",
                f"{rss:.0f} MiB",
                "<= 120 MB",
                "ok" if rss * 1.048576 <= 120 else "MISSED",
            )
        )
        start_screen, run_screen = _startup(2 if quick else 5, data_dir)
        for label, times in (
            ("console: start-up to first frame (`retrotread`, start screen)", start_screen),
            ("console: start-up to ready (`retrotread tui first-week`)", run_screen),
        ):
            rows.append(
                Row(
                    label,
                    f"median {statistics.median(times):.3f} s / max {max(times):.3f} s "
                    f"(n={len(times)})",
                    "<= 1.5 s",
                    "ok" if max(times) <= 1.5 else "MISSED",
                )
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, shorter windows")
    args = parser.parse_args()
    for row in measure(args.quick):
        print(f"{row.metric:<64} {row.value:<48} {row.target:<12} {row.verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
