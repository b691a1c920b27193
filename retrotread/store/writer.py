"""The session writer: a thread of its own writes queued session records to the records, so a
busy or locked file, a checkpoint, a full disk or a database out of reach never delays a command
to the belt."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from retrotread.store.backend import Backend, Db, SqliteBackend
from retrotread.store.writes import INSERT_SESSION, WRITES, Values, bind

log = logging.getLogger(__name__)

# -- the session writer --------------------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    """Records the writer has not written: how many of each kind, and the last error."""

    pending: dict[str, int]
    dropped_samples: int = 0
    error: str = ""
    #: where the records not written wait, if not in memory ("in the local spool ...")
    kept: str = ""

    def __bool__(self) -> bool:
        return bool(self.pending) or self.dropped_samples > 0

    def describe(self) -> str:
        if not self:
            return "every record written"
        parts = [f"{count} {_PLURALS.get(kind, kind)}" for kind, count in self.pending.items()]
        not_written = f" not written yet, kept {self.kept}" if self.kept else " not written"
        said = ", ".join(parts) + not_written if parts else ""
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
    """A session row queued for the writer; ``id`` is its number once it is in the records.

    ``uid`` names the session wherever it is (a spool, a database): written again, it is
    recognised, not doubled.
    """

    __slots__ = ("id", "uid")

    def __init__(self, uid: str | None = None) -> None:
        self.id: int | None = None
        self.uid = uid or new_uid()


def new_uid() -> str:
    return uuid.uuid4().hex


#: (kind, the session it belongs to, its values with SESSION_ID for the session's number)
Record = tuple[str, SessionKey, Values]
#: told ("behind" | "caught-up" | "failed", detail), on the writer's thread
WriterListener = Callable[[str, str], None]


class WriterListeners:
    """Who hears a writer's state ("behind", "caught up", "failed"): added and removed from
    any thread, told outside the lock, and a listener's mistake never stops the writing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[WriterListener] = []

    def add(self, listener: WriterListener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def tell(self, state: str, detail: str) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(state, detail)
            except Exception:  # a listener's mistake must not stop the writing
                log.exception("records writer listener")


class Sink(Protocol):
    """What a batch of records becomes, inside the writer's transaction."""

    def write(self, backend: Backend, db: Db, batch: list[Record]) -> dict[SessionKey, int]:
        """Write the batch; the numbers of the session rows it wrote."""


class TableSink:
    """Records into the records' own tables (sessions, samples, events, blocks)."""

    def write(self, backend: Backend, db: Db, batch: list[Record]) -> dict[SessionKey, int]:
        written: dict[SessionKey, int] = {}
        for kind, key, values in batch:
            if kind == "session":
                written[key] = backend.insert_returning_id(db, INSERT_SESSION, values)
            else:
                session_id = key.id if key.id is not None else written[key]
                db.execute(WRITES[kind], bind(values, session_id))
        return written


class SessionWriter(Protocol):
    """What a recorder and the store ask of a session writer (:class:`RecordWriter`, or the
    spooled writer that keeps records for a database: ``retrotread.store.spool``)."""

    max_pending_samples: int
    #: where records wait while they cannot be written ("in memory", "in the local spool ...")
    holding: str
    #: what the records are written to, for people ("the records file", "the database")
    target: str

    @property
    def behind(self) -> bool: ...

    @property
    def pending(self) -> int: ...

    @property
    def closing(self) -> bool: ...

    @property
    def failed(self) -> str | None: ...

    @property
    def error(self) -> str: ...

    def subscribe(self, listener: WriterListener) -> Callable[[], None]: ...

    def begin_session(self, values: Values) -> SessionKey: ...

    def submit(self, kind: str, key: SessionKey, values: Values) -> bool: ...

    def wait_idle(self, timeout_s: float) -> bool: ...

    def wait_written(self, key: SessionKey, timeout_s: float) -> int | None: ...

    def backlog(self) -> Backlog: ...

    def close(self, timeout_s: float) -> Backlog: ...


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

    holding = "in memory"

    def __init__(
        self,
        target: Path | Backend,
        *,
        busy_timeout_s: float = 0.25,
        on_connect: Callable[[Any], None] | None = None,
        max_pending_samples: int = 100_000,
        sink: Sink | None = None,
    ) -> None:
        self.backend = target if isinstance(target, Backend) else SqliteBackend(target)
        self.target = "the records file" if self.backend.kind == "sqlite" else "the database"
        self.sink: Sink = sink or TableSink()
        #: called on the writer's thread after each batch is committed
        self.after_write: Callable[[], None] | None = None
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
        self._listeners = WriterListeners()
        self._thread = threading.Thread(
            target=self._run, name=f"records writer ({self.backend.location})", daemon=True
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
        return self._listeners.add(listener)

    def begin_session(self, values: Values) -> SessionKey:
        """Queue a session row (its values end with its ``uid``: one is added)."""
        key = SessionKey()
        self.submit("session", key, (*values, key.uid))
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
        connection: Db | None = None
        backend = self.backend
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
                except backend.errors as err:
                    if connection is not None and (
                        not _rolled_back(backend, connection) or backend.fresh_connection_after(err)
                    ):
                        _close_quietly(backend, connection)
                        connection = None
                    if backend.retryable(err) is None:
                        self._fail(err)
                        return
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
                _close_quietly(backend, connection)
            with self._lock:
                self._lock.notify_all()  # waiters see the thread gone

    def _connect(self) -> Db:
        connection = self.backend.connect(timeout_s=self.busy_timeout_s)
        if self.on_connect is not None:
            self.on_connect(connection)
        return connection

    def _write(self, db: Db, batch: list[Record]) -> None:
        """One transaction: every record of the batch is written after it, or none."""
        with self.backend.transaction(db):
            written = self.sink.write(self.backend, db, batch)
        for key, session_id in written.items():  # numbers count only once committed
            key.id = session_id
        if self.after_write is not None:
            self.after_write()

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
            else:
                self._lock.notify_all()
        if caught_up:
            # Told before a wait for the written records returns: the listeners (a recorder
            # saying so before its session ends) know as soon as the waiters do.
            log.info("records writer caught up: %s", caught_up)
            self._tell("caught-up", caught_up)
            with self._lock:
                self._lock.notify_all()

    def _behind(self, err: Exception) -> None:
        with self._lock:
            self.error = str(err)
            first = self.behind_since is None
            if first:
                self.behind_since = time.monotonic()
        if first:
            log.warning("records writer: %s; keeping the records in memory", err)
            self._tell("behind", str(err))

    def _fail(self, err: Exception) -> None:
        log.error("records writer: %s; no more records are written", err)
        with self._lock:
            self.error = str(err)
        self._tell("failed", str(err))  # before the waiters wake (as for "caught up")
        with self._lock:
            self.failed = str(err)
            self._lock.notify_all()

    def _tell(self, state: str, detail: str) -> None:
        self._listeners.tell(state, detail)


def _rolled_back(backend: Backend, db: Db) -> bool:
    """End a failed transaction; False if the connection is unusable."""
    if isinstance(db, sqlite3.Connection) and not db.in_transaction:
        return True
    try:
        db.execute("ROLLBACK")
    except backend.errors:
        return False
    return True


def _close_quietly(backend: Backend, db: Db) -> None:
    try:
        db.close()
    except backend.errors:
        log.debug("closing a connection that failed", exc_info=True)
