"""The operator console in a real terminal: STOP and +/- latency during a recorded session on
a busy records file, CPU while a program plays (a built-in and a 10,000-block one), memory,
start-up.

    python bench/tui_bench.py [--quick]

Everything runs ``retrotread`` itself in a pseudo-terminal (80x24), the way an operator meets
it, on the simulator (``sim://?record=FILE``: the simulated machine writes each command it
receives, with the time on the system's monotonic clock, to a journal).

* **STOP key -> stop written**: the key is written to the pty; the time is the journal's stop
  minus the moment of the write. Each sample is a fresh recorded session in one records file
  (``--db``) while another process keeps writing to that file: its transactions take the write
  lock, and its pages fill the WAL, so the console's own commits keep checkpointing it. Before
  issue 13's finding 14 these writes ran on the event loop and a lock or a checkpoint delayed
  STOP; the row says how much the console wrote to the file (checkpoints) meanwhile.
* **+/- key -> set-speed written**: the same, many times in one long recorded session.
* **CPU**: the console playing a program untouched; CPU time from /proc over a window.
* **Start-up**: spawn ``retrotread`` until the start screen is drawn; ``retrotread tui
  first-week`` until the run screen is ready.

Measured and judged against targets by ``bench/run.py``, never asserted.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import select
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.core import Row, dist_row, verdict
from bench.scaling import program_text
from retrotread.store import Store

TERMINAL = (80, 24)
#: Fast belt physics so the belt is at speed at once (the path to a command is the same).
FAST = "accel=50&decel=50"


# -- the console in a pseudo-terminal -------------------------------------------------------------


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

    def io_written(self) -> int:
        """Bytes this process has written to files so far (its checkpoints among them)."""
        for line in Path(f"/proc/{self.pid}/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
        return 0


def journal_commands(journal: Path, name: str) -> list[float]:
    """Monotonic times of the link commands ``name`` the simulated machine received."""
    if not journal.exists():
        return []
    times = []
    for line in journal.read_text().splitlines():
        if f'"{name}"' in line and line.endswith("}"):
            entry = json.loads(line)
            if entry.get("name") == name and entry.get("source") == "link":
                times.append(float(entry["time"]))
    return times


def await_command(
    journal: Path, name: str, seen: int, console: Console, limit_s: float = 10
) -> float:
    """The time of the ``seen``-th (0-based) ``name`` command, once the journal has it."""
    deadline = time.monotonic() + limit_s
    while True:
        times = journal_commands(journal, name)
        if len(times) > seen:
            return times[seen]
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {name} reached the simulator")
        console.drain(0.002)


# -- a busy records file --------------------------------------------------------------------------

BUSY_WRITER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
db.execute("PRAGMA wal_autocheckpoint=0")  # leave the checkpoints to the console
db.execute("CREATE TABLE IF NOT EXISTS bench_busy (payload BLOB)")
page = bytes(4000)
print("writing", flush=True)
while True:
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT INTO bench_busy VALUES (?)", [(page,)] * 100)
    db.execute("COMMIT")
    db.execute("DELETE FROM bench_busy")
    time.sleep(0.05)
"""


