"""The session writer: a thread of its own writes queued session records to the file, so a
busy or locked file, a checkpoint or a full disk never delays a command to the belt."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from retrotread.store.writes import INSERT_SESSION, WRITES, Values, bind

log = logging.getLogger(__name__)

# -- the session writer --------------------------------------------------------------------------

#: SQLite primary result codes that mean "not now" rather than "never": the writer keeps the
#: records and tries again (a lock held past the busy timeout, a full disk, an I/O error, a file
#: that cannot be opened or written for the moment).
_TRY_AGAIN = {
    5: "busy",
    6: "locked",
    8: "read-only",
    10: "I/O error",
    13: "full",
    14: "cannot open",
    15: "lock protocol",
}
_LOCKED = {5, 6}


def _result_code(err: sqlite3.Error) -> int:
    code = getattr(err, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else -1


@dataclass(frozen=True)
class Backlog:
    """Records the writer has not written: how many of each kind, and the last error."""

    pending: dict[str, int]
    dropped_samples: int = 0
    error: str = ""

    def __bool__(self) -> bool:
        return bool(self.pending) or self.dropped_samples > 0

    def describe(self) -> str:
        if not self:
            return "every record written"
        parts = [f"{count} {_PLURALS.get(kind, kind)}" for kind, count in self.pending.items()]
        said = ", ".join(parts) + " not written" if parts else ""
        if self.dropped_samples:
            said += ("; " if said else "") + f"{self.dropped_samples} samples dropped (memory full)"
        return said + (f" ({self.error})" if self.error else "")


_PLURALS = {
    "session": "session rows",
    "sample": "samples",
    "event": "events",
    "block": "block rows",
    "end_block": "block results",
    "extend_block": "block extensions",
    "progress": "progress updates",
    "end_session": "session endings",
}


class SessionKey:
    """A session row queued for the writer; ``id`` is its number once it is in the file."""

    __slots__ = ("id",)

    def __init__(self) -> None:
        self.id: int | None = None


#: (kind, the session it belongs to, its values with SESSION_ID for the session's number)
Record = tuple[str, SessionKey, Values]
#: told ("behind" | "caught-up" | "failed", detail), on the writer's thread
WriterListener = Callable[[str, str], None]


class RecordWriter:
    """Writes queued session records to the file on a thread of its own.

    :meth:`submit` never blocks: it appends to a queue in memory. The thread takes what is
    queued, writes it in one transaction (so a batch is in the file entirely or not at all:
    nothing lost, nothing written twice) and takes the next. A write that cannot go through
    for now (the file locked past ``busy_timeout_s``, a full disk) leaves the batch queued and
    is tried again, backing off to once a second; listeners hear "behind" and then
    "caught-up". Samples queued beyond ``max_pending_samples`` (about a day at one a second)
    are dropped and counted; blocks and events are always kept. Any other error (the file is
    not a records file any more) ends the writing: listeners hear "failed".
    """

    batch_size = 2000
    first_retry_s = 0.05
    last_retry_s = 1.0

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float = 0.25,
        on_connect: Callable[[sqlite3.Connection], None] | None = None,
        max_pending_samples: int = 100_000,
    ) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self.on_connect = on_connect
        self.max_pending_samples = max_pending_samples
        self.written = 0
        self.dropped_samples = 0
        self.error = ""  # the last error
        self.failed: str | None = None  # the error that ended the writing
        self.behind_since: float | None = None  # monotonic: the first of a run of failed writes
        self._queue: deque[Record] = deque()
        self._queued_samples = 0
        self._lock = threading.Condition()
        self._closing = False
        self._give_up_at: float | None = None
        self._listeners: list[WriterListener] = []
        self._thread = threading.Thread(
            target=self._run, name=f"records writer ({path.name})", daemon=True
        )
        self._thread.start()

    # -- the caller's side (the event loop's thread) ----------------------------------------

    @property
    def behind(self) -> bool:
        """True while writes are failing for now (records wait in memory)."""
        return self.behind_since is not None

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def closing(self) -> bool:
        return self._closing

    def subscribe(self, listener: WriterListener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def begin_session(self, values: Values) -> SessionKey:
        key = SessionKey()
        self.submit("session", key, values)
        return key

    def submit(self, kind: str, key: SessionKey, values: Values) -> bool:
        """Queue a record; False if it was dropped (memory for samples full, writer ended)."""
        with self._lock:
            if self.failed is not None or self._closing:
                return False
            if kind == "sample":
                if self._queued_samples >= self.max_pending_samples:
                    self.dropped_samples += 1
                    return False
                self._queued_samples += 1
            self._queue.append((kind, key, values))
            self._lock.notify_all()
        return True

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until everything queued is written; True if it is."""
        with self._lock:
            return (
                self._lock.wait_for(
                    lambda: (
                        not self._queue or self.failed is not None or not self._thread.is_alive()
                    ),
                    timeout_s,
                )
                and not self._queue
            )

    def wait_written(self, key: SessionKey, timeout_s: float) -> int | None:
        """The session's number, waiting (at most ``timeout_s``) for its row to be written."""
        with self._lock:
            self._lock.wait_for(
                lambda: (
                    key.id is not None or self.failed is not None or not self._thread.is_alive()
                ),
                timeout_s,
            )
        return key.id

    def backlog(self) -> Backlog:
        with self._lock:
            kinds = Counter(kind for kind, _, _ in self._queue)
            return Backlog(dict(kinds), self.dropped_samples, self.failed or self.error)

    def close(self, timeout_s: float) -> Backlog:
        """Write what is queued, waiting at most ``timeout_s``; what is left is returned."""
        with self._lock:
            self._closing = True
            self._give_up_at = time.monotonic() + timeout_s
            self._lock.notify_all()
        self._thread.join(timeout_s + self.busy_timeout_s + 1.0)
        return self.backlog()

    # -- the writer's thread -------------------------------------------------------------------

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        retry_s = self.first_retry_s
        try:
            while True:
                with self._lock:
                    while not self._queue and not self._closing:
                        self._lock.wait()
                    give_up = self._give_up_at is not None and time.monotonic() >= self._give_up_at
                    if not self._queue or give_up:
                        return
                    batch = [self._queue[i] for i in range(min(self.batch_size, len(self._queue)))]
                try:
                    if connection is None:
                        connection = self._connect()
                    self._write(connection, batch)
                except sqlite3.Error as err:
                    if connection is not None and not _rolled_back(connection):
                        connection.close()
                        connection = None
                    code = _result_code(err)
                    if code not in _TRY_AGAIN:
                        self._fail(err)
                        return
                    if code not in _LOCKED and connection is not None:
                        connection.close()  # after a full disk or an I/O error: start afresh
                        connection = None
                    self._behind(err)
                    with self._lock:
                        wait_s = retry_s
                        if self._give_up_at is not None:
                            wait_s = min(wait_s, max(0.0, self._give_up_at - time.monotonic()))
                        self._lock.wait(wait_s)
                    retry_s = min(retry_s * 2, self.last_retry_s)
                    continue
                retry_s = self.first_retry_s
                self._written(batch)
        finally:
            if connection is not None:
                connection.close()
            with self._lock:
                self._lock.notify_all()  # waiters see the thread gone

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, isolation_level=None, timeout=self.busy_timeout_s, check_same_thread=False
        )
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        if self.on_connect is not None:
            self.on_connect(connection)
        return connection

    @staticmethod
    def _write(db: sqlite3.Connection, batch: list[Record]) -> None:
        """One transaction: every record of the batch is in the file after it, or none."""
        written: dict[SessionKey, int] = {}
        db.execute("BEGIN IMMEDIATE")
        for kind, key, values in batch:
            if kind == "session":
                cursor = db.execute(INSERT_SESSION, values)
                assert cursor.lastrowid is not None
                written[key] = cursor.lastrowid
            else:
                session_id = key.id if key.id is not None else written[key]
                db.execute(WRITES[kind], bind(values, session_id))
        db.execute("COMMIT")
        for key, session_id in written.items():  # numbers count only once committed
            key.id = session_id

    def _written(self, batch: list[Record]) -> None:
        caught_up = ""
        with self._lock:
            for _ in batch:
                self._queue.popleft()
            self._queued_samples -= sum(kind == "sample" for kind, _, _ in batch)
            self.written += len(batch)
            if not self._queue and self.behind_since is not None:
                late_s = time.monotonic() - self.behind_since
                caught_up = f"the records held for {late_s:.0f} s are in the file"
                self.behind_since = None
            self._lock.notify_all()
        if caught_up:
            log.info("records writer caught up: %s", caught_up)
            self._tell("caught-up", caught_up)

    def _behind(self, err: sqlite3.Error) -> None:
        with self._lock:
            self.error = str(err)
            first = self.behind_since is None
            if first:
                self.behind_since = time.monotonic()
        if first:
            log.warning("records writer: %s; keeping the records in memory", err)
            self._tell("behind", str(err))

    def _fail(self, err: sqlite3.Error) -> None:
        log.error("records writer: %s; no more records are written", err)
        with self._lock:
            self.failed = self.error = str(err)
            self._lock.notify_all()
        self._tell("failed", str(err))

    def _tell(self, state: str, detail: str) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(state, detail)
            except Exception:  # a listener's mistake must not stop the writing
                log.exception("records writer listener")


def _rolled_back(db: sqlite3.Connection) -> bool:
    """End a failed transaction; False if the connection is unusable."""
    if not db.in_transaction:
        return True
    try:
        db.execute("ROLLBACK")
    except sqlite3.Error:
        return False
    return True
