"""A whole built-in program over a real serial line, played while the rest of the suite runs.

A built-in lasts minutes of real time, and real I/O to another process cannot use the virtual
clock. So ``conftest.py`` starts these runs as soon as collection is done — the simulator on a
pty in one process, ``retrotread run`` in another — and ``test_builtin_over_serial.py``, which
the conftest moves to the end of the session, waits for them and checks what they did.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from retrotread_sim.serve import SimProcess

PROGRAM = "two-minute-retro"  # the shortest built-in: 7:10
#: protocol -> (simulator options, device profile)
LINKS = {
    "csafe": (("--line-rate",), "generic-csafe"),
    "trackmaster": (("--line-rate", "--status-query"), "trackmaster-query"),
}


@dataclass
class BackgroundRun:
    protocol: str
    folder: Path
    sim: SimProcess
    player: subprocess.Popen[bytes] | None = None
    output: Path = field(init=False)

    def __post_init__(self) -> None:
        self.output = self.folder / f"{self.protocol}.out"

    def start(self) -> None:
        options, profile = LINKS[self.protocol]
        self.sim.start()
        device = f"serial://{self.sim.address}?protocol={self.protocol}&profile={profile}"
        command = [sys.executable, "-m", "retrotread", "run", PROGRAM, "--unattended", "--mute"]
        with self.output.open("wb") as out:
            self.player = subprocess.Popen(
                [*command, "--device", device],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "RETROTREAD_DATA_DIR": str(self.folder / "data")},
            )

    def finish(self, timeout: float) -> tuple[int, str]:
        assert self.player is not None
        try:
            status = self.player.wait(timeout)
        finally:
            if self.player.poll() is None:
                self.player.terminate()
                self.player.wait(30)
            self.sim.stop()
        return status, self.output.read_text(errors="replace")

    def abandon(self) -> None:
        if self.player is not None and self.player.poll() is None:
            self.player.terminate()
            self.player.wait(30)
        self.sim.stop()


def start_runs() -> dict[str, BackgroundRun]:
    folder = Path(tempfile.mkdtemp(prefix="retrotread-builtin-serial-"))
    runs = {}
    for protocol, (options, _) in LINKS.items():
        sim = SimProcess(protocol, *options, record=folder / f"{protocol}.jsonl")
        run = BackgroundRun(protocol, folder, sim)
        run.start()
        runs[protocol] = run
    return runs
