from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", deadline=None, max_examples=200)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep logs, records and settings of every test inside its own temporary folder; the
    machine's own settings (a developer's config.toml or RETROTREAD_* variables) never count."""
    for name in [n for n in os.environ if n.startswith("RETROTREAD_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("RETROTREAD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RETROTREAD_LOG_DIR", str(tmp_path / "log"))
    monkeypatch.setenv("RETROTREAD_CONFIG_DIR", str(tmp_path / "config"))


# -- no process a test starts outlives it ------------------------------------------------------

PR_SET_CHILD_SUBREAPER = 36
#: how long a test's processes may take to exit after the test is done with them
EXIT_GRACE_S = 5.0


def _adopt_orphans() -> None:
    """Make this process the subreaper of its tree, so a grandchild whose parent died (a
    console's server, a simulator's helper) is still found below us instead of under init."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _processes() -> dict[int, tuple[str, int]]:
    """pid -> (state, parent pid) of every process."""
    table: dict[int, tuple[str, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        table[int(entry)] = (state, int(ppid))
    return table


def _live_descendants(root: int) -> dict[int, str]:
    """pid -> command line of every live (not zombie) process below ``root``."""
    parents = {pid: ppid for pid, (state, ppid) in _processes().items() if state != "Z"}
    below: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in below:
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                below[pid] = cmdline.decode(errors="replace").strip()
                frontier.append(pid)
    return below


def _reap(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def _reap_adopted_zombies(me: int, before: set[int]) -> None:
    """Orphans handed to us end as zombies of ours: reap those the test left behind."""
    _reap(
        p
        for p, (state, ppid) in _processes().items()
        if state == "Z" and ppid == me and p not in before
    )


def pytest_configure(config: pytest.Config) -> None:
    _adopt_orphans()


@pytest.fixture(autouse=True)
def _no_process_left_running() -> Iterator[None]:
    """Fail a test that leaves a process running (and kill what it left)."""
    me = os.getpid()
    before = set(_processes())
    yield
    deadline = time.monotonic() + EXIT_GRACE_S
    while True:
        _reap_adopted_zombies(me, before)
        left = {p: c for p, c in _live_descendants(me).items() if p not in before}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if left:
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        _reap_adopted_zombies(me, before)
        listing = "\n".join(f"  {pid}: {cmd}" for pid, cmd in sorted(left.items()))
        pytest.fail(f"the test left processes running (now killed):\n{listing}")
