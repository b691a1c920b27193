"""STOP and signals at random moments over a real serial line: the belt always ends stopped.

    python bench/stop_trials.py [--trials N] [--concurrency K] [--seed S]

Serial I/O to another process runs on the real clock, so these trials do not fit the test
suite (which runs a few of them: ``tests/test_stop_trials_serial.py``); this runs hundreds.
Each trial starts ``retrotread-sim serve`` on a pty as a console of a random personality (CSAFE
Matrix or Concept2, Trackmaster with status queries), with a random fault around the moment of
the stop (none, a console that goes silent for up to 10 s, answers 0.6 s late, a speed change
never answered, the port unplugged for 3 s), and ends the session in a random way at a random
moment in its first 8 s:

* ``stop``, ``int``, ``term``, ``hup``: a session in this process driving the console, ended
  by the operator's STOP or the stop reason of that signal; every command the driver puts on
  the wire is watched (never two at once, never two stops at once);
* ``SIGINT``, ``SIGTERM``, ``SIGHUP``, ``SIGQUIT``, ``SIGINT x2``: ``retrotread run
  --unattended`` in its own process, sent that signal (twice, 50 ms apart, for the last).

A trial passes when the simulated belt is stopped when the session lets go of it (for a
process: when the simulator stops, after the process exited), nothing was written into a
pending command, and no two stops were on the wire at once. Exit status 0 only if all pass.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from retrotread.clock import LoopClock  # noqa: E402
from retrotread.drivers.base import Treadmill  # noqa: E402
from retrotread.drivers.registry import open_treadmill  # noqa: E402
from retrotread.events import StopReason  # noqa: E402
from retrotread.session import Session  # noqa: E402
from retrotread_sim.serve import SimProcess  # noqa: E402

PROGRAM = """\
name = "stop-trial"
description = "a warm-up and a retro block, long enough for any stop moment"
[[blocks]]
kind = "warm-up"
duration = "5s"
speed = 2.5
[[blocks]]
kind = "turn-around"
[[blocks]]
kind = "retro"
duration = "20s"
speed = 2.8
"""

#: console -> (protocol, personality, device URL options)
CONSOLES = {
    "csafe-matrix": ("csafe", "matrix", "protocol=csafe"),
    "csafe-concept2": ("csafe", "concept2", "protocol=csafe"),
    "trackmaster-query": (
        "trackmaster",
        "trackmaster-query",
        "protocol=trackmaster&profile=trackmaster-query",
    ),
}
FAULTS = ["", "silent@{at}+{long}", "late:any=0.6@{at}", "ignore:set-speed@{at}", "drop@{at}+3"]
IN_PROCESS = {
    "stop": StopReason.OPERATOR,
    "int": StopReason.SIGNAL_INT,
    "term": StopReason.SIGNAL_TERM,
    "hup": StopReason.SIGNAL_HUP,
}
PROCESS = {
    "SIGINT": (signal.SIGINT,),
    "SIGTERM": (signal.SIGTERM,),
    "SIGHUP": (signal.SIGHUP,),
    "SIGQUIT": (signal.SIGQUIT,),
    "SIGINT x2": (signal.SIGINT, signal.SIGINT),
}
HOLD_LIMIT_S = 15.0  # a console silent for good is stopped at for this long


@dataclass
class Trial:
    number: int
    console: str
    fault: str
    way_out: str
    stop_at: float
    passed: bool = False
    why: str = ""
    events: list[str] = field(default_factory=list)


@dataclass
class Watch:
    on_wire: int = 0
    most_on_wire: int = 0
    stops: int = 0
    most_stops: int = 0
    names: list[str] = field(default_factory=list)

    def wrap(self, treadmill: Treadmill) -> None:
        """Count what overlaps on the wire, at the driver's own ``_do_...`` methods."""
        for name in ("_do_start", "_do_stop", "_do_pause", "_do_set_speed", "_do_set_incline"):
            original: Callable[..., Awaitable[None]] = getattr(treadmill, name)

            async def watched(
                *args: object,
                _name: str = name,
                _original: Callable[..., Awaitable[None]] = original,
            ) -> None:
                self.on_wire += 1
                self.most_on_wire = max(self.most_on_wire, self.on_wire)
                is_stop = _name == "_do_stop"
                self.stops += is_stop
                self.most_stops = max(self.most_stops, self.stops)
                self.names.append(_name)
                try:
                    await _original(*args)
                finally:
                    self.on_wire -= 1
                    self.stops -= is_stop

            setattr(treadmill, name, watched)


def final_state(journal: Path) -> dict[str, object] | None:
    closed = [
        json.loads(line) for line in journal.read_text().splitlines() if '"event": "closed"' in line
    ]
    return closed[-1]["state"] if closed else None


