"""Session records in SQLite: clients, sessions, blocks, telemetry samples, events, outcomes.

One file in the platform data directory (``retrotread.paths.data_dir()``), or wherever ``--db``
points. The database runs in WAL mode. A session is written *as it runs*, by a thread of its own
(:class:`RecordWriter`): the event loop only queues each record, so a busy or locked file, a
WAL checkpoint or a full disk never delays a command to the belt. The writer commits what is
queued in short transactions, within milliseconds while the file is free, so a crash or SIGKILL
loses at most the records of the last moment. While the file cannot be written (another
process holds a lock for longer than the busy timeout, the disk is full) the records wait in
memory (bounded) and are written, each exactly once, when it can be written again; a session's
end waits a bounded time for them and says what could not be written.

A session row is created with status ``running`` when the program starts and gets its final
status (completed, stopped, interrupted, fault) only when the session ends. A row still
``running`` whose process is gone was cut off (crash, kill, power): the next :class:`Store`
opened on the file marks it ``interrupted`` and dates its end at its last sample.

The schema is versioned with ``PRAGMA user_version``; :data:`MIGRATIONS` holds one script per
version and opening a store brings an older file up to date.

Front ends use it like this::

    store = Store.open(path)                       # None: the default file
    recorder = SessionRecorder(store, session, client=store.client("Ana"))
    session.subscribe(recorder)
    summary = await session.run()
    store.record_outcome(recorder.session_id, OperatorOutcome.COMPLETED, "felt good")
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import enum
import logging
import os
import socket
import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from types import TracebackType

from retrotread.errors import RetrotreadError
from retrotread.events import (
    BlockExtended,
    BlockSkipped,
    BlockStarted,
    CommandConfirmed,
    CommandIssued,
    CommandUnconfirmed,
    Countdown,
    CueDue,
    Event,
    Fault,
    Notice,
    Paused,
    ProgramFinished,
    ProgramStarted,
    ProgramStopped,
    Resumed,
    SessionEnded,
    TelemetryReceived,
    Tick,
)
from retrotread.paths import data_dir
from retrotread.program import Program
from retrotread.progression import (
    NextSession,
    OperatorOutcome,
    Phase,
    SessionEvidence,
    plan_next,
    retro_content,
)
from retrotread.session import Belt, Session
from retrotread.units import format_number

log = logging.getLogger(__name__)

DB_NAME = "retrotread.sqlite3"


class StoreError(RetrotreadError):
    """The records cannot be read or written, or ask for something that is not there."""


class Status(enum.StrEnum):
    """How a recorded session ended (``running`` until it does)."""

    RUNNING = "running"
    COMPLETED = "completed"
    UNCONFIRMED = "unconfirmed"  # played to the end; the machine could not confirm it
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    FAULT = "fault"


MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema
    """
    CREATE TABLE clients (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        note TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    );
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        client_id INTEGER REFERENCES clients(id),
        program TEXT NOT NULL,
        program_source TEXT NOT NULL DEFAULT '',
        program_toml TEXT,
        device TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        status TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        phase TEXT,
        interval_s INTEGER NOT NULL DEFAULT 0,
        handrail TEXT,
        plan_reason TEXT NOT NULL DEFAULT '',
        blocks_total INTEGER NOT NULL,
        blocks_done INTEGER NOT NULL DEFAULT 0,
        retro_s REAL NOT NULL DEFAULT 0,
        elapsed_s REAL NOT NULL DEFAULT 0,
        distance_m REAL NOT NULL DEFAULT 0,
        belt_stopped INTEGER,
        outcome TEXT,
        note TEXT NOT NULL DEFAULT '',
        pid INTEGER,
        host TEXT
    );
    CREATE INDEX sessions_by_client ON sessions(client_id, started_at);
    CREATE INDEX sessions_by_status ON sessions(status);
    CREATE TABLE blocks (
        session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        handrail TEXT NOT NULL,
        planned_s INTEGER NOT NULL,
        target_mph REAL,
        incline_pct REAL NOT NULL,
        started_at REAL NOT NULL,
        start_offset_s REAL NOT NULL,
        actual_s REAL,
        extended_s INTEGER NOT NULL DEFAULT 0,
        result TEXT NOT NULL,
        PRIMARY KEY (session_id, idx)
    );
    CREATE TABLE samples (
        session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        at REAL NOT NULL,
        offset_s REAL NOT NULL,
        block_idx INTEGER,
        target_mph REAL,
        speed_mph REAL NOT NULL,
        incline_pct REAL NOT NULL,
        distance_m REAL NOT NULL
    );
    CREATE INDEX samples_by_session ON samples(session_id, at);
    CREATE TABLE events (
        session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        at REAL NOT NULL,
        offset_s REAL NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX events_by_session ON events(session_id, at);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


# -- rows --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    id: int
    name: str
    note: str
    created_at: float


@dataclass(frozen=True)
class ClientSummary:
    client: Client
    sessions: int
    last_session_at: float | None


@dataclass(frozen=True)
class SessionRecord:
    id: int
    client: str | None
    program: str
    program_source: str
    program_toml: str | None
    device: str
    started_at: float
    ended_at: float | None
    status: Status
    detail: str
    phase: Phase | None
    interval_s: int
    handrail: str | None
    plan_reason: str
    blocks_total: int
    blocks_done: int
    retro_s: float
    elapsed_s: float
    distance_m: float
    belt_stopped: bool | None
    outcome: OperatorOutcome | None
    note: str

    @property
    def day(self) -> date:
        return datetime.fromtimestamp(self.started_at).date()

    def evidence(self) -> SessionEvidence:
        return SessionEvidence(
            day=self.day,
            phase=self.phase,
            interval_s=self.interval_s,
            finished=self.status is Status.COMPLETED,
            outcome=self.outcome,
            session_id=self.id,
        )


@dataclass(frozen=True)
class BlockRecord:
    idx: int
    kind: str
    title: str
    handrail: str
    planned_s: int
    target_mph: float | None
    incline_pct: float
    started_at: float
    start_offset_s: float
    actual_s: float | None
    extended_s: int
    result: str


@dataclass(frozen=True)
class Sample:
    at: float  # wall clock, seconds since the epoch
    offset_s: float  # seconds since the program started
    block_idx: int | None
    target_mph: float | None
    speed_mph: float
    incline_pct: float
    distance_m: float


@dataclass(frozen=True)
class EventRecord:
    at: float
    offset_s: float
    kind: str
    detail: str


_SESSION_COLUMNS = """s.id, c.name, s.program, s.program_source, s.program_toml, s.device,
    s.started_at, s.ended_at, s.status, s.detail, s.phase, s.interval_s, s.handrail,
    s.plan_reason, s.blocks_total, s.blocks_done, s.retro_s, s.elapsed_s, s.distance_m,
    s.belt_stopped, s.outcome, s.note"""


def _session_record(row: sqlite3.Row) -> SessionRecord:
    values = tuple(row)
    return SessionRecord(
        id=values[0],
        client=values[1],
        program=values[2],
        program_source=values[3],
        program_toml=values[4],
        device=values[5],
        started_at=values[6],
        ended_at=values[7],
        status=Status(values[8]),
        detail=values[9],
        phase=Phase(values[10]) if values[10] else None,
        interval_s=values[11],
        handrail=values[12],
        plan_reason=values[13],
        blocks_total=values[14],
        blocks_done=values[15],
        retro_s=values[16],
        elapsed_s=values[17],
        distance_m=values[18],
        belt_stopped=None if values[19] is None else bool(values[19]),
        outcome=OperatorOutcome(values[20]) if values[20] else None,
        note=values[21],
    )


def default_db_path() -> Path:
    return data_dir() / DB_NAME


def _process_alive(pid: int) -> bool:
    if pid <= 0:  # 0 and negative numbers name process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


# -- what a session's records write ---------------------------------------------------------------

_INSERT_SESSION = (
    "INSERT INTO sessions (client_id, program, program_source, program_toml, device, "
    "started_at, status, phase, interval_s, handrail, plan_reason, blocks_total, pid, host) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

#: The statement for each kind of record; the session's id goes where ``SESSION_ID`` is.
_WRITES: dict[str, str] = {
    "sample": "INSERT INTO samples (session_id, at, offset_s, block_idx, target_mph, speed_mph, "
    "incline_pct, distance_m) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    "event": "INSERT INTO events (session_id, at, offset_s, kind, detail) VALUES (?, ?, ?, ?, ?)",
    "block": "INSERT OR REPLACE INTO blocks (session_id, idx, kind, title, handrail, planned_s, "
    "target_mph, incline_pct, started_at, start_offset_s, actual_s, extended_s, result) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "end_block": "UPDATE blocks SET actual_s = ?, result = ? WHERE session_id = ? AND idx = ?",
    "extend_block": "UPDATE blocks SET extended_s = extended_s + ? WHERE session_id = ? "
    "AND idx = ?",
    "progress": "UPDATE sessions SET blocks_done = ?, retro_s = ?, elapsed_s = ? WHERE id = ?",
    "end_session": "UPDATE sessions SET ended_at = ?, status = ?, detail = ?, distance_m = ?, "
    "belt_stopped = ? WHERE id = ?",
}


class _SessionIdSlot:
    """Stands in a record's values for the id of a session row not yet written."""

    def __repr__(self) -> str:
        return "<session id>"


SESSION_ID = _SessionIdSlot()

Values = tuple[object, ...]


def _bind(values: Values, session_id: int) -> Values:
    return tuple(session_id if v is SESSION_ID else v for v in values)


def _session_values(
    client: Client | None,
    program: Program,
    device: str,
    started_at: float,
    program_toml: str | None,
    plan_reason: str,
) -> Values:
    phase, interval = retro_content(program)
    retro = [s.block.handrail for s in program.steps if s.kind.is_retro]
    return (
        client.id if client else None,
        program.name,
        program.source,
        program_toml,
        device,
        started_at,
        Status.RUNNING.value,
        phase.value if phase else None,
        interval,
        retro[0].value if retro else None,
        plan_reason,
        len(program.steps),
        os.getpid(),
        socket.gethostname(),
    )


def _sample_values(sample: Sample) -> Values:
    return (
        SESSION_ID,
        sample.at,
        sample.offset_s,
        sample.block_idx,
        sample.target_mph,
        sample.speed_mph,
        sample.incline_pct,
        sample.distance_m,
    )


def _event_values(event: EventRecord) -> Values:
    return (SESSION_ID, event.at, event.offset_s, event.kind, event.detail)


def _block_values(block: BlockRecord) -> Values:
    return (
        SESSION_ID,
        block.idx,
        block.kind,
        block.title,
        block.handrail,
        block.planned_s,
        block.target_mph,
        block.incline_pct,
        block.started_at,
        block.start_offset_s,
        block.actual_s,
        block.extended_s,
        block.result,
    )


# -- the store ---------------------------------------------------------------------------------


class Store:
    """The records file. Use :meth:`open`; close it (or use ``with``) when done.

    Reads and the operator's own changes (clients, outcomes) go through :attr:`db` in the
    caller's thread; sessions being recorded go through :attr:`writer`, a thread of its own.
    """

    #: seconds a write by the session writer waits for a lock before it retries later
    writer_busy_timeout_s = 0.25
    #: seconds a read waits for the writer to write what is queued
    settle_timeout_s = 2.0
    #: seconds closing the store waits for the writer to write what is queued
    flush_timeout_s = 5.0

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self.db = connection
        self.path = path
        self._writer: RecordWriter | None = None
        #: called with each connection the writer opens (its own PRAGMAs; tests use it)
        self.on_connect: Callable[[sqlite3.Connection], None] | None = None

    @classmethod
    def open(cls, path: Path | str | None = None) -> Store:
        target = Path(path) if path is not None else default_db_path()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(target, isolation_level=None, timeout=5.0)
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"cannot open the records at {target}: {err}") from err
        store = cls(connection, target)
        try:
            store._prepare()
        except sqlite3.DatabaseError as err:
            connection.close()
            raise StoreError(f"{target} is not a retrotread records file: {err}") from err
        except StoreError:
            connection.close()
            raise
        return store

    def close(self) -> Backlog | None:
        """Close the file, after a bounded wait for the session writer (what it could not
        write is logged, and returned)."""
        backlog = None
        if self._writer is not None:
            backlog = self._writer.close(self.flush_timeout_s)
            if backlog:
                log.warning("closing %s: %s", self.path, backlog.describe())
        self.db.close()
        return backlog

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _prepare(self) -> None:
        db = self.db
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a killed process (it is in the WAL file);
        # only a power cut can lose the last transactions.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        self.migrate()
        self.mark_interrupted()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        version: int = self.db.execute("PRAGMA user_version").fetchone()[0]
        return version

    def migrate(self) -> None:
        """Bring the file up to :data:`SCHEMA_VERSION`, one migration per transaction."""
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer retrotread (schema {current}; this one "
                f"knows up to {SCHEMA_VERSION}): upgrade retrotread to read it"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            script = MIGRATIONS[version - 1]
            # executescript commits first; wrap each migration in its own transaction.
            self.db.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version={version};")
            self.db.execute("COMMIT")

    def mark_interrupted(self) -> list[int]:
        """Sessions left ``running`` by a process that is gone become ``interrupted``."""
        host = socket.gethostname()
        rows = self.db.execute(
            "SELECT id, pid, host FROM sessions WHERE status = ?", (Status.RUNNING.value,)
        ).fetchall()
        cut_off = [
            session_id
            for session_id, pid, row_host in rows
            if row_host != host or pid is None or not _process_alive(pid)
        ]
        for session_id in cut_off:
            with self._transaction() as db:
                last = db.execute(
                    "SELECT max(at) FROM (SELECT max(at) AS at FROM samples WHERE session_id = ?"
                    " UNION ALL SELECT max(at) FROM events WHERE session_id = ?)",
                    (session_id, session_id),
                ).fetchone()[0]
                db.execute(
                    "UPDATE sessions SET status = ?, ended_at = COALESCE(?, started_at), "
                    "detail = ? WHERE id = ?",
                    (
                        Status.INTERRUPTED.value,
                        last,
                        "the process ended mid-session (crash, kill or power loss); "
                        "records up to the last sample",
                        session_id,
                    ),
                )
                db.execute(
                    "UPDATE blocks SET result = 'interrupted' WHERE session_id = ? "
                    "AND result = 'running'",
                    (session_id,),
                )
        return cut_off

    # -- clients -------------------------------------------------------------------------------

    def add_client(self, name: str, note: str = "") -> Client:
        clean = " ".join(name.split())
        if not clean:
            raise StoreError("a client needs a name")
        existing = self.find_client(clean)
        if existing is not None:
            raise StoreError(f"there is already a client named {existing.name!r}")
        cursor = self.db.execute(
            "INSERT INTO clients (name, note, created_at) VALUES (?, ?, ?)",
            (clean, note, time.time()),
        )
        assert cursor.lastrowid is not None
        return Client(cursor.lastrowid, clean, note, time.time())

    def find_client(self, name: str) -> Client | None:
        row = self.db.execute(
            "SELECT id, name, note, created_at FROM clients WHERE name = ?",
            (" ".join(name.split()),),
        ).fetchone()
        return Client(*row) if row else None

    def client(self, name: str) -> Client:
        """The client called ``name`` (any case); the error suggests close names."""
        found = self.find_client(name)
        if found is not None:
            return found
        names = [c.client.name for c in self.clients()]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(repr(n) for n in close)}?)" if close else ""
        add = f"add one with: retrotread clients add {name!r}"
        raise StoreError(f"no client named {name!r}{hint}; {add}")

    def clients(self) -> list[ClientSummary]:
        self._settle()
        rows = self.db.execute(
            "SELECT c.id, c.name, c.note, c.created_at, count(s.id), max(s.started_at) "
            "FROM clients c LEFT JOIN sessions s ON s.client_id = c.id "
            "GROUP BY c.id ORDER BY c.name COLLATE NOCASE"
        ).fetchall()
        return [ClientSummary(Client(*row[:4]), row[4], row[5]) for row in rows]

    # -- sessions, written by SessionRecorder (through the writer) or directly ----------------

    def begin_session(
        self,
        *,
        client: Client | None,
        program: Program,
        device: str,
        started_at: float,
        program_toml: str | None = None,
        plan_reason: str = "",
    ) -> int:
        values = _session_values(client, program, device, started_at, program_toml, plan_reason)
        cursor = self.db.execute(_INSERT_SESSION, values)
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def add_sample(self, session_id: int, sample: Sample) -> None:
        self.db.execute(_WRITES["sample"], _bind(_sample_values(sample), session_id))

    def add_event(self, session_id: int, event: EventRecord) -> None:
        self.db.execute(_WRITES["event"], _bind(_event_values(event), session_id))

    def begin_block(self, session_id: int, block: BlockRecord) -> None:
        self.db.execute(_WRITES["block"], _bind(_block_values(block), session_id))

    def end_block(self, session_id: int, idx: int, actual_s: float, result: str) -> None:
        self.db.execute(_WRITES["end_block"], (actual_s, result, session_id, idx))

    def extend_block(self, session_id: int, idx: int, seconds: int) -> None:
        self.db.execute(_WRITES["extend_block"], (seconds, session_id, idx))

    def update_progress(
        self, session_id: int, *, blocks_done: int, retro_s: float, elapsed_s: float
    ) -> None:
        self.db.execute(_WRITES["progress"], (blocks_done, retro_s, elapsed_s, session_id))

    def end_session(
        self,
        session_id: int,
        *,
        ended_at: float,
        status: Status,
        detail: str,
        distance_m: float,
        belt_stopped: bool,
    ) -> None:
        self.db.execute(
            _WRITES["end_session"],
            (ended_at, status.value, detail, distance_m, int(belt_stopped), session_id),
        )

    @property
    def writer(self) -> RecordWriter:
        """The thread that writes sessions as they run (started on first use)."""
        if self._writer is None:
            self._writer = RecordWriter(
                self.path, busy_timeout_s=self.writer_busy_timeout_s, on_connect=self.on_connect
            )
        return self._writer

    def _settle(self) -> None:
        """Let queued session records reach the file before a read (read your own writes).

        Waits only while the writer is making progress, and at most ``settle_timeout_s``: a
        locked file gives the records as they stand rather than a frozen caller.
        """
        writer = self._writer
        if writer is not None and not writer.behind:
            writer.wait_idle(self.settle_timeout_s)

    def record_outcome(self, session_id: int, outcome: OperatorOutcome, note: str = "") -> None:
        """The operator's word on how the session went; progression counts on it."""
        self._settle()
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE sessions SET outcome = ?, note = ? WHERE id = ?",
                (outcome.value, note, session_id),
            ).rowcount
            if not changed:
                raise StoreError(f"no session #{session_id} in {self.path}")
            db.execute(
                "INSERT INTO events (session_id, at, offset_s, kind, detail) "
                "SELECT id, ?, ?, 'outcome', ? FROM sessions WHERE id = ?",
                (
                    time.time(),
                    0.0,
                    f"{outcome.value}: {note}" if note else outcome.value,
                    session_id,
                ),
            )

    # -- reading -------------------------------------------------------------------------------

    def session(self, session_id: int) -> SessionRecord:
        self._settle()
        row = self.db.execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions s LEFT JOIN clients c "
            "ON c.id = s.client_id WHERE s.id = ?",
            (session_id,),
        ).fetchone()
        if row is None:
            raise StoreError(f"no session #{session_id} in {self.path}")
        return _session_record(row)

    def sessions(
        self, client: Client | None = None, limit: int | None = None
    ) -> list[SessionRecord]:
        """Sessions, oldest first (the last ``limit`` of them); one client's, or everyone's."""
        self._settle()
        where, params = ("WHERE s.client_id = ?", [client.id]) if client else ("", [])
        query = (
            f"SELECT {_SESSION_COLUMNS} FROM sessions s LEFT JOIN clients c "
            f"ON c.id = s.client_id {where} ORDER BY s.started_at DESC, s.id DESC"
        )
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        rows = self.db.execute(query, params).fetchall()
        return [_session_record(row) for row in reversed(rows)]

    def latest_session(self) -> SessionRecord | None:
        found = self.sessions(limit=1)
        return found[0] if found else None

    def blocks(self, session_id: int) -> list[BlockRecord]:
        self._settle()
        rows = self.db.execute(
            "SELECT idx, kind, title, handrail, planned_s, target_mph, incline_pct, started_at, "
            "start_offset_s, actual_s, extended_s, result FROM blocks WHERE session_id = ? "
            "ORDER BY idx",
            (session_id,),
        ).fetchall()
        return [BlockRecord(*row) for row in rows]

    def samples(self, session_id: int) -> list[Sample]:
        self._settle()
        rows = self.db.execute(
            "SELECT at, offset_s, block_idx, target_mph, speed_mph, incline_pct, distance_m "
            "FROM samples WHERE session_id = ? ORDER BY at, rowid",
            (session_id,),
        ).fetchall()
        return [Sample(*row) for row in rows]

    def events(self, session_id: int) -> list[EventRecord]:
        self._settle()
        rows = self.db.execute(
            "SELECT at, offset_s, kind, detail FROM events WHERE session_id = ? ORDER BY at, rowid",
            (session_id,),
        ).fetchall()
        return [EventRecord(*row) for row in rows]

    # -- progression ---------------------------------------------------------------------------

    def evidence(self, client: Client) -> list[SessionEvidence]:
        return [s.evidence() for s in self.sessions(client) if s.status is not Status.RUNNING]

    def next_session(self, client: Client, today: date | None = None) -> NextSession:
        """The client's next session (a generated program) and the reason for it."""
        return plan_next(self.evidence(client), today or date.today())


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
                cursor = db.execute(_INSERT_SESSION, values)
                assert cursor.lastrowid is not None
                written[key] = cursor.lastrowid
            else:
                session_id = key.id if key.id is not None else written[key]
                db.execute(_WRITES[kind], _bind(values, session_id))
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


