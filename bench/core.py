"""Core measurements: scheduler timing, the virtual clock, in-process round trips, fault->stop.

Each ``measure_*`` function returns rows for the table printed by ``bench/run.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from retrotread.clock import LoopClock, run
from retrotread.drivers.registry import open_treadmill
from retrotread.drivers.sim import SimDriver
from retrotread.events import BlockStarted, Event, Fault, Notice, ProgramFinished
from retrotread.profiles import Profile, get_profile
from retrotread.program.model import Block, BlockKind, Defaults, Facing, Handrail, Program
from retrotread.scheduler import Scheduler
from retrotread.session import Session
from retrotread.units import Increment, Quantity, Unit, mph, percent, quantize


@dataclass(frozen=True)
class Row:
    metric: str
    value: str
    target: str = ""
    verdict: str = ""


def retro_speeds() -> list[Quantity]:
    """The round-trip workload: 2.6 to 3.2 mph in 0.1 mph steps, on an FTMS 0.01 km/h grid."""
    low, high = mph("2.6"), mph("3.2")
    increment = Increment.of("0.01", Unit.KMH)
    return [quantize(mph(f"{2.6 + 0.1 * i:.1f}"), low, high, increment) for i in range(7)]


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return p50, p99, ordered[-1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def dist_row(metric: str, samples: list[float], target_ms: float | None = None) -> Row:
    p50, p99, worst = percentiles(samples)
    value = f"p50 {ms(p50)} / p99 {ms(p99)} / max {ms(worst)} ms (n={len(samples)})"
    if target_ms is None:
        return Row(metric, value)
    verdict = "ok" if p99 * 1000 <= target_ms else "MISSED"
    return Row(metric, value, f"p99 <= {target_ms:g} ms", verdict)


def program_of(durations: list[int]) -> Program:
    blocks = tuple(
        Block(BlockKind.RETRO, d, mph("2.8"), percent(2), Handrail.BOTH_HANDS, name=f"b{i}")
        for i, d in enumerate(durations)
    )
    return Program("bench", "", blocks, Defaults(start_facing=Facing.REAR))


def measure_scheduler(boundaries: int) -> list[Row]:
    """Block-boundary lateness on the real clock, and drift of the last boundary."""
    durations = [1] * boundaries
    lateness: list[float] = []
    end: list[float] = []

    async def main() -> float:
        scheduler = Scheduler(program_of(durations), LoopClock())
        origin: list[float] = []

        def on_event(event: Event) -> None:
            if isinstance(event, BlockStarted):
                if not origin:
                    origin.append(event.at)
                expected = origin[0] + event.step.start_s
                lateness.append(asyncio.get_running_loop().time() - expected)
            elif isinstance(event, ProgramFinished):
                end.append(asyncio.get_running_loop().time() - (origin[0] + sum(durations)))

        scheduler.subscribe(on_event)
        await scheduler.run()
        return end[0]

    drift = run(main())
    return [
        dist_row(
            f"scheduler boundary lateness, real clock ({boundaries} boundaries)", lateness[1:], 5
        ),
        Row(
            f"drift of the last boundary after {sum(durations)} s",
            f"{ms(drift)} ms",
            "no accumulation (~ one boundary's lateness)",
            "ok" if drift < 0.005 else "MISSED",
        ),
    ]


def measure_virtual_clock() -> list[Row]:
    program = program_of([30] * 120)  # 60 minutes

    async def main() -> None:
        await Scheduler(program, LoopClock()).run()

    began = time.perf_counter()
    run(main(), virtual=True)
    wall = time.perf_counter() - began
    ratio = program.total_s / wall

    async def session_main() -> None:
        clock = LoopClock()
        await Session(program, open_treadmill("sim://", clock=clock), clock, unattended=True).run()

    began = time.perf_counter()
    run(session_main(), virtual=True)
    session_ratio = program.total_s / (time.perf_counter() - began)
    return [
        Row(
            "virtual clock: scheduler alone (60-min program)",
            f"{ratio:,.0f}x real time ({wall * 1000:.0f} ms)",
            ">= 10,000x",
            "ok" if ratio >= 10_000 else "MISSED",
        ),
        Row(
            "virtual clock: whole session on the simulator",
            f"{session_ratio:,.0f}x real time",
            ">= 10,000x",
            "ok" if session_ratio >= 10_000 else "MISSED",
        ),
    ]


def measure_inprocess_round_trip(samples: int = 2000) -> list[Row]:
    """set_speed written to the in-process simulator and acknowledged, on the real clock."""
    times: list[float] = []
    speeds = retro_speeds()

    async def main() -> None:
        driver = open_treadmill("sim://", clock=LoopClock())
        async with driver:
            await driver.start()
            for i in range(samples):
                began = time.perf_counter()
                await driver.set_speed(speeds[i % len(speeds)])
                times.append(time.perf_counter() - began)
            await driver.stop()

    run(main())
    return [dist_row("command round trip, in-process simulator", times, 1)]


FAULTS = {
    "stale telemetry": "stale@1.5",
    "frozen telemetry": "freeze@1.5",
    "unanswered command": "ignore:set-speed@1.5",
    "link lost (measured from its return)": "drop@1.5+1",
    "overspeed (mph field)": "mph-field",
}


def fast_profile() -> Profile:
    """The simulator's profile with short timeouts, so each fault shows within a second."""
    sim = get_profile("simulator")
    confirm = dataclasses.replace(sim.confirm, telemetry_stale_s=1.0, command_timeout_s=0.5)
    return dataclasses.replace(sim, confirm=confirm)


