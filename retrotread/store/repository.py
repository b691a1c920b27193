"""The records: clients, sessions, blocks, samples, events and outcomes, read and written, in a
SQLite file (the default) or a PostgreSQL database (``--db postgresql://...``).

Reads and the operator's own changes go through :class:`Store` in the caller's thread; a
session being recorded goes through its :attr:`Store.writer` (``retrotread.store.writer``; for a
database, through the console's local spool first: ``retrotread.store.spool``). One SQL for
both engines: what they say differently is in ``retrotread.store.backend``.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any

from retrotread.paths import data_dir
from retrotread.program import Program
from retrotread.progression import NextSession, OperatorOutcome, Phase, SessionEvidence, plan_next
from retrotread.store.backend import (
    Backend,
    Cursor,
    Db,
    PostgresBackend,
    SqliteBackend,
    backend_for,
    open_error,
)
from retrotread.store.model import (
    BlockRecord,
    Client,
    ClientSummary,
    EventRecord,
    Sample,
    SessionRecord,
    Status,
    StoreError,
)
from retrotread.store.schema import MIGRATIONS, SCHEMA_VERSION
from retrotread.store.writer import Backlog, RecordWriter, SessionWriter, new_uid
from retrotread.store.writes import (
    INSERT_SESSION,
    WRITES,
    bind,
    block_values,
    event_values,
    sample_values,
    session_values,
)
from retrotread.text import has_control, printable

log = logging.getLogger(__name__)

DB_NAME = "retrotread.sqlite3"

_SESSION_COLUMNS = """s.id, c.name, s.program, s.program_source, s.program_toml, s.device,
    s.started_at, s.ended_at, s.status, s.detail, s.phase, s.interval_s, s.handrail,
    s.plan_reason, s.blocks_total, s.blocks_done, s.retro_s, s.elapsed_s, s.distance_m,
    s.belt_stopped, s.outcome, s.note"""


def _session_record(row: Sequence[Any]) -> SessionRecord:
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


def default_spool_path(backend: Backend) -> Path:
    """The local spool of the records for a database: one per database, in the data directory."""
    name = hashlib.sha256(backend.location.encode()).hexdigest()[:16]
    return data_dir() / "spool" / f"{name}.sqlite3"


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


# -- the store ---------------------------------------------------------------------------------


class Store:
    """The records. Use :meth:`open`; close it (or use ``with``) when done.

    Reads and the operator's own changes (clients, outcomes) go through :attr:`db` in the
    caller's thread; sessions being recorded go through :attr:`writer`, a thread of its own.
    """

    #: seconds a write by the session writer waits for a lock before it retries later
    writer_busy_timeout_s = 0.25
    #: seconds a read waits for the writer to write what is queued
    settle_timeout_s = 2.0
    #: seconds closing the store waits for the writer to write what is queued
    flush_timeout_s = 5.0
    #: seconds to reach a database before saying it cannot be reached
    connect_timeout_s = 5.0
    #: in a shared database, another host's session still ``running`` this long after its last
    #: record was cut off (its host never came back to say so)
    abandoned_after_s = 12 * 3600.0

    def __init__(self, backend: Backend, connection: Db, *, spool: Path | None = None) -> None:
        self.backend = backend
        self.db = connection
        #: the records file (None for a database)
        self.path: Path | None = backend.path if isinstance(backend, SqliteBackend) else None
        #: where the records are, for people: a path, or a database's URL without its password
        self.location = backend.location
        #: the local spool of a database's session records (None for a file)
        self.spool: Path | None = None
        if isinstance(backend, PostgresBackend):
            self.spool = spool or default_spool_path(backend)
        self._writer: SessionWriter | None = None
        #: called with each connection the writer opens (its own PRAGMAs; tests use it)
        self.on_connect: Callable[[Any], None] | None = None

    @classmethod
    def open(
        cls,
        target: Path | str | None = None,
        *,
        spool: Path | None = None,
        read_only: bool = False,
    ) -> Store:
        """The records at ``target``: a file's path (None: the default file) or a database URL
        (``postgresql://user@host/dbname``). ``spool``: where a database's session records wait
        while it is out of reach (default: a file per database in the data directory).
        ``read_only``: a file must exist already and is never written (commands that only
        read)."""
        backend = backend_for(target if target is not None else default_db_path())
        try:
            if read_only and isinstance(backend, SqliteBackend):
                reader = cls(backend, backend.connect_read_only(timeout_s=cls.connect_timeout_s))
                reader._check_readable()
                return reader
            connection = backend.connect(timeout_s=cls.connect_timeout_s)
        except sqlite3.DatabaseError as err:
            if isinstance(err, sqlite3.OperationalError):
                raise open_error(backend, err) from err
            raise StoreError(f"{backend.location} is not a retrotread records file: {err}") from err
        except (OSError, backend.errors[0]) as err:
            raise open_error(backend, err) from err
        store = cls(backend, connection, spool=spool)
        try:
            store._prepare()
        except sqlite3.DatabaseError as err:
            connection.close()
            raise StoreError(f"{store.location} is not a retrotread records file: {err}") from err
        except backend.errors as err:
            connection.close()
            raise open_error(backend, err) from err
        except StoreError:
            connection.close()
            raise
        return store

    def close(self) -> Backlog | None:
        """Close the records, after a bounded wait for the session writer (what it could not
        write is logged, and returned)."""
        backlog = None
        if self._writer is not None:
            backlog = self._writer.close(self.flush_timeout_s)
            if backlog:
                log.warning("closing %s: %s", self.location, backlog.describe())
        with contextlib.suppress(*self.backend.errors):
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

    def _check_readable(self) -> None:
        try:
            version = self.backend.schema_version(self.db)
        except sqlite3.DatabaseError as err:
            self.db.close()
            raise StoreError(f"{self.location} is not a retrotread records file: {err}") from err
        if version == 0:
            self.db.close()
            raise StoreError(f"{self.location} is not a retrotread records file (it is empty)")
        if version > len(MIGRATIONS):
            self.db.close()
            raise StoreError(
                f"{self.location} was written by a newer retrotread (records version "
                f"{version}): upgrade retrotread to read it"
            )

    def _prepare(self) -> None:
        self.migrate()
        if self.spool is not None and self.spool.exists():
            # records a console could not send before (the database was out of reach, the
            # console stopped): send them first, so their sessions are judged whole
            self.writer.wait_idle(self.settle_timeout_s)
        self.mark_interrupted()

    def execute(self, sql: str, parameters: Sequence[object] = ()) -> Cursor:
        """One statement in the store's SQL (``?`` parameters), on either engine."""
        return self._query(sql, parameters)

    def _query(self, sql: str, parameters: Sequence[object] = ()) -> Cursor:
        try:
            return self.db.execute(sql, parameters)
        except self._lost as err:
            raise StoreError(f"cannot reach the records database {self.location}: {err}") from err

    @property
    def _lost(self) -> tuple[type[Exception], ...]:
        """A database's connection errors (a file's errors stay what they are)."""
        if isinstance(self.backend, PostgresBackend):
            import psycopg

            return (psycopg.OperationalError,)
        return ()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Db]:
        try:
            with self.backend.transaction(self.db) as db:
                yield db
        except self._lost as err:
            raise StoreError(f"cannot reach the records database {self.location}: {err}") from err

    @property
    def schema_version(self) -> int:
        return self.backend.schema_version(self.db)

    def migrate(self) -> None:
        """Bring the records up to :data:`SCHEMA_VERSION`, one migration per transaction."""
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"{self.location} was written by a newer retrotread (schema {current}; this one "
                f"knows up to {SCHEMA_VERSION}): upgrade retrotread to read it"
            )
        self.backend.migrate(self.db, MIGRATIONS)

    def mark_interrupted(self) -> list[int]:
        """Sessions left ``running`` by a process that is gone become ``interrupted``.

        In a file, a session of another host is over. In a shared database each host judges
        its own sessions; another host's is over only ``abandoned_after_s`` after its last
        record.
        """
        host = socket.gethostname()
        rows = self._query(
            "SELECT s.id, s.pid, s.host, max(coalesce(m.at, s.started_at)) FROM sessions s "
            "LEFT JOIN samples m ON m.session_id = s.id WHERE s.status = ? "
            "GROUP BY s.id, s.pid, s.host ORDER BY s.id",
            (Status.RUNNING.value,),
        ).fetchall()
        abandoned = self.abandoned_after_s
        now = time.time()
        cut_off = [
            session_id
            for session_id, pid, row_host, last in rows
            if (row_host == host and (pid is None or not _process_alive(pid)))
            or (row_host != host and (not self.backend.shared or now - last > abandoned))
        ]
        for session_id in cut_off:
            with self._transaction() as db:
                last = db.execute(
                    "SELECT max(at) FROM (SELECT max(at) AS at FROM samples WHERE session_id = ?"
                    " UNION ALL SELECT max(at) FROM events WHERE session_id = ?) AS latest",
                    (session_id, session_id),
                ).fetchone()[0]
                db.execute(
                    "UPDATE sessions SET status = ?, ended_at = COALESCE(?, started_at), "
                    "detail = ? WHERE id = ? AND status = ?",
                    (
                        Status.INTERRUPTED.value,
                        last,
                        "the process ended mid-session (crash, kill or power loss); "
                        "records up to the last sample",
                        session_id,
                        Status.RUNNING.value,
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
        if has_control(clean) or has_control(note):
            raise StoreError(
                f"a client's name and note cannot hold control characters (terminal escapes): "
                f"{printable(clean)!r}"
            )
        existing = self.find_client(clean)
        if existing is not None:
            raise StoreError(f"there is already a client named {existing.name!r}")
        created = time.time()
        try:
            client_id = self.backend.insert_returning_id(
                self.db,
                "INSERT INTO clients (name, note, created_at) VALUES (?, ?, ?)",
                (clean, note, created),
            )
        except self._lost as err:
            raise StoreError(f"cannot reach the records database {self.location}: {err}") from err
        return Client(client_id, clean, note, created)

    def find_client(self, name: str) -> Client | None:
        row = self._query(
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
        rows = self._query(
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
        values = session_values(client, program, device, started_at, program_toml, plan_reason)
        return self.backend.insert_returning_id(self.db, INSERT_SESSION, (*values, new_uid()))

    def add_sample(self, session_id: int, sample: Sample) -> None:
        self.db.execute(WRITES["sample"], bind(sample_values(sample), session_id))

    def add_event(self, session_id: int, event: EventRecord) -> None:
        self.db.execute(WRITES["event"], bind(event_values(event), session_id))

    def begin_block(self, session_id: int, block: BlockRecord) -> None:
        self.db.execute(WRITES["block"], bind(block_values(block), session_id))

    def end_block(self, session_id: int, idx: int, actual_s: float, result: str) -> None:
        self.db.execute(WRITES["end_block"], (actual_s, result, session_id, idx))

    def extend_block(self, session_id: int, idx: int, seconds: int) -> None:
        self.db.execute(WRITES["extend_block"], (seconds, session_id, idx))

    def update_progress(
        self, session_id: int, *, blocks_done: int, retro_s: float, elapsed_s: float
    ) -> None:
        self.db.execute(WRITES["progress"], (blocks_done, retro_s, elapsed_s, session_id))

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
            WRITES["end_session"],
            (ended_at, status.value, detail, distance_m, int(belt_stopped), session_id),
        )

    @property
    def writer(self) -> SessionWriter:
        """The thread that writes sessions as they run (started on first use); for a database,
        through the local spool."""
        if self._writer is None:
            if isinstance(self.backend, PostgresBackend):
                from retrotread.store.spool import SpooledWriter

                assert self.spool is not None
                self._writer = SpooledWriter(
                    self.spool,
                    self.backend,
                    busy_timeout_s=self.writer_busy_timeout_s,
                    on_connect=self.on_connect,
                )
            else:
                self._writer = RecordWriter(
                    self.backend,
                    busy_timeout_s=self.writer_busy_timeout_s,
                    on_connect=self.on_connect,
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
                raise StoreError(f"no session #{session_id} in {self.location}")
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
        row = self._query(
            f"SELECT {_SESSION_COLUMNS} FROM sessions s LEFT JOIN clients c "
            "ON c.id = s.client_id WHERE s.id = ?",
            (session_id,),
        ).fetchone()
        if row is None:
            raise StoreError(f"no session #{session_id} in {self.location}")
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
        rows = self._query(query, params).fetchall()
        return [_session_record(row) for row in reversed(rows)]

    def latest_session(self) -> SessionRecord | None:
        found = self.sessions(limit=1)
        return found[0] if found else None

    def blocks(self, session_id: int) -> list[BlockRecord]:
        self._settle()
        rows = self._query(
            "SELECT idx, kind, title, handrail, planned_s, target_mph, incline_pct, started_at, "
            "start_offset_s, actual_s, extended_s, result FROM blocks WHERE session_id = ? "
            "ORDER BY idx",
            (session_id,),
        ).fetchall()
        return [BlockRecord(*row) for row in rows]

    def samples(self, session_id: int) -> list[Sample]:
        self._settle()
        rows = self._query(
            "SELECT at, offset_s, block_idx, target_mph, speed_mph, incline_pct, distance_m "
            "FROM samples WHERE session_id = ? ORDER BY at, rowid",
            (session_id,),
        ).fetchall()
        return [Sample(*row) for row in rows]

    def events(self, session_id: int) -> list[EventRecord]:
        self._settle()
        rows = self._query(
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
