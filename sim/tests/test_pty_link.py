"""The ``--link`` name of a served pty lives exactly as long as the pty, as udev's names do.

A name left pointing at a closed pty leads a client that reopens it (a driver reconnecting) to
whatever pty the system hands out next under that number: another program's console or
terminal. That was the cause of cross-talk between tests running side by side.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from retrotread_sim.serve import SimProcess


def wait_until(condition: object, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_the_name_goes_when_the_pty_goes_and_comes_back_with_it(tmp_path: Path) -> None:
    link = tmp_path / "ttyTREAD"
    with SimProcess("csafe", "--link", str(link)) as sim:
        first = os.readlink(link)
        assert first.startswith("/dev/pts/")
        unplugging = threading.Thread(target=sim.console, args=("unplug 1.5",))
        unplugging.start()  # the console answers once the port is back
        assert wait_until(lambda: not link.is_symlink())  # unplugged: no name
        assert wait_until(link.is_symlink)  # plugged back in, under the same name
        unplugging.join()
    assert not link.is_symlink()  # the simulator stopped: the name is gone too