def measure_fault_to_stop(repeats: int = 3) -> list[Row]:
    """Fault detected (the session raises it) -> stop command reaching the simulator."""
    rows = []
    for name, plan in FAULTS.items():
        latencies: list[float] = []
        for _ in range(repeats):
            latencies.append(run(_fault_latency(plan)))
        rows.append(dist_row(f"fault -> stop written: {name}", latencies))
    return rows


async def _fault_latency(plan: str) -> float:
    clock = LoopClock()
    driver = open_treadmill(f"sim://?faults={plan}", clock=clock, profile=fast_profile())
    assert isinstance(driver, SimDriver)
    program = program_of([2, 2, 2, 2])
    session = Session(program, driver, clock, unattended=True)
    detected: list[float] = []
    from_return = plan.startswith("drop")

    seen = asyncio.Event()

    def on_event(event: Event) -> None:
        restored = isinstance(event, Notice) and "link restored" in event.message
        if (restored if from_return else isinstance(event, Fault)) and not detected:
            detected.append(event.at)
            seen.set()

    session.subscribe(on_event)
    task = asyncio.create_task(session.run())
    await seen.wait()
    machine = driver.machine
    assert machine is not None
    deadline = clock.now() + 5
    stop_at = None
    while stop_at is None and clock.now() < deadline:
        stops = [
            c.time
            for c in machine.commands
            if c.name == "stop" and c.source == "link" and c.time >= detected[0]
        ]
        stop_at = stops[0] if stops else None
        await asyncio.sleep(0.0005)
    session.stop()
    await task
    if stop_at is None:
        raise RuntimeError(f"no stop reached the simulator after fault {plan}")
    return stop_at - detected[0]


def measure_headless_rss() -> list[Row]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(
        [sys.executable, "-m", "retrotread", "run", "first-week", "--rehearse", "--quiet"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return [
        Row("headless run RSS (first-week, rehearsal)", f"{max(rss_kib, before) / 1024:.1f} MB")
    ]


SECTIONS: dict[str, Callable[..., list[Row]]] = {
    "scheduler": measure_scheduler,
    "virtual": measure_virtual_clock,
    "inprocess": measure_inprocess_round_trip,
    "faults": measure_fault_to_stop,
    "headless": measure_headless_rss,
}
