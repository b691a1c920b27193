"""The gym floor: N simulated consoles and one floor subscriber on a local Mosquitto.

    python bench/floor.py [--quick]            (or: python bench/run.py --only floor)

Consoles run as sessions on the in-process simulator, on the real clock, spread over a few
worker processes (a floor's consoles are separate machines; here they share this one). The
floor is a :class:`~retrotread.floor.watch.FloorWatcher` (what ``retrotread floor`` reads,
without the screen). Measured, for N = 10, 50, 100:

- telemetry age at the floor: the floor's arrival time minus the time the console's state was
  made (both wall clocks on this machine), over every live state in the window;
- floor STOP -> stop written: from the floor's publish of a signed STOP to the console's
  session emitting the stop command to its treadmill (``CommandIssued(STOP)``);
- broker and console CPU over the window (% of one core).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.core import Row, dist_row  # noqa: E402

WORKERS = 4
SECRET = "bench-floor-secret-0123456789"
AGE_TARGET_MS, STOP_TARGET_MS = 1500.0, 100.0
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


# -- a worker: some consoles --------------------------------------------------------------------


async def consoles(url: str, ids: list[str], secret_file: str, limit_s: float) -> None:
    from retrotread.clock import LoopClock
    from retrotread.drivers.registry import open_treadmill
    from retrotread.events import CommandIssued, Event
    from retrotread.floor.publisher import FloorLink
    from retrotread.options import FloorOptions
    from retrotread.program import builtin_programs
    from retrotread.session import Session
    from retrotread.vocabulary import Command

    clock = LoopClock()
    programs = builtin_programs()
    written: dict[str, float] = {}
    links, tasks = [], []
    for n, console_id in enumerate(ids):
        session = Session(
            programs[n % len(programs)],
            open_treadmill("sim://", clock=clock),
            clock,
            unattended=True,
        )

        def on_event(event: Event, console_id: str = console_id) -> None:
            if isinstance(event, CommandIssued) and event.command is Command.STOP:
                written.setdefault(console_id, time.time())

        session.subscribe(on_event)
        link = FloorLink(
            FloorOptions(
                broker=url, console_id=console_id, secret_file=secret_file, discovery_prefix=""
            ),
            client_name=f"Client {console_id}",
        )
        link.attach(session)
        links.append(link)
        tasks.append(asyncio.create_task(session.run()))
    await asyncio.wait(tasks, timeout=limit_s)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    dropped = sum(link.dropped for link in links)
    await asyncio.gather(*(link.close(1.0) for link in links))
    print(json.dumps({"written": written, "dropped": dropped}), flush=True)


# -- the floor ------------------------------------------------------------------------------------


async def floor_run(n: int, window_s: float) -> dict[str, Any]:
    from retrotread.floor.auth import RemoteCommand, read_secret
    from retrotread.floor.broker import Broker
    from retrotread.floor.watch import FloorWatcher
    from tests.mqtt_support import running_broker

    with tempfile.TemporaryDirectory() as folder, running_broker(Path(folder) / "broker") as broker:
        secret_file = Path(folder) / "secret"
        secret_file.write_text(SECRET)
        ids = [f"tm-{i:03d}" for i in range(n)]
        workers = [
            subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is timed
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    broker.url,
                    str(secret_file),
                    ",".join(ids[w::WORKERS]),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for w in range(min(WORKERS, n))
        ]
        ages: list[float] = []
        measuring = False

        def on_state(console_id: str, state: dict[str, Any], arrived: float) -> None:
            if measuring:
                ages.append(arrived - float(state["t"]))

        watcher = FloorWatcher(
            Broker.from_url(broker.url),
            sender="bench",
            secret=read_secret(secret_file),
            on_state=on_state,
        )
        watch = asyncio.create_task(watcher.run())
        try:
            deadline = time.monotonic() + 60
            while sum(1 for t in watcher.tiles.values() if t.heard_at) < n:
                if time.monotonic() > deadline:
                    raise RuntimeError("not every console reached the floor")
                await asyncio.sleep(0.1)
            assert broker.process is not None
            pids = {"broker": [broker.process.pid], "consoles": [w.pid for w in workers]}
            before = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
            measuring, started = True, time.monotonic()
            await asyncio.sleep(window_s)
            measuring = False
            spent = time.monotonic() - started
            cpu = {k: (sum(cpu_seconds(p) for p in v) - before[k]) / spent for k, v in pids.items()}
            sent: dict[str, float] = {}
            for console_id in ids:  # one STOP each, 20 ms apart (a person's pace is slower)
                sent[console_id] = time.time()
                await watcher.send(console_id, RemoteCommand.STOP)
                await asyncio.sleep(0.02)
            written: dict[str, float] = {}
            dropped = 0
            for worker in workers:
                out, _ = await asyncio.to_thread(worker.communicate, timeout=120)
                result = json.loads(out.strip().splitlines()[-1])
                written.update(result["written"])
                dropped += result["dropped"]
        finally:
            watch.cancel()
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
        stops = [written[c] - sent[c] for c in ids if c in written]
        return {
            "ages": ages,
            "stops": stops,
            "missing": n - len(stops),
            "cpu": cpu,
            "dropped": dropped,
        }


def measure(quick: bool) -> list[Row]:
    rows: list[Row] = []
    for n in (10, 50) if quick else (10, 50, 100):
        result = asyncio.run(floor_run(n, 5.0 if quick else 10.0))
        target = n == 50
        rows.append(
            dist_row(
                f"{n} consoles: telemetry age at the floor",
                result["ages"],
                AGE_TARGET_MS if target else None,
            )
        )
        rows.append(
            dist_row(
                f"{n} consoles: floor STOP -> stop written",
                result["stops"],
                STOP_TARGET_MS if target else None,
            )
        )
        cpu = result["cpu"]
        rows.append(
            Row(
                f"{n} consoles: CPU, % of one core",
                f"broker {cpu['broker'] * 100:.1f}, consoles {cpu['consoles'] * 100:.0f} "
                f"({cpu['consoles'] * 100 / n:.2f} each); lost {result['dropped']} messages, "
                f"{result['missing']} stops unseen",
            )
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", nargs=3, metavar=("URL", "SECRET", "IDS"))
    args = parser.parse_args()
    if args.worker:
        url, secret_file, ids = args.worker
        asyncio.run(consoles(url, ids.split(","), secret_file, limit_s=180))
        return 0
    for row in measure(args.quick):
        print(f"{row.metric:<45} {row.value}  {row.target} {row.verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