class BusyRecords:
    """Another process writing to the records file: ~100 pages per transaction, 20 a second."""

    def __init__(self, path: Path) -> None:
        Store.open(path).close()  # the schema first
        self.process = subprocess.Popen(
            [sys.executable, "-c", BUSY_WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.process.stdout.readline()

    def close(self) -> None:
        self.process.terminate()
        self.process.wait()


# -- STOP and +/- through the terminal ------------------------------------------------------------


def _recorded_console(folder: Path, db: Path, journal: Path, program: str) -> Console:
    device = f"sim://?{FAST}&record={journal}"
    return Console(["tui", program, "--mute", "--db", str(db), "--device", device], str(folder))


def _stop_latencies(samples: int, folder: Path) -> tuple[list[float], float, int]:
    """STOP, one fresh recorded session each; (latencies, MB the consoles wrote, sessions)."""
    db = folder / "records.sqlite3"
    journal = folder / "stop.jsonl"
    busy = BusyRecords(db)
    latencies: list[float] = []
    written = 0
    try:
        for _ in range(samples):
            console = _recorded_console(folder, db, journal, "first-week")
            try:
                console.read_until(b"press enter")
                console.write(b"\r")
                console.read_until(b"running")
                console.drain(1.5)  # samples are being recorded
                seen = len(journal_commands(journal, "stop"))
                pressed = time.monotonic()
                console.write(b"s")
                latencies.append(await_command(journal, "stop", seen, console) - pressed)
                console.drain(0.3)
                written += console.io_written()
            finally:
                console.close()
    finally:
        busy.close()
    with sqlite3.connect(db) as check:
        sessions = check.execute("SELECT count(*) FROM sessions").fetchone()[0]
    return latencies, written / 1e6, int(sessions)


def _nudge_latencies(samples: int, folder: Path) -> tuple[list[float], float, float]:
    """+ and - in turn in one recorded session; (latencies, MB written, seconds it ran)."""
    db = folder / "nudge.sqlite3"
    journal = folder / "nudge.jsonl"
    busy = BusyRecords(db)
    latencies: list[float] = []
    console = _recorded_console(folder, db, journal, "first-week")
    try:
        console.read_until(b"press enter")
        console.write(b"\r")
        console.read_until(b"running")
        console.drain(1.0)
        began = time.monotonic()
        for n in range(samples):
            seen = len(journal_commands(journal, "set-speed"))
            pressed = time.monotonic()
            console.write(b"+" if n % 2 == 0 else b"-")
            latencies.append(await_command(journal, "set-speed", seen, console) - pressed)
            console.drain(0.05)
        ran = time.monotonic() - began
        written = console.io_written() / 1e6
    finally:
        console.close()
        busy.close()
    return latencies, written, ran


# -- CPU and start-up -----------------------------------------------------------------------------


def _idle(window_s: float, data_dir: str, program: str) -> tuple[float, float, float]:
    """CPU % and RSS (MiB) of a console playing a program untouched, and bytes/s it draws."""
    console = Console(["tui", program, "--mute"], data_dir)
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


def _long_program(folder: Path) -> Path:
    path = folder / "ten-thousand.toml"
    path.write_text(program_text(10_000))
    return path


# -- the table ------------------------------------------------------------------------------------


def measure(quick: bool = False) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="retrotread-bench-") as name:
        folder = Path(name)
        stops, written, sessions = _stop_latencies(10 if quick else 30, folder)
        row = dist_row(
            "console: STOP key -> stop written, through a pty, recorded session, busy records",
            stops,
            50,
        )
        rows.append(
            Row(
                row.metric,
                f"{row.value}; {sessions} sessions recorded, the consoles wrote "
                f"{written:.0f} MB to the file (WAL checkpoints) meanwhile",
                row.target,
                row.verdict,
            )
        )
        nudges, nudged_mb, ran = _nudge_latencies(30 if quick else 150, folder)
        row = dist_row(
            "console: +/- key -> set-speed written, through a pty, same busy records",
            nudges,
            50,
        )
        rows.append(
            Row(
                row.metric,
                f"{row.value}; in {ran:.0f} s the console wrote {nudged_mb:.0f} MB to the file "
                "(WAL checkpoints)",
                row.target,
                row.verdict,
            )
        )
        window = 10.0 if quick else 30.0
        for label, program in (
            ("first-week", "first-week"),
            ("a 10,000-block program", str(_long_program(folder))),
        ):
            cpu, rss, drawn = _idle(window, str(folder), program)
            rows.append(
                Row(
                    f"console: CPU while {label} plays untouched (80x24 pty, {window:.0f} s)",
                    f"{cpu:.1f} % of one core; {drawn / 1024:.1f} KiB/s drawn; RSS {rss:.0f} MiB",
                    "<= 3 % of a core; RSS <= 120 MiB",
                    verdict(cpu <= 3 and rss <= 120 / 1.048576),
                )
            )
        start_screen, run_screen = _startup(2 if quick else 5, str(folder))
        for label, times in (
            ("console: start-up to first frame (`retrotread`, start screen)", start_screen),
            ("console: start-up to ready (`retrotread tui first-week`)", run_screen),
        ):
            rows.append(
                Row(
                    label,
                    f"median {statistics.median(times):.3f} s / max {max(times):.3f} s "
                    f"(n={len(times)})",
                    "max <= 1.5 s",
                    verdict(max(times) <= 1.5),
                )
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, shorter windows")
    args = parser.parse_args()
    for row in measure(args.quick):
        target = f"  [{row.target}: {row.verdict}]" if row.target else ""
        print(f"{row.metric}: {row.value}{target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