# -- recording a session as it runs --------------------------------------------------------------

_STATUS_FOR_OUTCOME = {
    "completed": Status.COMPLETED,
    "unconfirmed": Status.UNCONFIRMED,
    "stopped": Status.STOPPED,
    "interrupted": Status.INTERRUPTED,
    "fault": Status.FAULT,
}


def describe_event(event: Event) -> tuple[str, str] | None:
    """(kind, detail) for the events worth keeping; ticks, countdowns and telemetry are not."""
    match event:
        case BlockStarted(step=step):
            return "block", f"{step.index + 1} {step.kind.value} {step.title}: {step.cue}"
        case CueDue(step=step, in_s=seconds):
            return "cue", f"next in {seconds} s: {step.kind.value} {step.title}: {step.cue}"
        case Paused(reason=reason):
            return "paused", reason
        case Resumed():
            return "resumed", ""
        case BlockSkipped(step=step):
            return "skipped", step.title
        case BlockExtended(step=step, seconds=seconds):
            return "extended", f"+{seconds} s on {step.title}"
        case CommandIssued(command=command, value=value, adjusted_from=asked):
            shown = f" {value}" if value is not None else ""
            extra = f" (asked {asked})" if asked is not None else ""
            return "command", f"{command}{shown}{extra}"
        case CommandConfirmed(command=command, value=value, latency_s=latency):
            shown = f" {value}" if value is not None else ""
            return "confirmed", f"{command}{shown} in {latency:.1f} s"
        case CommandUnconfirmed(command=command, reason=reason):
            return "unconfirmed", f"{command}: {reason}"
        case Fault(kind=kind, message=message, fatal=fatal):
            return "fault", f"{kind}{' (fatal)' if fatal else ''}: {message}"
        case Notice(message=message):
            return "notice", message
        case ProgramFinished(blocks_done=done):
            return "finished", f"{done} blocks"
        case ProgramStopped(reason=reason, detail=detail):
            return "stopped", f"{reason.value}{': ' + detail if detail else ''}"
        case SessionEnded(outcome=outcome, detail=detail, belt_stopped=stopped):
            belt = "belt stopped" if stopped else "belt NOT confirmed stopped"
            return "ended", f"{outcome}: {detail}; {belt}"
    return None


