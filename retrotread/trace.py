"""Wire traces: every frame to and from a treadmill, with timestamps, as JSON lines.

A trace is what a user sends with a bug report, and what ``retrotread-sim replay FILE`` serves
back as a machine, so that the report becomes a test. It holds the machine's side of things
only: what it declared (features, ranges, device information) and every frame on the wire. It
never holds anything about the person on the belt (no client names, no notes).

One hook serves every link. A driver asks :func:`tap_for` when it opens a link and gets a
:class:`LinkTap` (or None when nothing is traced); the serial transport records the bytes it
writes and reads, the Bluetooth link records GATT reads, writes, notifications and
indications (:mod:`retrotread.drivers.ble_trace`). Records, one JSON object a line::

    {"type": "header", "format": "retrotread-trace", "version": 1, "started": ISO-8601, ...}
    {"type": "link", "link": 0, "t": 0.0, "protocol": "csafe", "url": ..., "profile": ...}
    {"type": "machine", "link": 0, "t": 0.41, "declared": {...}}
    {"type": "frame", "link": 0, "t": 0.52, "dir": "out", "kind": "serial", "hex": "f1 80 80 f2"}
    {"type": "frame", "link": 0, "t": 0.53, "dir": "in", "kind": "indicate", "char": "2ad9",
     "hex": "80 07 01"}
    {"type": "event", "link": 0, "t": 9.1, "what": "closed"}

``t`` is seconds since the link was opened, on the clock the session runs on (the event
loop's). Frame kinds: ``serial`` (bytes on a serial line), ``read``, ``write``, ``notify``,
``indicate`` (GATT; ``char`` is the characteristic's UUID, 16-bit ones shortened).

A trace is switched on by ``--trace FILE`` (:func:`add_trace_option`), by
:func:`recording`, or by the environment variable ``RETROTREAD_TRACE=FILE``.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import datetime
import enum
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from retrotread.errors import RetrotreadError

if TYPE_CHECKING:  # the clock's module loads asyncio, which `retrotread --help` need not
    from retrotread.clock import Clock

TRACE_ENV = "RETROTREAD_TRACE"
FORMAT = "retrotread-trace"
VERSION = 1
BLUETOOTH_BASE = "-0000-1000-8000-00805f9b34fb"


class Direction(enum.StrEnum):
    OUT = "out"  # to the machine
    IN = "in"  # from the machine


class FrameKind(enum.StrEnum):
    SERIAL = "serial"
    READ = "read"
    WRITE = "write"
    NOTIFY = "notify"
    INDICATE = "indicate"


def short_uuid(uuid: str) -> str:
    """``00002ad9-0000-1000-8000-00805f9b34fb`` -> ``2ad9``; other UUIDs as they are."""
    text = uuid.lower()
    if text.startswith("0000") and text.endswith(BLUETOOTH_BASE):
        return text[4:8]
    return text


class WireTrace:
    """One trace file; links (one per driver connection) append to it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._links = 0
        try:
            self._file: IO[str] | None = path.open("a", encoding="utf-8")
        except OSError as err:
            raise RetrotreadError(f"cannot write the trace {path}: {err}") from err
        from retrotread import __version__

        self._write(
            {
                "type": "header",
                "format": FORMAT,
                "version": VERSION,
                "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "retrotread": __version__,
            }
        )

    def _write(self, record: dict[str, Any]) -> None:
        with self._lock:
            if self._file is None:
                return
            self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._file.flush()

    def link(self, *, protocol: str, url: str, profile: str, clock: Clock) -> LinkTap:
        with self._lock:
            number = self._links
            self._links += 1
        tap = LinkTap(self, number, clock)
        tap.record("link", protocol=protocol, url=url, profile=profile)
        return tap

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class LinkTap:
    """What one driver connection records into a trace."""

    def __init__(self, trace: WireTrace, number: int, clock: Clock) -> None:
        self.trace = trace
        self.number = number
        self.clock = clock
        self._origin: float | None = None

    def _now(self) -> float:
        try:
            now = self.clock.now()
        except RuntimeError:  # no running loop (a thread, or the loop has closed)
            return 0.0 if self._origin is None else -1.0
        if self._origin is None:
            self._origin = now
        return round(now - self._origin, 4)

    def record(self, record_type: str, **fields: Any) -> None:
        self.trace._write({"type": record_type, "link": self.number, "t": self._now(), **fields})

    def frame(
        self,
        direction: Direction,
        data: bytes | bytearray,
        kind: FrameKind,
        *,
        characteristic: str | None = None,
        error: str | None = None,
    ) -> None:
        fields: dict[str, Any] = {"dir": direction.value, "kind": kind.value}
        if characteristic is not None:
            fields["char"] = short_uuid(characteristic)
        fields["hex"] = bytes(data).hex(" ")
        if error is not None:
            fields["error"] = error
        self.record("frame", **fields)

    def event(self, what: str, **detail: Any) -> None:
        self.record("event", what=what, **detail)

    def declare(self, declared: dict[str, Any]) -> None:
        """What the machine declared about itself (features, ranges, device information)."""
        self.record("machine", declared=declared)


# -- switching a trace on ------------------------------------------------------------------------

_active: contextvars.ContextVar[WireTrace | None] = contextvars.ContextVar(
    "retrotread_trace", default=None
)
_configured: dict[str, WireTrace] = {}  # path -> trace opened for --trace or the environment
_requested: list[Path] = []  # the path --trace named in this process (see request)


def _opened(path: Path) -> WireTrace:
    key = str(path.resolve())
    trace = _configured.get(key)
    if trace is None:
        trace = _configured[key] = WireTrace(path)
        atexit.register(trace.close)
    return trace


def active_trace() -> WireTrace | None:
    """The trace links record into now: :func:`recording`, else ``--trace``, else the
    environment's ``RETROTREAD_TRACE``, else none."""
    trace = _active.get()
    if trace is not None:
        return trace
    if _requested:
        return _opened(_requested[-1])
    from_env = os.environ.get(TRACE_ENV)
    if from_env:
        return _opened(Path(from_env))
    return None


def tap_for(protocol: str, url: str, profile: str, clock: Clock) -> LinkTap | None:
    """A tap for a link being opened, or None when nothing is traced."""
    trace = active_trace()
    if trace is None:
        return None
    return trace.link(protocol=protocol, url=url, profile=profile, clock=clock)


@contextlib.contextmanager
def recording(path: Path) -> Iterator[WireTrace]:
    """Trace every link opened in this context (and tasks started from it) into ``path``."""
    trace = WireTrace(path)
    token = _active.set(trace)
    try:
        yield trace
    finally:
        _active.reset(token)
        trace.close()


def request(path: Path | None) -> None:
    """Trace this process's links to ``path`` (the command line's ``--trace``); None: only
    the environment's ``RETROTREAD_TRACE``, if set."""
    _requested.clear()
    if path is not None:
        _requested.append(path)


__all__ = [
    "TRACE_ENV",
    "Direction",
    "FrameKind",
    "LinkTap",
    "WireTrace",
    "active_trace",
    "recording",
    "request",
    "short_uuid",
    "tap_for",
]
