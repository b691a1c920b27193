"""A console's spool: the session records meant for a database, kept first in a local file.

A console recording into PostgreSQL writes each session record to a local SQLite file (the
spool's ``outbox``, numbered in order), exactly as it would write its own records file: so the
belt never waits on the network, and a database out of reach (a restart, a cable, a server
down for an hour) loses nothing, even if the console itself is stopped meanwhile. A forwarder
thread sends the outbox to the database in order, in batches, one transaction each; the
database keeps, per spool, the number of the last record it took (``spool_applied``), updated in
the same transaction. So a batch that went in but whose answer was lost is recognised when it
is sent again, and skipped: nothing is lost or doubled. Sessions are known by their ``uid``;
their number in the database comes back when their row is in.

Records reach the outbox as JSON values, the session's number standing as a slot to fill. The
outbox is emptied of what the database has taken; whatever a console leaves behind is sent by
the next one opened on the same spool.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from retrotread.store.backend import Backend, Db, PostgresBackend, PostgresDb, SqliteBackend
from retrotread.store.writer import (
    Backlog,
    Record,
    RecordWriter,
    SessionKey,
    WriterListener,
    WriterListeners,
)
from retrotread.store.writes import INSERT_SESSION, SESSION_ID, WRITES, Values

log = logging.getLogger(__name__)

#: the kinds of record that add a row (sent first), then those that update one
_INSERTED = tuple(kind for kind, sql in WRITES.items() if sql.lstrip().upper().startswith("INSERT"))
_UPDATED = tuple(kind for kind in WRITES if kind not in _INSERTED)
#: rows only ever added (never updated) go by COPY, several times faster than INSERTs; the
#: spool's count of what the database took keeps them from being added twice
_COPIED = {
    "sample": "COPY samples (session_id, at, offset_s, block_idx, target_mph, speed_mph, "
    "incline_pct, distance_m) FROM STDIN",
    "event": "COPY events (session_id, at, offset_s, kind, detail) FROM STDIN",
}


def _copy(db: Db, statement: str, rows: list[Values]) -> None:
    connection = cast(PostgresDb, db).connection
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    session_uid TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS spool (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


def encode(values: Values) -> str:
    """A record's values as JSON; where the session's number goes is listed in ``slots``."""
    slots = [i for i, v in enumerate(values) if v is SESSION_ID]
    plain = [None if v is SESSION_ID else v for v in values]
    return json.dumps({"values": plain, "slots": slots})


def decode(text: str, session_id: int) -> Values:
    record = json.loads(text)
    values: list[Any] = record["values"]
    for slot in record["slots"]:
        values[slot] = session_id
    return tuple(values)


def open_spool(path: Path, timeout_s: float = 5.0) -> tuple[sqlite3.Connection, str]:
    """The spool file, created if new; its connection and the spool's own name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(
        path, isolation_level=None, timeout=timeout_s, check_same_thread=False
    )
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.executescript(OUTBOX_SCHEMA)
        connection.execute(
            "INSERT OR IGNORE INTO spool (key, value) VALUES ('name', ?)", (uuid.uuid4().hex,)
        )
        name: str = connection.execute("SELECT value FROM spool WHERE key = 'name'").fetchone()[0]
    except sqlite3.Error:
        connection.close()
        raise
    return connection, name


class OutboxSink:
    """The session writer's records, into the spool's outbox (in the writer's transaction;
    the outbox is made there too if new, so a spool busy when the console started is no
    obstacle)."""

    def __init__(self) -> None:
        self._ready: Db | None = None

    def write(self, backend: Backend, db: Db, batch: list[Record]) -> dict[SessionKey, int]:
        if self._ready is not db:
            for statement in OUTBOX_SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            self._ready = db
        db.executemany(
            "INSERT INTO outbox (kind, session_uid, record) VALUES (?, ?, ?)",
            [(kind, key.uid, encode(values)) for kind, key, values in batch],
        )
        return {}


