"""Costs against the size of the work: each row gives the cost per unit (per block, per second
of session, per session) at every size, so a reader can see that it is linear.

    python bench/run.py --only load rehearsal export records startup

* **load**: ``load_program`` of a written file of 10 to 10,000 blocks, valid and with an error
  in every retro block (the error path lists every mistake);
* **rehearsal**: a whole session on the simulator on the virtual clock, 1 h to 24 h;
* **export**: a recorded session of 1 h to 24 h (one sample a second, 30-s blocks) to CSV, TCX
  and FIT, through ``export_session``;
* **records**: ``retrotread history`` and ``retrotread next`` as commands, over records of 10 to
  10,000 sessions;
* **startup**: ``retrotread --help`` against ``python -c pass``, alternated.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from bench.core import Row, alternate, program_of, verdict
from retrotread.clock import LoopClock, run
from retrotread.drivers.registry import open_treadmill
from retrotread.export import Format, export_session
from retrotread.program import find_program
from retrotread.program.loader import ProgramError, load_program
from retrotread.program.model import Program
from retrotread.progression import OperatorOutcome
from retrotread.session import Session
from retrotread.store import BlockRecord, Status, Store

#: how much more a unit may cost at the largest size than at the one before, and still be
#: called linear (noise on a shared machine; a quadratic cost grows 10x per decade)
LINEAR = 1.5
#: rehearsals of each length (the 24-h one takes about 10 s of CPU)
REHEARSALS = 3


def best_of(times: int, work: Callable[[], object]) -> float:
    """The fastest of ``times`` runs: the cost of the work, not of the machine's other load."""
    fastest = float("inf")
    for _ in range(times):
        began = time.perf_counter()
        work()
        fastest = min(fastest, time.perf_counter() - began)
    return fastest


def growth_row(
    metric: str,
    sizes: Sequence[int],
    seconds: Sequence[float],
    unit: str,
    *,
    per: float = 1e6,
    per_unit: str = "µs",
    baseline: float = 0.0,
) -> Row:
    """``size: time (cost per unit)`` for each size, judged linear if the cost per unit at the
    largest size is within LINEAR of the one before. ``baseline`` (a fixed start-up cost) is
    taken off before dividing."""
    costs = [(t - baseline) / n * per for n, t in zip(sizes, seconds, strict=True)]
    parts = [
        f"{n:,}: {t * 1000:,.0f} ms ({c:,.1f} {per_unit}/{unit})"
        for n, t, c in zip(sizes, seconds, costs, strict=True)
    ]
    ratio = costs[-1] / costs[-2] if costs[-2] > 0 else float("inf")
    return Row(
        metric,
        "; ".join(parts) + f" — x{ratio:.2f} per {unit} from {sizes[-2]:,} to {sizes[-1]:,}",
        f"linear: per {unit} at {sizes[-1]:,} <= {LINEAR:g}x at {sizes[-2]:,}",
        verdict(ratio <= LINEAR),
    )


# -- load and validate ----------------------------------------------------------------------------

HEADER = """name = "long"
description = "generated for the benchmark"
[defaults]
incline = 2.0
retro_band = [2.6, 3.2]
turn = "slow"
turn_speed = 1.0
"""
CYCLE = (
    '[[blocks]]\nkind = "turn-around"\n',
    '[[blocks]]\nkind = "retro"\nduration = "20s"\nspeed = {retro}\nhandrail = "both-hands"\n',
    '[[blocks]]\nkind = "turn-around"\n',
    '[[blocks]]\nkind = "recovery"\nduration = "60s"\nspeed = 2.5\n',
)


def program_text(blocks: int, *, errors: bool = False) -> str:
    """A program of ``blocks`` blocks: warm-up, (turn, retro, turn, recovery) cycles, forward
    padding, cool-down. With ``errors`` every retro block is out of its band."""
    parts = [HEADER, '[[blocks]]\nkind = "warm-up"\nduration = "3m"\nspeed = 2.5\n']
    cycles = max(0, (blocks - 2) // 4)
    for _ in range(cycles):
        parts += [c.format(retro="9.5" if errors else "2.6") for c in CYCLE]
    for _ in range(blocks - 2 - 4 * cycles):
        parts.append('[[blocks]]\nkind = "recovery"\nduration = "60s"\nspeed = 2.5\n')
    parts.append('[[blocks]]\nkind = "cool-down"\nduration = "2m"\nspeed = 2.2\n')
    return "".join(parts)


def _load(path: Path, errors: bool) -> None:
    try:
        load_program(path)
    except ProgramError:
        if not errors:
            raise
    else:
        if errors:
            raise RuntimeError(f"{path} should not load")


def measure_load(quick: bool = False) -> list[Row]:
    sizes = (10, 100, 1_000, 10_000)
    results: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="retrotread-bench-") as folder:
        for errors in (False, True):
            for n in sizes:
                path = Path(folder) / f"p{n}{'e' if errors else ''}.toml"
                path.write_text(program_text(n, errors=errors))
                runs = 3 if n >= 1_000 or quick else 20
                results[errors].append(best_of(runs, partial(_load, path, errors)))
    valid, broken = results[False], results[True]
    ratio = broken[-1] / valid[-1]
    return [
        growth_row("load/validate a program file, valid", sizes, valid, "block"),
        growth_row(
            "load/validate a program file, an error in every retro block", sizes, broken, "block"
        ),
        Row(
            "load/validate: with errors against valid, at 10,000 blocks",
            f"{ratio:.2f}x ({broken[-1] * 1000:.0f} ms vs {valid[-1] * 1000:.0f} ms; "
            f"{program_text(10_000, errors=True).count('9.5'):,} errors listed)",
            "<= 1.2x",
            verdict(ratio <= 1.2),
        ),
    ]