class SessionRecorder:
    """A session listener that records the session in a :class:`Store` as it runs.

    Subscribe it before ``session.run()``. Each event is turned into records and queued for
    the store's :class:`RecordWriter`; nothing here waits for the file, so recording never
    delays a command. While the file cannot be written the session is told once (a
    :class:`~retrotread.events.Notice`) and again when the records have caught up. After the
    run, :meth:`finish` waits a bounded time for the last records and says what is left.
    """

    def __init__(
        self,
        store: Store,
        session: Session,
        *,
        client: Client | None = None,
        program_toml: str | None = None,
        plan_reason: str = "",
    ) -> None:
        self.store = store
        self.session = session
        self.client = client
        self.program_toml = program_toml
        self.plan_reason = plan_reason
        self.failed = False  # the record is incomplete (a write failed for good, or overflow)
        self._key: SessionKey | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ended = False
        self._unsubscribe: Callable[[], None] | None = None
        self._wall_origin = 0.0
        self._clock_origin = 0.0
        self._block: tuple[int, float] | None = None  # (index, program elapsed at its start)
        self._blocks_done = 0
        self._retro_s = 0.0
        self._distance_m = 0.0

    @property
    def started(self) -> bool:
        """True once the program started (its session row is queued or written)."""
        return self._key is not None

    @property
    def session_id(self) -> int | None:
        """The session's number in the file; None if the program never started.

        Reading it waits (at most the store's ``settle_timeout_s``) for the session row to be
        written; it stays None while the file cannot be written.
        """
        key = self._key
        if key is None:
            return None
        if key.id is None:
            return self.store.writer.wait_written(key, self.store.settle_timeout_s)
        return key.id

    def __call__(self, event: Event) -> None:
        if isinstance(event, Tick | Countdown):
            return
        self._record(event)

    def finish(self, timeout_s: float | None = None) -> Backlog:
        """Wait (at most ``timeout_s``, default the store's ``flush_timeout_s``) for the records
        queued so far; returns what is still not written (empty when all is in the file)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._key is None:
            return Backlog({})
        writer = self.store.writer
        writer.wait_idle(self.store.flush_timeout_s if timeout_s is None else timeout_s)
        return writer.backlog()

    def record_outcome(self, outcome: OperatorOutcome | str, note: str = "") -> int:
        """The operator's outcome for this recorder's session (a summary screen's callback).

        ``outcome`` is an :class:`OperatorOutcome` or its value ("lost balance"). Returns the
        session number; raises :class:`StoreError` if the program never started.
        """
        if self._key is None:
            raise StoreError("the session never started: there is nothing to record it on")
        session_id = self.session_id
        if session_id is None:
            raise StoreError(
                f"the session is not in {self.store.path} yet "
                f"({self.store.writer.backlog().describe()}); record the outcome later with "
                "`retrotread outcome`"
            )
        self.store.record_outcome(session_id, OperatorOutcome(outcome), note)
        return session_id

    def wall(self, at: float) -> float:
        """Clock time of an event to wall-clock time."""
        return self._wall_origin + (at - self._clock_origin)

    # -- what the writer says, told to the session ----------------------------------------------

    def _on_writer(self, state: str, detail: str) -> None:
        """On the writer's thread: pass the news to the session, on its loop."""
        if state == "failed":
            self.failed = True
            message = f"the session is no longer being recorded: {detail}"
        elif state == "behind":
            message = (
                f"the records file cannot be written now ({detail}): the records are kept "
                "in memory and written when it can be"
            )
        else:
            message = f"records caught up: {detail}"
        loop = self._loop
        if loop is None or self._ended:
            log.info("after the session: %s", message)
            return
        try:
            loop.call_soon_threadsafe(self._announce, message)
        except RuntimeError:  # the loop has closed: the session is over
            log.info("after the session: %s", message)

    def _announce(self, message: str) -> None:
        if not self._ended:
            self.session.emit(Notice(self.session.clock.now(), message))

    # -- events to records ---------------------------------------------------------------------

    def _submit(self, kind: str, values: Values) -> None:
        assert self._key is not None
        if not self.store.writer.submit(kind, self._key, values) and not self.failed:
            self.failed = True
            writer = self.store.writer
            if writer.failed:
                reason = writer.failed
            elif writer.closing:
                reason = "the records file is closed"
            else:
                waiting = f" ({writer.error})" if writer.error else ""
                reason = (
                    f"{writer.max_pending_samples} samples already wait in memory for the "
                    f"file{waiting}: newer ones are dropped"
                )
            log.error("recording the session: %s", reason)
            if not self._ended:
                self.session.emit(
                    Notice(self.session.clock.now(), f"recording incomplete: {reason}")
                )

    def _record(self, event: Event) -> None:
        if isinstance(event, ProgramStarted):
            self._loop = asyncio.get_running_loop()
            self._wall_origin, self._clock_origin = time.time(), event.at
            writer = self.store.writer
            self._unsubscribe = writer.subscribe(self._on_writer)
            values = _session_values(
                self.client,
                event.program,
                self.session.treadmill.name,
                self._wall_origin,
                self.program_toml,
                self.plan_reason,
            )
            self._key = writer.begin_session(values)
            return
        if self._key is None:  # before the program started (connecting, waiting for go)
            return
        if isinstance(event, TelemetryReceived):
            self._distance_m = event.distance_m
            desired = self.session.desired
            target = desired.speed.mph if desired.speed and desired.belt is Belt.RUNNING else 0.0
            sample = Sample(
                at=self.wall(event.at),
                offset_s=event.at - self._clock_origin,
                block_idx=self._block[0] if self._block else None,
                target_mph=round(target, 4),
                speed_mph=round(event.speed.mph, 4),
                incline_pct=round(float(event.incline.value), 2),
                distance_m=event.distance_m,
            )
            self._submit("sample", _sample_values(sample))
            return
        described = describe_event(event)
        if described is not None:
            record = EventRecord(self.wall(event.at), event.at - self._clock_origin, *described)
            self._submit("event", _event_values(record))
        if isinstance(event, BlockStarted):
            self._close_block("done")
            step = event.step
            elapsed = self.session.scheduler.program_elapsed()
            self._block = (step.index, elapsed)
            speed = step.block.speed
            block = BlockRecord(
                idx=step.index,
                kind=step.kind.value,
                title=step.title,
                handrail=step.block.handrail.value,
                planned_s=step.duration_s,
                target_mph=float(format_number(speed.mph, 4)) if speed else None,
                incline_pct=float(step.block.incline.value),
                started_at=self.wall(event.at),
                start_offset_s=elapsed,
                actual_s=None,
                extended_s=0,
                result="running",
            )
            self._submit("block", _block_values(block))
        elif isinstance(event, BlockSkipped):
            self._close_block("skipped")
        elif isinstance(event, BlockExtended) and self._block:
            self._submit("extend_block", (event.seconds, SESSION_ID, self._block[0]))
        elif isinstance(event, ProgramFinished):
            self._close_block("done")
        elif isinstance(event, ProgramStopped):
            self._close_block("stopped")
        elif isinstance(event, SessionEnded):
            status = _STATUS_FOR_OUTCOME.get(event.outcome, Status.STOPPED)
            self._submit(
                "end_session",
                (
                    self.wall(event.at),
                    status.value,
                    event.detail,
                    self._distance_m,
                    int(event.belt_stopped),
                    SESSION_ID,
                ),
            )
            self._ended = True

    def _close_block(self, result: str) -> None:
        if self._block is None:
            return
        index, started = self._block
        elapsed = self.session.scheduler.program_elapsed()
        actual = max(0.0, elapsed - started)
        self._submit("end_block", (actual, result, SESSION_ID, index))
        if result != "stopped":
            self._blocks_done = index + 1
        if self.session.program.steps[index].kind.is_retro:
            self._retro_s += actual
        self._submit("progress", (self._blocks_done, self._retro_s, elapsed, SESSION_ID))
        self._block = None