async def in_process(trial: Trial, url: str, program: Path) -> str:
    from retrotread.program import find_program

    clock = LoopClock()
    driver = open_treadmill(url, clock=clock)
    watch = Watch()
    watch.wrap(driver)
    session = Session(
        find_program(str(program)), driver, clock, unattended=True, hold_limit_s=HOLD_LIMIT_S
    )
    trial.events = []
    session.subscribe(
        lambda e: (
            trial.events.append(f"{clock.now() - started:.2f} {e}")
            if type(e).__name__ not in ("Tick", "TelemetryReceived", "Countdown", "CueDue")
            else None
        )
    )
    started = clock.now()
    playing = asyncio.create_task(session.run())
    await asyncio.sleep(trial.stop_at)
    session.stop(IN_PROCESS[trial.way_out])
    await asyncio.wait_for(playing, timeout=HOLD_LIMIT_S * 3 + 30)
    if watch.most_on_wire > 1:
        return f"{watch.most_on_wire} commands on the wire at once: {watch.names}"
    if watch.most_stops > 1:
        return "two stops on the wire at once"
    return ""


async def in_a_process(trial: Trial, url: str, program: Path, folder: Path) -> str:
    env = {**os.environ, "RETROTREAD_DATA_DIR": str(folder / "data")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "retrotread",
        "run",
        str(program),
        "--unattended",
        "--mute",
        "--quiet",
        "--device",
        url,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    await asyncio.sleep(trial.stop_at)
    for number, signum in enumerate(PROCESS[trial.way_out]):
        if number:
            await asyncio.sleep(0.05)
        if process.returncode is None:
            process.send_signal(signum)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=HOLD_LIMIT_S * 3 + 330)
    except TimeoutError:
        process.kill()
        await process.wait()
        return "the process did not exit"
    if b"Traceback" in output:
        return "a traceback: " + output.decode(errors="replace")[-300:]
    return ""


async def one(trial: Trial, folder: Path) -> Trial:
    protocol, personality, url_options = CONSOLES[trial.console]
    journal = folder / "console.jsonl"
    link = folder / "tty"
    sim = SimProcess(
        protocol,
        "--personality",
        personality,
        "--line-rate",
        "--link",
        str(link),
        *(("--faults", trial.fault) if trial.fault else ()),
        record=journal,
    )
    program = folder / "trial.toml"
    program.write_text(PROGRAM)
    await asyncio.to_thread(sim.start)
    url = f"serial://{link}?{url_options}"
    try:
        if trial.way_out in IN_PROCESS:
            why = await in_process(trial, url, program)
        else:
            why = await in_a_process(trial, url, program, folder)
    except Exception as err:  # a trial that fails is counted, not the end of the run
        why = f"{type(err).__name__}: {err}"
    finally:
        await asyncio.to_thread(sim.stop)
    state = final_state(journal)
    if not why and (state is None or state.get("stopped") is not True):
        why = f"belt not stopped: {state}"
    trial.passed, trial.why = not why, why
    return trial


async def run_trials(count: int, concurrency: int, seed: int, consoles: list[str]) -> list[Trial]:
    rng = random.Random(seed)
    ways = [*IN_PROCESS, *PROCESS]
    trials = []
    for number in range(count):
        fault = rng.choice(FAULTS).format(at=rng.randint(1, 6), long=rng.randint(2, 10))
        trials.append(
            Trial(
                number,
                rng.choice(consoles),
                fault,
                rng.choice(ways),
                round(rng.uniform(0.0, 8.0), 2),
            )
        )
    gate = asyncio.Semaphore(concurrency)
    done: list[Trial] = []
    started = time.monotonic()

    async def guarded(trial: Trial) -> None:
        async with gate:
            with tempfile.TemporaryDirectory(prefix="stop-trial-") as folder:
                done.append(await one(trial, Path(folder)))
            if len(done) % 25 == 0:
                failed = sum(not t.passed for t in done)
                elapsed = time.monotonic() - started
                print(f"  {len(done)}/{count} trials, {failed} failed, {elapsed:.0f} s", flush=True)

    await asyncio.gather(*(guarded(t) for t in trials))
    return sorted(done, key=lambda t: t.number)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=500, help="how many (500)")
    parser.add_argument("--concurrency", type=int, default=8, help="at once (8)")
    parser.add_argument("--seed", type=int, default=13, help="random seed (13)")
    parser.add_argument(
        "--console", choices=list(CONSOLES), action="append", help="only these consoles"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    consoles = args.console or list(CONSOLES)
    trials = asyncio.run(run_trials(args.trials, args.concurrency, args.seed, consoles))
    failed = [t for t in trials if not t.passed]
    print()
    print(f"trials        {len(trials)} in {time.monotonic() - started:.0f} s (seed {args.seed})")
    print(f"belt stopped  {len(trials) - len(failed)}/{len(trials)}")
    for label, key in (("by console", "console"), ("by way out", "way_out")):
        counts = Counter(getattr(t, key) for t in trials)
        print(f"{label:<13} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    by_fault = Counter(t.fault.split("@")[0] or "none" for t in trials)
    print("by fault      " + ", ".join(f"{k} {v}" for k, v in sorted(by_fault.items())))
    for trial in failed:
        print(
            f"FAILED #{trial.number} {trial.console} {trial.fault or 'no fault'} "
            f"{trial.way_out} at {trial.stop_at} s: {trial.why}"
        )
        for line in trial.events[-20:]:
            print(f"    {line[:220]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
