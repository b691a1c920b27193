"""Core measurements: scheduler timing, the virtual clock, the session's command round trip,
fault -> stop with the shipped profiles, and the headless run's memory.

Each ``measure_*`` function returns rows for the table printed by ``bench/run.py``. The
statistics helpers here are shared by every section: a percentile is named only when there are
enough samples for it (p99 needs n >= 100; with fewer the row gives the maximum and n), and
A/B comparisons run in alternating rounds and report the median ratio with its spread.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from retrotread.clock import LoopClock, run
from retrotread.drivers.registry import open_treadmill
from retrotread.drivers.sim import SimDriver
from retrotread.events import BlockStarted, CommandConfirmed, CommandIssued, Event, ProgramFinished
from retrotread.profiles import get_profile
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


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


# -- statistics -----------------------------------------------------------------------------------

P99_MIN_N = 100


def percentile(ordered: Sequence[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def spread_ms(samples: Sequence[float]) -> tuple[str, float]:
    """``p50 / p99 / max (n)`` when n allows a p99, else ``p50 / max (n)``; and the figure a
    target is checked against (p99, or the maximum when n is too small for a p99)."""
    ordered = sorted(samples)
    p50, worst = statistics.median(ordered), ordered[-1]
    if len(ordered) >= P99_MIN_N:
        p99 = percentile(ordered, 0.99)
        return f"p50 {ms(p50)} / p99 {ms(p99)} / max {ms(worst)} ms (n={len(ordered)})", p99
    return f"p50 {ms(p50)} / max {ms(worst)} ms (n={len(ordered)})", worst


def dist_row(metric: str, samples: Sequence[float], target_ms: float | None = None) -> Row:
    value, checked = spread_ms(samples)
    if target_ms is None:
        return Row(metric, value)
    which = "p99" if len(samples) >= P99_MIN_N else "max"
    return Row(metric, value, f"{which} <= {target_ms:g} ms", verdict(checked * 1000 <= target_ms))


@dataclass(frozen=True)
class Alternated:
    """A/B in alternating rounds: each round's ratio of medians (A over B)."""

    ratios: list[float]
    a: list[float]
    b: list[float]

    @property
    def median_ratio(self) -> float:
        return statistics.median(self.ratios)

    def describe(self, unit_us: bool = True) -> str:
        scale, unit = (1e6, "µs") if unit_us else (1e3, "ms")
        a, b = statistics.median(self.a) * scale, statistics.median(self.b) * scale
        return (
            f"{self.median_ratio:.2f}x median over {len(self.ratios)} rounds "
            f"(min-max {min(self.ratios):.2f}-{max(self.ratios):.2f}); "
            f"p50 {a:.0f} vs {b:.0f} {unit}, {a - b:+.0f} {unit} (n={len(self.a)} each)"
        )


def alternate(
    rounds: int, run_a: Callable[[], list[float]], run_b: Callable[[], list[float]]
) -> Alternated:
    """Run A and B ``rounds`` times each, alternating which goes first."""
    ratios: list[float] = []
    all_a: list[float] = []
    all_b: list[float] = []
    for round_number in range(rounds):
        if round_number % 2:
            b = run_b()
            a = run_a()
        else:
            a = run_a()
            b = run_b()
        ratios.append(statistics.median(a) / statistics.median(b))
        all_a += a
        all_b += b
    return Alternated(ratios, all_a, all_b)


# -- programs -------------------------------------------------------------------------------------


def retro_speeds() -> list[Quantity]:
    """The round-trip workload: 2.6 to 3.2 mph in 0.1 mph steps, on an FTMS 0.01 km/h grid."""
    low, high = mph("2.6"), mph("3.2")
    increment = Increment.of("0.01", Unit.KMH)
    return [quantize(mph(f"{2.6 + 0.1 * i:.1f}"), low, high, increment) for i in range(7)]


def program_of(durations: list[int], speeds: Sequence[str] = ("2.8",)) -> Program:
    """Retro blocks of these durations, cycling through ``speeds`` (mph)."""
    blocks = tuple(
        Block(
            BlockKind.RETRO,
            d,
            mph(speeds[i % len(speeds)]),
            percent(2),
            Handrail.BOTH_HANDS,
            name=f"b{i}",
        )
        for i, d in enumerate(durations)
    )
    return Program("bench", "", blocks, Defaults(start_facing=Facing.REAR))


# -- the scheduler and the virtual clock ----------------------------------------------------------


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
            f"scheduler: block boundary lateness, real clock ({boundaries} boundaries)",
            lateness[1:],
            5,
        ),
        Row(
            f"scheduler: drift of the last boundary after {sum(durations)} s",
            f"{ms(drift)} ms",
            "<= 5 ms (no accumulation)",
            verdict(drift < 0.005),
        ),
    ]