# -- rehearsal ------------------------------------------------------------------------------------


def _rehearsal_cpu_s(program: Program) -> float:
    """CPU seconds this process spent rehearsing ``program`` on the virtual clock: a rehearsal
    is all computation, so its CPU time is its cost, whatever else the machine runs (wall time
    on a shared machine adds whatever the other sessions took from it)."""

    async def main() -> None:
        clock = LoopClock()
        await Session(program, open_treadmill("sim://", clock=clock), clock, unattended=True).run()

    began = time.process_time()
    run(main(), virtual=True)
    return time.process_time() - began


def measure_rehearsal(quick: bool = False) -> list[Row]:
    """Each size rehearsed REHEARSALS times, alternating sizes round by round (so the machine's
    state falls on every size alike); the median CPU time of each is the figure."""
    hours = (1, 4) if quick else (1, 4, 24)
    programs = [program_of([30] * (h * 120), speeds=("2.8", "3.0")) for h in hours]
    times: list[list[float]] = [[] for _ in hours]
    for _ in range(REHEARSALS):
        for index, program in enumerate(programs):
            times[index].append(_rehearsal_cpu_s(program))
    seconds = [statistics.median(runs) for runs in times]
    sizes = [h * 3600 for h in hours]
    row = growth_row(
        f"rehearsal: whole session on the simulator, virtual clock (1 h / 4 h / 24 h), CPU "
        f"time, median of {REHEARSALS} alternated runs",
        sizes,
        seconds,
        "session s",
    )
    spread = max(max(runs) / min(runs) for runs in times)
    return [Row(row.metric, f"{row.value}; runs within {spread:.2f}x", row.target, row.verdict)]


# -- export ---------------------------------------------------------------------------------------


def synthesize_session(store: Store, hours: float, client_id: int | None = None) -> int:
    """A completed session as the recorder writes it: 30-s retro blocks, a sample a second."""
    program = find_program("first-week")
    started = time.time() - hours * 3600 - 60
    session_id = store.begin_session(
        client=None, program=program, device="sim://", started_at=started
    )
    total = int(hours * 3600)
    blocks = total // 30
    db = store.db
    db.execute("BEGIN")
    for index in range(blocks):
        store.begin_block(
            session_id,
            BlockRecord(
                idx=index,
                kind="retro",
                title=f"Retro walk ({index + 1}/{blocks})",
                handrail="both-hands",
                planned_s=30,
                target_mph=2.8,
                incline_pct=2.0,
                started_at=started + index * 30,
                start_offset_s=index * 30.0,
                actual_s=30.0,
                extended_s=0,
                result="done",
            ),
        )
    metres_per_second = 2.8 * 0.44704
    db.executemany(
        "INSERT INTO samples (session_id, at, offset_s, block_idx, target_mph, speed_mph, "
        "incline_pct, distance_m) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            (session_id, started + s + 0.3, s + 0.3, s // 30, 2.8, 2.8, 2.0, s * metres_per_second)
            for s in range(total)
        ),
    )
    db.execute(
        "UPDATE sessions SET status = ?, ended_at = ?, blocks_done = ?, elapsed_s = ?, "
        "retro_s = ?, distance_m = ?, belt_stopped = 1, client_id = ? WHERE id = ?",
        (
            Status.COMPLETED.value,
            started + total,
            blocks,
            float(total),
            float(total),
            total * metres_per_second,
            client_id,
            session_id,
        ),
    )
    db.execute("COMMIT")
    return session_id


def measure_export(quick: bool = False) -> list[Row]:
    hours = (1, 8) if quick else (1, 8, 24)
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="retrotread-bench-") as folder,
        Store.open(Path(folder) / "records.sqlite3") as store,
    ):
        out = Path(folder)
        sessions = [synthesize_session(store, h) for h in hours]
        for fmt in Format:
            times = [
                best_of(
                    2,
                    partial(
                        export_session, store, session_id, fmt, out / f"out.{fmt.value}", force=True
                    ),
                )
                for h, session_id in zip(hours, sessions, strict=True)
            ]
            row = growth_row(
                f"export a recorded session to {fmt.value.upper()} (1 h / 8 h / 24 h)",
                [h * 3600 for h in hours],
                times,
                "session s",
            )
            longest = times[-1]
            ok = row.verdict == "ok" and longest <= 2.0
            rows.append(
                Row(
                    row.metric,
                    row.value,
                    f"{hours[-1]} h <= 2 s; {row.target}",
                    verdict(ok),
                )
            )
    return rows


