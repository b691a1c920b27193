"""retrotread benchmarks: one command, one table (``make bench``).

    python bench/run.py [--quick] [--only SECTION ...]

Sections: scheduler, virtual, inprocess, faults, headless, and — when their modules are
present — ble, serial, console. Not part of the test run: timing here is measured, never
asserted.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.core import SECTIONS, Row

#: Benchmarks that live beside their issue's code: section -> (module, function).
OPTIONAL = {
    "ble": ("bench.ble_roundtrip", "measure"),
    "serial": ("bench.serial_roundtrip", "measure"),
    "console": ("bench.tui_bench", "measure"),
}


def machine() -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            names = [
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            ]
            cpu = names[0] if names else cpu
    except OSError:
        pass
    versions = []
    for package in (
        "retrotread",
        "textual",
        "pyftms",
        "bleak",
        "bleak-retry-connector",
        "pyserial",
    ):
        try:
            versions.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return [
        f"machine: {platform.system()} {platform.release()}, {os.cpu_count()} cores, {cpu}",
        f"python {platform.python_version()}; " + ", ".join(versions),
    ]


def sections(quick: bool) -> dict[str, Callable[[], list[Row]]]:
    found: dict[str, Callable[[], list[Row]]] = {
        "scheduler": lambda: SECTIONS["scheduler"](30 if quick else 120),
        "virtual": SECTIONS["virtual"],
        "inprocess": SECTIONS["inprocess"],
        "faults": lambda: SECTIONS["faults"](1 if quick else 3),
        "headless": SECTIONS["headless"],
    }
    for name, (module_name, function) in OPTIONAL.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        measure = getattr(module, function, None)
        if callable(measure):
            found[name] = lambda m=measure, q=quick: m(quick=q)  # type: ignore[misc]
    return found


def print_table(rows: list[Row]) -> None:
    widths = [max(len(getattr(r, f)) for r in rows) for f in ("metric", "value", "target")]
    header = Row("metric", "measured", "target", "")
    line = "-" * (sum(widths) + 16)
    for i, row in enumerate([header, *rows]):
        print(
            f"{row.metric:<{widths[0]}}  {row.value:<{widths[1]}}  "
            f"{row.target:<{widths[2]}}  {row.verdict}"
        )
        if i == 0:
            print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, faster")
    parser.add_argument("--only", nargs="*", metavar="SECTION", help="run only these sections")
    args = parser.parse_args()
    available = sections(args.quick)
    chosen = args.only or list(available)
    unknown = [name for name in chosen if name not in available]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; available: {', '.join(available)}")
    for line in machine():
        print(line)
    print()
    rows: list[Row] = []
    began = time.perf_counter()
    for name in chosen:
        rows.extend(available[name]())
    print_table(rows)
    print(f"\n({time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