class Forwarder:
    """Sends the spool's outbox to the database, on a thread of its own.

    Wakes when the writer has added records (``wake``), and otherwise retries on a timer while
    the database is out of reach (backing off to ``last_retry_s``). Listeners hear "behind"
    when the database cannot be reached, "caught-up" when the outbox is empty again, and
    "failed" if the database refuses the records for good (they stay in the spool).
    """

    batch_size = 2000
    first_retry_s = 0.05
    last_retry_s = 2.0
    #: seconds a read of the spool waits for another process's lock before trying later
    spool_timeout_s = 0.25

    def __init__(
        self,
        spool: Path,
        database: PostgresBackend,
        tell: Callable[[str, str], None],
        *,
        connect_timeout_s: float = 3.0,
    ) -> None:
        self.spool = spool
        self.database = database
        self.connect_timeout_s = connect_timeout_s
        self.sent = 0
        self.error = ""
        self.failed: str | None = None
        self.behind_since: float | None = None
        self._tell = tell
        self._lock = threading.Condition()
        self._dirty = True  # the outbox may hold records (at start: what was left before)
        self._idle = False
        self._closing = False
        self._give_up_at: float | None = None
        self._waiting: dict[str, SessionKey] = {}  # uid -> key, for keys without a number yet
        self._local: sqlite3.Connection | None = None  # opened on the thread (it may be busy)
        self.name = ""
        self._thread = threading.Thread(
            target=self._run, name=f"records forwarder ({database.location})", daemon=True
        )
        self._thread.start()

    # -- the callers' side -------------------------------------------------------------------

    def watch(self, key: SessionKey) -> None:
        """Give ``key`` its number when its session row is in the database."""
        with self._lock:
            self._waiting[key.uid] = key

    def wake(self) -> None:
        with self._lock:
            self._dirty = True
            self._idle = False
            self._lock.notify_all()

    @property
    def behind(self) -> bool:
        return self.behind_since is not None

    def _stopped(self) -> bool:
        return self.failed is not None or not self._thread.is_alive()

    def wait_idle(self, timeout_s: float) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self._idle or self._stopped(), timeout_s) and (
                self._idle
            )

    def wait_written(self, key: SessionKey, timeout_s: float) -> int | None:
        with self._lock:
            self._lock.wait_for(lambda: key.id is not None or self._stopped(), timeout_s)
        return key.id

    def waiting(self) -> Counter[str]:
        """The records in the outbox, by kind (read on a connection of the caller's own)."""
        connection = sqlite3.connect(self.spool, timeout=1.0)
        try:
            rows = connection.execute("SELECT kind, count(*) FROM outbox GROUP BY kind").fetchall()
        except sqlite3.Error:
            return Counter()
        finally:
            connection.close()
        return Counter({kind: count for kind, count in rows})

    def close(self, timeout_s: float) -> None:
        """Send what is in the outbox, waiting at most ``timeout_s``; the rest stays in it."""
        with self._lock:
            self._closing = True
            self._give_up_at = time.monotonic() + timeout_s
            self._lock.notify_all()
        self._thread.join(timeout_s + self.connect_timeout_s + 1.0)

    # -- the forwarder's thread ----------------------------------------------------------------

    def _run(self) -> None:
        remote: Db | None = None
        retry_s = self.first_retry_s
        refused: tuple[type[Exception], ...] = (LookupError, *self.database.errors)
        try:
            while True:
                with self._lock:
                    while not self._dirty and not self._closing:
                        self._idle = True
                        self._lock.notify_all()
                        self._lock.wait()
                    if self._give_up_at is not None and time.monotonic() >= self._give_up_at:
                        return
                    self._dirty = False
                try:
                    if self._local is None:
                        self._local, self.name = open_spool(self.spool, self.spool_timeout_s)
                    rows = self._local.execute(
                        "SELECT seq, kind, session_uid, record FROM outbox ORDER BY seq LIMIT ?",
                        (self.batch_size,),
                    ).fetchall()
                except sqlite3.Error as err:  # the spool is busy: the records wait in it
                    log.info("records forwarder: the spool %s: %s", self.spool, err)
                    retry_s = self._wait_to_retry(retry_s)
                    continue
                if not rows:
                    if self._closing:
                        return
                    self._caught_up()
                    continue
                try:
                    if remote is None:
                        remote = self.database.connect(timeout_s=self.connect_timeout_s)
                    numbers = self._send(remote, rows)
                except refused as err:
                    if remote is not None:
                        _close_quietly(remote)
                        remote = None
                    if self.database.retryable(err) is None:
                        self._fail(err)
                        return
                    self._behind(err)
                    retry_s = self._wait_to_retry(retry_s)
                    continue
                retry_s = self.first_retry_s
                with contextlib.suppress(sqlite3.Error):  # if not now, the next round skips them
                    self._local.execute("DELETE FROM outbox WHERE seq <= ?", (rows[-1][0],))
                self._numbered(numbers)
                with self._lock:
                    self.sent += len(rows)
                    self._dirty = True  # there may be more
        finally:
            if remote is not None:
                _close_quietly(remote)
            if self._local is not None:
                self._local.close()
            with self._lock:
                self._lock.notify_all()

    def _wait_to_retry(self, retry_s: float) -> float:
        """Wait ``retry_s`` (less if closing) before trying again; the next wait."""
        with self._lock:
            self._dirty = True
            wait_s = retry_s
            if self._give_up_at is not None:
                wait_s = min(wait_s, max(0.0, self._give_up_at - time.monotonic()))
            self._lock.wait(wait_s)
        return min(retry_s * 2, self.last_retry_s)

    def _send(self, db: Db, rows: list[tuple[int, str, str, str]]) -> dict[str, int]:
        """One transaction: the records past what the database took from this spool before."""
        backend = self.database
        numbers: dict[str, int] = {}
        with backend.transaction(db):
            db.execute(
                "INSERT INTO spool_applied (spool, seq) VALUES (?, 0) ON CONFLICT (spool) "
                "DO NOTHING",
                (self.name,),
            )
            applied = db.execute(
                "SELECT seq FROM spool_applied WHERE spool = ? FOR UPDATE", (self.name,)
            ).fetchone()[0]
            fresh = [row for row in rows if row[0] > applied]
            # One statement per kind: sessions first, then the rows added (blocks before the
            # updates that refer to them), then the updates. Each kind keeps its own order
            # (samples and events are read in no other; a later progress update wins).
            inserts: dict[str, list[Values]] = {kind: [] for kind in _INSERTED}
            updates: list[tuple[str, Values]] = []
            for _, kind, uid, record in fresh:
                if kind == "session":
                    numbers[uid] = self._insert_session(db, decode(record, 0))
                    continue
                if uid not in numbers:
                    numbers[uid] = self._number(db, uid)
                values = decode(record, numbers[uid])
                if kind in inserts:
                    inserts[kind].append(values)
                else:
                    updates.append((kind, values))
            for kind, values_list in inserts.items():
                if values_list and kind in _COPIED:
                    _copy(db, _COPIED[kind], values_list)
                elif values_list:
                    db.executemany(WRITES[kind], values_list)
            for kind in _UPDATED:  # each kind touches its own columns: they commute
                same = [values for update_kind, values in updates if update_kind == kind]
                if same:
                    db.executemany(WRITES[kind], same)
            db.execute("UPDATE spool_applied SET seq = ? WHERE spool = ?", (rows[-1][0], self.name))
        return numbers

    def _insert_session(self, db: Db, values: Values) -> int:
        row = db.execute(
            f"{INSERT_SESSION} ON CONFLICT (uid) DO NOTHING RETURNING id", values
        ).fetchone()
        return int(row[0]) if row is not None else self._number(db, str(values[-1]))

    @staticmethod
    def _number(db: Db, uid: str) -> int:
        row = db.execute("SELECT id FROM sessions WHERE uid = ?", (uid,)).fetchone()
        if row is None:
            # the session row went to another database (the URL changed under the spool)
            raise LookupError(f"session {uid} is not in the database")
        return int(row[0])

    def _numbered(self, numbers: dict[str, int]) -> None:
        with self._lock:
            for uid, number in numbers.items():
                key = self._waiting.pop(uid, None)
                if key is not None:
                    key.id = number
            self._lock.notify_all()

    def _caught_up(self) -> None:
        with self._lock:
            since = self.behind_since
            self.behind_since = None
        if since is not None:
            # Told before anyone waiting for an idle forwarder wakes: "idle" means the
            # listeners know it caught up too (a recorder then says so before its session ends).
            detail = f"the records held for {time.monotonic() - since:.0f} s are in the database"
            log.info("records forwarder caught up: %s", detail)
            self._tell("caught-up", detail)
        with self._lock:
            self._idle = not self._dirty
            self._lock.notify_all()

    def _behind(self, err: Exception) -> None:
        with self._lock:
            self.error = str(err).strip() or type(err).__name__
            first = self.behind_since is None
            if first:
                self.behind_since = time.monotonic()
        if first:
            log.warning("records forwarder: %s; keeping the records in %s", err, self.spool)
            self._tell("behind", f"the database is out of reach: {self.error}")

    def _fail(self, err: Exception) -> None:
        log.error("records forwarder: %s; the records stay in %s", err, self.spool)
        with self._lock:
            self.error = str(err)
        # before the waiters wake (as for "caught up")
        self._tell("failed", f"{err} (the records stay in {self.spool})")
        with self._lock:
            self.failed = str(err)
            self._lock.notify_all()