# -- history and next over many sessions ----------------------------------------------------------


def synthesize_history(path: Path, sessions: int) -> None:
    """A client with ``sessions`` short completed sessions, each with an outcome."""
    with Store.open(path) as store:
        client = store.add_client("Ana")
        program = find_program("first-week")
        db = store.db
        db.execute("BEGIN")
        start = time.time() - sessions * 3600
        for n in range(sessions):
            session_id = store.begin_session(
                client=client, program=program, device="sim://", started_at=start + n * 3600
            )
            db.execute(
                "UPDATE sessions SET status = ?, ended_at = ?, blocks_done = blocks_total, "
                "retro_s = 120, elapsed_s = 1200, distance_m = 1500, belt_stopped = 1, "
                "outcome = ? WHERE id = ?",
                (
                    Status.COMPLETED.value,
                    start + n * 3600 + 1200,
                    OperatorOutcome.COMPLETED.value,
                    session_id,
                ),
            )
        db.execute("COMMIT")


def _command_seconds(args: list[str], runs: int) -> float:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return best_of(
        runs,
        lambda: subprocess.run(
            [sys.executable, "-m", "retrotread", *args],
            check=True,
            stdout=subprocess.DEVNULL,
            env=env,
        ),
    )


def measure_records(quick: bool = False) -> list[Row]:
    sizes = (10, 1_000) if quick else (10, 1_000, 10_000)
    history: list[float] = []
    planned: list[float] = []
    with tempfile.TemporaryDirectory(prefix="retrotread-bench-") as folder:
        for n in sizes:
            db = Path(folder) / f"records-{n}.sqlite3"
            synthesize_history(db, n)
            history.append(_command_seconds(["history", "--db", str(db)], 3))
            planned.append(_command_seconds(["next", "--client", "Ana", "--db", str(db)], 3))
    rows = []
    for name, times in (("history", history), ("next --client", planned)):
        # the cost per session beyond the command's start-up (the 10-session run)
        extra = [t - times[0] for t in times]
        per = [
            e / (n - sizes[0]) * 1e6 if n > sizes[0] else 0.0
            for n, e in zip(sizes, extra, strict=True)
        ]
        parts = [f"{n:,}: {t * 1000:,.0f} ms" for n, t in zip(sizes, times, strict=True)]
        growth = f"+{per[-1]:,.1f} µs/session beyond start-up at {sizes[-1]:,}"
        ok = True
        if len(sizes) > 2:
            growth += f" ({per[-2]:,.1f} at {sizes[-2]:,})"
            ok = per[-1] <= LINEAR * per[-2] or per[-1] < 50
        rows.append(
            Row(
                f"`retrotread {name}` over 10 / 1,000 / 10,000 recorded sessions",
                "; ".join(parts) + " — " + growth,
                f"linear: per session at {sizes[-1]:,} <= {LINEAR:g}x at {sizes[-2]:,}, "
                "or under 50 µs (too small to tell from start-up noise)",
                verdict(ok),
            )
        )
    return rows


# -- start-up -------------------------------------------------------------------------------------


def measure_startup(quick: bool = False) -> list[Row]:
    """Start-up as an installed retrotread meets it: with its bytecode compiled (pip compiles
    it on install; a run with PYTHONDONTWRITEBYTECODE compiles every module from source on
    every start, ~70 ms here). The bytecode goes to a cache of its own, warmed once, so the
    source tree is not written to."""
    rounds, per_round = (4, 3) if quick else (8, 5)
    script = Path(sys.executable).parent / "retrotread"
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache

        def timed(command: list[str]) -> list[float]:
            times = []
            for _ in range(per_round):
                began = time.perf_counter()
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
                times.append(time.perf_counter() - began)
            return times

        for command in ([str(script), "--help"], [sys.executable, "-c", "pass"]):
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)  # compile
        helped = alternate(
            rounds,
            lambda: timed([str(script), "--help"]),
            lambda: timed([sys.executable, "-c", "pass"]),
        )
    help_s, pass_s = statistics.median(helped.a), statistics.median(helped.b)
    limit = 2 * pass_s + 0.1
    return [
        Row(
            "start-up: `retrotread --help` against `python -c pass`, bytecode compiled (as "
            "installed)",
            f"{help_s * 1000:.0f} ms vs {pass_s * 1000:.0f} ms: {helped.describe(unit_us=False)}",
            f"<= 2x python + 100 ms ({limit * 1000:.0f} ms)",
            verdict(help_s <= limit),
        )
    ]


SECTIONS: dict[str, Callable[..., list[Row]]] = {
    "load": measure_load,
    "rehearsal": measure_rehearsal,
    "export": measure_export,
    "records": measure_records,
    "startup": measure_startup,
}
