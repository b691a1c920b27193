"""``retrotread-sim serve`` as a child process, for tests and benchmarks: where it serves, the
person at its console, and its frame record."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any


class SimProcess:
    """``retrotread-sim serve`` in a child process; ``address`` is what it printed."""

    def __init__(self, protocol: str, *options: str, record: Path | None = None) -> None:
        self.command = [sys.executable, "-m", "retrotread_sim", "serve", "--protocol", protocol]
        self.command += list(options)
        if record is not None:
            self.command += ["--record", str(record)]
        self.record = record
        self.address = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._pending = b""

    def __enter__(self) -> SimProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the simulator is not running")
        return self._process

    def start(self, timeout: float = 20.0) -> str:
        self._process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.address = self._read_line(timeout)
        return self.address

    def _read_line(self, timeout: float) -> str:
        stdout = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"retrotread-sim said nothing within {timeout:g} s")
            ready, _, _ = select.select([stdout], [], [], remaining)
            if ready:
                chunk = os.read(stdout.fileno(), 4096)
                if not chunk:
                    code = self.process.wait()
                    raise RuntimeError(f"retrotread-sim exited with status {code}")
                self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode()

    def console(self, command: str, timeout: float = 10.0) -> str:
        """Act at the machine (see the module doc); returns the answer after ``ok``."""
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(command.encode() + b"\n")
        stdin.flush()
        answer = self._read_line(timeout)
        if not answer.startswith("ok"):
            raise RuntimeError(f"console {command!r}: {answer}")
        return answer[2:].strip()

    def records(self) -> list[dict[str, Any]]:
        if self.record is None or not self.record.exists():
            return []
        lines = self.record.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def frames(self) -> list[dict[str, Any]]:
        return [entry for entry in self.records() if entry.get("event") == "frame"]

    def stop(self, timeout: float = 10.0) -> int:
        process = self._process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._process = None
        return process.returncode