def _session_seconds_per_second(program: Program) -> float:
    async def main() -> None:
        clock = LoopClock()
        await Session(program, open_treadmill("sim://", clock=clock), clock, unattended=True).run()

    began = time.perf_counter()
    run(main(), virtual=True)
    return program.total_s / (time.perf_counter() - began)


def measure_virtual_clock() -> list[Row]:
    program = program_of([30] * 120)  # 60 minutes

    async def main() -> None:
        await Scheduler(program, LoopClock()).run()

    began = time.perf_counter()
    run(main(), virtual=True)
    wall = time.perf_counter() - began
    ratio = program.total_s / wall
    # best of five: the figure is the software's speed, not the other sessions on the machine
    session_ratio = max(_session_seconds_per_second(program) for _ in range(5))
    return [
        Row(
            "virtual clock: scheduler alone (60-min program)",
            f"{ratio:,.0f}x real time ({wall * 1000:.0f} ms)",
            ">= 10,000x",
            verdict(ratio >= 10_000),
        ),
        Row(
            "virtual clock: whole session on the simulator (60-min program, best of 5)",
            f"{session_ratio:,.0f}x real time",
            ">= 10,000x",
            verdict(session_ratio >= 10_000),
        ),
    ]


# -- the session's command round trip -------------------------------------------------------------


def measure_inprocess_round_trip(samples: int = 1000) -> list[Row]:
    """The operator's +/- through the session on the real clock: ``nudge_speed`` -> the command
    worker wakes -> the governor quantizes and paces it -> the sim driver -> the simulated
    machine records the set-speed. Event-loop turns are counted, not assumed."""
    times: list[float] = []
    turns: list[int] = []

    async def main() -> None:
        clock = LoopClock()
        driver = open_treadmill("sim://?accel=50&decel=50", clock=clock)
        assert isinstance(driver, SimDriver)
        program = program_of([3600])
        session = Session(program, driver, clock, unattended=True)
        started = asyncio.Event()

        def on_event(event: Event) -> None:
            if isinstance(event, CommandConfirmed) and event.command == "start":
                started.set()

        session.subscribe(on_event)
        task = asyncio.create_task(session.run())
        await started.wait()
        machine = driver.machine
        assert machine is not None
        await asyncio.sleep(0.5)  # the belt at speed, the first block's commands done
        commands = machine.commands
        for n in range(samples):
            before = len(commands)
            count = 0
            began = time.perf_counter()
            session.nudge_speed(0.1 if n % 2 == 0 else -0.1)
            while not any(c.name == "set-speed" for c in commands[before:]):
                count += 1
                await asyncio.sleep(0)  # one turn of the loop
            times.append(time.perf_counter() - began)
            turns.append(count)
            await asyncio.sleep(0.002)  # the command confirmed; the next nudge is a new one
        session.stop()
        await task

    run(main())
    row = dist_row(
        "session round trip: +/- key -> worker -> governor -> set-speed at the simulator",
        times,
        2,
    )
    return [
        Row(
            row.metric,
            f"{row.value}; {statistics.median(turns):.0f} loop turns each",
            row.target,
            row.verdict,
        )
    ]


# -- fault -> stop written ------------------------------------------------------------------------


@dataclass(frozen=True)
class FaultCase:
    name: str
    plan: str  # {at} is the fault's start on the simulator's clock
    limit: Callable[[str], float]  # the profile's (or session's) figure the stop waits for
    why: str


def _confirm(profile: str) -> tuple[float, float]:
    confirm = get_profile(profile).confirm
    return confirm.telemetry_stale_s, confirm.command_timeout_s


def _session_constant(name: str, default: float) -> float:
    from retrotread import session

    return float(getattr(session, name, default))


FAULT_CASES = (
    FaultCase(
        "telemetry stops",
        "stale@{at}",
        lambda p: _confirm(p)[0],
        "telemetry_stale_s after the last record (up to 1 s before the fault), "
        "seen by the watchdog's next check",
    ),
    FaultCase(
        "telemetry frozen",
        "freeze@{at}",
        lambda p: _confirm(p)[0] + 1,
        "telemetry_stale_s after the last record that changed (the frozen one may be new)",
    ),
    FaultCase(
        "command never answered",
        "ignore:set-speed@{at}",
        lambda p: _confirm(p)[1],
        "command_timeout_s from the unanswered set-speed",
    ),
    FaultCase(
        "overspeed (machine reads km/h as mph), from the belt passing what is allowed",
        "mph-field",
        lambda p: _session_constant("OVERSPEED_GRACE_S", 2.0) + 1,
        "OVERSPEED_GRACE_S (2 s) of readings above the band plus two tolerances, readings "
        "once a second",
    ),
)
FAULT_PROFILES = ("simulator", "generic-ftms", "generic-csafe")


