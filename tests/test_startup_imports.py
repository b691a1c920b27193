"""What ``retrotread --help`` loads: nothing a command it does not run needs (issue 22).

Start-up is most of what ``--help`` costs; each of these was a top-level import of the command
line or of a module it loads, and together they took longer than the rest of start-up.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Modules --help must not load, with what each costs and who needs it.
NOT_FOR_HELP = {
    "asyncio": "the event loop (~25 ms): commands that drive a treadmill or speak",
    "importlib.metadata": "~45 ms: --version and driver plugins",
    "statistics": "probe's medians",
    "sqlite3": "the records",
    "textual": "the console",
    "retrotread.session": "playing a program",
    "retrotread.clock": "loads asyncio",
    "retrotread.drivers.registry": "opening a device (plugins via importlib.metadata)",
}

PROBE = (
    "import sys, runpy\n"
    "sys.argv = ['retrotread', {args}]\n"
    "try:\n"
    "    runpy.run_module('retrotread', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
)


def _loaded(*args: str) -> tuple[str, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=", ".join(repr(a) for a in args))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout, set(done.stderr.split())


@pytest.mark.parametrize("args", [("--help",), ("check", "--help")])
def test_help_loads_nothing_a_command_needs(args: tuple[str, ...]) -> None:
    shown, loaded = _loaded(*args)
    assert "usage: retrotread" in shown
    assert sorted(set(NOT_FOR_HELP) & loaded) == []


def test_version_still_reads_the_installed_distribution() -> None:
    from importlib.metadata import version

    done = subprocess.run(
        [sys.executable, "-m", "retrotread", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stdout == f"retrotread {version('retrotread')}\n"