def _close_quietly(db: Db) -> None:
    try:
        db.close()
    except Exception:  # a connection that already failed: nothing more to learn from it
        log.debug("closing a failed connection", exc_info=True)


class SpooledWriter:
    """The session writer for a database: records go to the local spool at once (a
    :class:`RecordWriter` with an outbox) and from there to the database (a
    :class:`Forwarder`). Same shape as :class:`RecordWriter`; a session's number is its number
    in the database, known once its row is there."""

    target = "the database"

    def __init__(
        self,
        spool: Path,
        database: PostgresBackend,
        *,
        busy_timeout_s: float = 0.25,
        on_connect: Callable[[Any], None] | None = None,
    ) -> None:
        self.spool = spool
        self.holding = f"in the local spool {spool}"
        self._listeners = WriterListeners()
        self.forwarder = Forwarder(spool, database, self._tell)
        self.local = RecordWriter(
            SqliteBackend(spool),
            busy_timeout_s=busy_timeout_s,
            on_connect=on_connect,
            sink=OutboxSink(),
        )
        self.local.after_write = self.forwarder.wake
        self.local.subscribe(self._tell)

    # -- as a RecordWriter ---------------------------------------------------------------------

    @property
    def max_pending_samples(self) -> int:
        return self.local.max_pending_samples

    @max_pending_samples.setter
    def max_pending_samples(self, count: int) -> None:
        self.local.max_pending_samples = count

    @property
    def behind(self) -> bool:
        return self.local.behind or self.forwarder.behind

    @property
    def pending(self) -> int:
        return self.local.pending + sum(self.forwarder.waiting().values())

    @property
    def closing(self) -> bool:
        return self.local.closing

    @property
    def failed(self) -> str | None:
        return self.local.failed or self.forwarder.failed

    @property
    def error(self) -> str:
        return self.forwarder.error or self.local.error

    def subscribe(self, listener: WriterListener) -> Callable[[], None]:
        return self._listeners.add(listener)

    def begin_session(self, values: Values) -> SessionKey:
        key = SessionKey()
        self.forwarder.watch(key)
        self.local.submit("session", key, (*values, key.uid))
        return key

    def submit(self, kind: str, key: SessionKey, values: Values) -> bool:
        return self.local.submit(kind, key, values)

    def wait_idle(self, timeout_s: float) -> bool:
        until = time.monotonic() + timeout_s
        return self.local.wait_idle(timeout_s) and self.forwarder.wait_idle(
            max(0.0, until - time.monotonic())
        )

    def wait_written(self, key: SessionKey, timeout_s: float) -> int | None:
        return self.forwarder.wait_written(key, timeout_s)

    def backlog(self) -> Backlog:
        memory = self.local.backlog()
        pending = Counter(memory.pending) + self.forwarder.waiting()
        return Backlog(
            dict(pending),
            memory.dropped_samples,
            self.forwarder.failed or self.forwarder.error or memory.error,
            kept=self.holding if pending else "",
        )

    def close(self, timeout_s: float) -> Backlog:
        until = time.monotonic() + timeout_s
        self.local.close(timeout_s)
        self.forwarder.close(max(0.0, until - time.monotonic()))
        return self.backlog()

    def _tell(self, state: str, detail: str) -> None:
        self._listeners.tell(state, detail)