async def _fault_latency(case: FaultCase, profile: str, at: float) -> float:
    """Seconds from the fault's start to the first stop at the simulator after it."""
    clock = LoopClock()
    url = f"sim://?profile={profile}&faults={case.plan.format(at=at)}"
    driver = open_treadmill(url, clock=clock)
    assert isinstance(driver, SimDriver)
    program = program_of([20] * 8, speeds=("2.8", "3.0"))  # a new speed every 20 s
    session = Session(program, driver, clock, unattended=True)
    issued: list[CommandIssued] = []
    session.subscribe(lambda e: issued.append(e) if isinstance(e, CommandIssued) else None)
    over: list[float] = []
    watcher = asyncio.create_task(_watch_overspeed(session, driver, over))
    await session.run()
    watcher.cancel()
    machine = driver.machine
    assert machine is not None
    if case.plan.startswith("ignore"):
        # the fault starts with the first set-speed sent from `at` on (it is never answered)
        start = next(
            e.at for e in issued if "speed" in str(e.command) and e.at >= machine.created_at + at
        )
    elif case.plan == "mph-field":
        # the hazard starts when the misread belt first runs faster than the session allows
        start = over[0]
    else:
        start = machine.created_at + at
    stops = [c.time for c in machine.commands if c.name == "stop" and c.source == "link"]
    after = [t for t in stops if t >= start]
    if not after:
        raise RuntimeError(f"no stop reached the simulator after {url}")
    return after[0] - start


async def _watch_overspeed(session: Session, driver: SimDriver, over: list[float]) -> None:
    """Note when the belt itself (not its readings) first runs above what the session allows
    for the block: its band's top or the speed commanded, plus two tolerances."""
    tolerance = float(session.profile.confirm.tolerance_mph.value)
    while not over:
        await asyncio.sleep(0.05)
        step, commanded, machine = session.state.step, session._applied.speed, driver.machine
        if step is None or commanded is None or machine is None:
            continue
        allowed = max(commanded.mph, float(step.band.high.value)) + 2 * tolerance
        if machine.snapshot().speed_kmh / 1.609344 > allowed:
            over.append(session.clock.now())


def measure_fault_to_stop(phases: int = 3) -> list[Row]:
    """From the fault's start to the stop written, with the shipped profiles' timeouts, on the
    virtual clock (the figures are the timeouts' and the watchdog's, so they are exact). Faults
    start at ``phases`` points across one telemetry period."""
    rows = []
    for case in FAULT_CASES:
        parts = []
        ok = True
        worst_over = 0.0
        for profile in FAULT_PROFILES:
            latencies = [
                run(_fault_latency(case, profile, 30 + k / phases), virtual=True)
                for k in range(phases)
            ]
            limit = case.limit(profile)
            worst = max(latencies)
            ok = ok and worst <= limit + 1
            worst_over = max(worst_over, worst - limit)
            parts.append(f"{profile} {min(latencies):.1f}-{worst:.1f} s")
        rows.append(
            Row(
                f"fault -> stop written, from the fault's start: {case.name} "
                f"(n={phases} per profile)",
                "; ".join(parts) + f" — {case.why}",
                "<= the profile's limit + 1 s",
                verdict(ok),
            )
        )
    return rows


# -- the headless run's memory --------------------------------------------------------------------

#: A fresh, small parent that runs the command and reports the child's peak RSS (KiB) from
#: wait4, with its own resident size when it spawned the child (KiB). A forked child's peak
#: starts from the parent's resident size, so that must be below the child's own peak.
PEAK_RSS = """
import os, sys
with open("/proc/self/status") as status:
    resident = next(int(l.split()[1]) for l in status if l.startswith("VmRSS:"))
null = os.open(os.devnull, os.O_WRONLY)
quiet = [(os.POSIX_SPAWN_DUP2, null, 1)]
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ, file_actions=quiet)
_, code, usage = os.wait4(pid, 0)
assert code == 0, code
print(usage.ru_maxrss, resident)
"""


def child_peak_rss_mib(command: list[str]) -> tuple[float, float]:
    """(the command's own peak RSS, the measuring parent's RSS when it spawned it), in MiB."""
    out = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *command], check=True, capture_output=True, text=True
    ).stdout.split()
    return int(out[0]) / 1024, int(out[1]) / 1024


def measure_headless_rss() -> list[Row]:
    command = [sys.executable, "-m", "retrotread", "run", "first-week", "--rehearse", "--quiet"]
    child, parent = child_peak_rss_mib(command)
    bare, _ = child_peak_rss_mib([sys.executable, "-c", "pass"])
    return [
        Row(
            "headless run: peak RSS of the process (first-week, rehearsal)",
            f"{child:.1f} MiB (python alone {bare:.1f} MiB; the measuring parent held "
            f"{parent:.1f} MiB when it spawned the run, so the peak is the run's own)",
            "<= 60 MiB",
            verdict(child <= 60 and parent < child),
        )
    ]


SECTIONS: dict[str, Callable[..., list[Row]]] = {
    "scheduler": measure_scheduler,
    "virtual": measure_virtual_clock,
    "inprocess": measure_inprocess_round_trip,
    "faults": measure_fault_to_stop,
    "headless": measure_headless_rss,
}
