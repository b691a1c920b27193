"""Run the whole suite N times on a fresh clone, as CI does, and say how often it passed.

    python bench/suite_soak.py [-n RUNS] [--repo PATH] [--keep]

The clone is made once from the committed HEAD of ``--repo`` (uncommitted work is not in
it) and set up once (``make .venv/.installed``, not timed); then ``make test`` runs RUNS times
in it with ``CI=true`` and no standard input, each run timed as a whole (ruff, mypy, import
contracts and pytest). pytest writes a JUnit report per run, so failures are counted by test.
The table at the end: passes, failures by test, and wall time per run. Exit status 0 only if
every run passed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

#: the README's promise for one `make test` on this 2-core machine
TARGET_S = 180.0


@dataclass
class Run:
    number: int
    status: int
    wall_s: float
    tests: int = 0
    failed: list[str] = field(default_factory=list)
    log: Path | None = None

    @property
    def passed(self) -> bool:
        return self.status == 0 and not self.failed


def failures(report: Path) -> tuple[int, list[str]]:
    """How many tests ran, and the ids of those that failed or errored, from a JUnit file."""
    if not report.exists():
        return 0, []
    root = ET.parse(report).getroot()
    ran, failed = 0, []
    for case in root.iter("testcase"):
        ran += 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{case.get('classname', '')}::{case.get('name', '')}")
    return ran, failed


def run_suite(clone: Path, number: int, logs: Path) -> Run:
    report = logs / f"run-{number}.xml"
    log = logs / f"run-{number}.log"
    env = {**os.environ, "CI": "true", "PYTEST_ADDOPTS": f"--junitxml={report}"}
    started = time.monotonic()
    with log.open("wb") as out:
        status = subprocess.run(
            ["make", "test"],
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    wall = time.monotonic() - started
    ran, failed = failures(report)
    if status != 0 and not failed:
        failed = ["(make test failed outside pytest: see the log)"]
    return Run(number, status, wall, ran, failed, log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=10, help="how many runs (10)")
    parser.add_argument(
        "--repo", type=Path, default=Path(__file__).resolve().parent.parent, help="what to clone"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the clone and the logs (kept anyway on failure)"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    workdir = Path(tempfile.mkdtemp(prefix="retrotread-soak-"))
    clone, logs = workdir / "clone", workdir / "logs"
    logs.mkdir()
    head = subprocess.run(
        ["git", "-C", str(args.repo), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"cloning {args.repo} at {head} into {clone}", flush=True)
    subprocess.run(["git", "clone", "--quiet", str(args.repo), str(clone)], check=True)
    shared = args.repo.parent / "shared"
    if shared.is_dir() and not (workdir / "shared").exists():
        (workdir / "shared").symlink_to(shared)  # as CI lays it beside the clone
    print("setting up the clone (not timed) ...", flush=True)
    setup_started = time.monotonic()
    with (logs / "setup.log").open("wb") as setup_log:
        subprocess.run(
            ["make", "system", ".venv/.installed"],
            cwd=clone,
            stdin=subprocess.DEVNULL,
            stdout=setup_log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    print(f"  set up in {time.monotonic() - setup_started:.0f} s", flush=True)

    runs: list[Run] = []
    for number in range(1, args.runs + 1):
        run = run_suite(clone, number, logs)
        runs.append(run)
        verdict = "pass" if run.passed else f"FAIL ({len(run.failed)})"
        print(
            f"run {number:>2}/{args.runs}: {verdict:<9} {run.wall_s:6.1f} s  {run.tests} tests"
            + "".join(f"\n           {name}" for name in run.failed),
            flush=True,
        )

    walls = [r.wall_s for r in runs]
    by_test = Counter(name for r in runs for name in r.failed)
    passes = sum(r.passed for r in runs)
    over = sum(w > TARGET_S for w in walls)
    print()
    print(f"commit        {head}")
    print(f"passes        {passes}/{len(runs)}")
    print(
        f"wall time     min {min(walls):.1f} s / median {statistics.median(walls):.1f} s / "
        f"max {max(walls):.1f} s; {over} over {TARGET_S:.0f} s"
    )
    print("per run       " + ", ".join(f"{w:.0f}" for w in walls) + " s")
    if by_test:
        print("failures by test:")
        for name, count in by_test.most_common():
            print(f"  {count:>2}x {name}")
    else:
        print("failures      none")
    if args.keep or by_test:
        print(f"clone and logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if passes == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
