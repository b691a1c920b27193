"""Session records in SQLite: clients, sessions, blocks, telemetry samples, events, outcomes.

One file in the platform data directory (``retrotread.paths.data_dir()``), or wherever ``--db``
points. The database runs in WAL mode and every write is its own short transaction, so records
are written *as the session runs*: a crash or SIGKILL loses at most the sample being written.

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

import contextlib
import difflib
import enum
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
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


# -- the store ---------------------------------------------------------------------------------


class Store:
    """The records file. Use :meth:`open`; close it (or use ``with``) when done."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self.db = connection
        self.path = path

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

    def close(self) -> None:
        self.db.close()

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
        rows = self.db.execute(
            "SELECT c.id, c.name, c.note, c.created_at, count(s.id), max(s.started_at) "
            "FROM clients c LEFT JOIN sessions s ON s.client_id = c.id "
            "GROUP BY c.id ORDER BY c.name COLLATE NOCASE"
        ).fetchall()
        return [ClientSummary(Client(*row[:4]), row[4], row[5]) for row in rows]

    # -- sessions, written by SessionRecorder ----------------------------------------------------

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
        phase, interval = retro_content(program)
        retro = [s.block.handrail for s in program.steps if s.kind.is_retro]
        handrail = retro[0].value if retro else None
        cursor = self.db.execute(
            "INSERT INTO sessions (client_id, program, program_source, program_toml, device, "
            "started_at, status, phase, interval_s, handrail, plan_reason, blocks_total, pid, "
            "host) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                client.id if client else None,
                program.name,
                program.source,
                program_toml,
                device,
                started_at,
                Status.RUNNING.value,
                phase.value if phase else None,
                interval,
                handrail,
                plan_reason,
                len(program.steps),
                os.getpid(),
                socket.gethostname(),
            ),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def add_sample(self, session_id: int, sample: Sample) -> None:
        self.db.execute(
            "INSERT INTO samples (session_id, at, offset_s, block_idx, target_mph, speed_mph, "
            "incline_pct, distance_m) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                session_id,
                sample.at,
                sample.offset_s,
                sample.block_idx,
                sample.target_mph,
                sample.speed_mph,
                sample.incline_pct,
                sample.distance_m,
            ),
        )

    def add_event(self, session_id: int, event: EventRecord) -> None:
        self.db.execute(
            "INSERT INTO events (session_id, at, offset_s, kind, detail) VALUES (?, ?, ?, ?, ?)",
            (session_id, event.at, event.offset_s, event.kind, event.detail),
        )

    def begin_block(self, session_id: int, block: BlockRecord) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO blocks (session_id, idx, kind, title, handrail, planned_s, "
            "target_mph, incline_pct, started_at, start_offset_s, actual_s, extended_s, result) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                session_id,
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
            ),
        )

    def end_block(self, session_id: int, idx: int, actual_s: float, result: str) -> None:
        self.db.execute(
            "UPDATE blocks SET actual_s = ?, result = ? WHERE session_id = ? AND idx = ?",
            (actual_s, result, session_id, idx),
        )

    def extend_block(self, session_id: int, idx: int, seconds: int) -> None:
        self.db.execute(
            "UPDATE blocks SET extended_s = extended_s + ? WHERE session_id = ? AND idx = ?",
            (seconds, session_id, idx),
        )

    def update_progress(
        self, session_id: int, *, blocks_done: int, retro_s: float, elapsed_s: float
    ) -> None:
        self.db.execute(
            "UPDATE sessions SET blocks_done = ?, retro_s = ?, elapsed_s = ? WHERE id = ?",
            (blocks_done, retro_s, elapsed_s, session_id),
        )

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
            "UPDATE sessions SET ended_at = ?, status = ?, detail = ?, distance_m = ?, "
            "belt_stopped = ? WHERE id = ?",
            (ended_at, status.value, detail, distance_m, int(belt_stopped), session_id),
        )

    def record_outcome(self, session_id: int, outcome: OperatorOutcome, note: str = "") -> None:
        """The operator's word on how the session went; progression counts on it."""
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
        rows = self.db.execute(
            "SELECT idx, kind, title, handrail, planned_s, target_mph, incline_pct, started_at, "
            "start_offset_s, actual_s, extended_s, result FROM blocks WHERE session_id = ? "
            "ORDER BY idx",
            (session_id,),
        ).fetchall()
        return [BlockRecord(*row) for row in rows]

    def samples(self, session_id: int) -> list[Sample]:
        rows = self.db.execute(
            "SELECT at, offset_s, block_idx, target_mph, speed_mph, incline_pct, distance_m "
            "FROM samples WHERE session_id = ? ORDER BY at, rowid",
            (session_id,),
        ).fetchall()
        return [Sample(*row) for row in rows]

    def events(self, session_id: int) -> list[EventRecord]:
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


# -- recording a session as it runs --------------------------------------------------------------

_STATUS_FOR_OUTCOME = {
    "completed": Status.COMPLETED,
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
    """A session listener that writes the session to a :class:`Store` as it runs.

    Subscribe it before ``session.run()``. The session row appears when the program starts;
    :attr:`session_id` is set from then on. A write that fails (disk full, file gone) is
    logged and announced once as a :class:`~retrotread.events.Notice`; the session goes on.
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
        self.session_id: int | None = None
        self.failed = False
        self._wall_origin = 0.0
        self._clock_origin = 0.0
        self._block: tuple[int, float] | None = None  # (index, program elapsed at its start)
        self._blocks_done = 0
        self._retro_s = 0.0
        self._distance_m = 0.0

    def __call__(self, event: Event) -> None:
        if self.failed or isinstance(event, Tick | Countdown):
            return
        try:
            self._record(event)
        except sqlite3.Error as err:
            self.failed = True
            log.exception("recording the session failed")
            self.session.emit(Notice(event.at, f"the session is no longer being recorded: {err}"))

    def record_outcome(self, outcome: OperatorOutcome | str, note: str = "") -> int:
        """The operator's outcome for this recorder's session (a summary screen's callback).

        ``outcome`` is an :class:`OperatorOutcome` or its value ("lost balance"). Returns the
        session number; raises :class:`StoreError` if the program never started.
        """
        if self.session_id is None:
            raise StoreError("the session never started: there is nothing to record it on")
        self.store.record_outcome(self.session_id, OperatorOutcome(outcome), note)
        return self.session_id

    def wall(self, at: float) -> float:
        """Clock time of an event to wall-clock time."""
        return self._wall_origin + (at - self._clock_origin)

    def _record(self, event: Event) -> None:
        if isinstance(event, ProgramStarted):
            self._wall_origin, self._clock_origin = time.time(), event.at
            self.session_id = self.store.begin_session(
                client=self.client,
                program=event.program,
                device=self.session.treadmill.name,
                started_at=self._wall_origin,
                program_toml=self.program_toml,
                plan_reason=self.plan_reason,
            )
            return
        session_id = self.session_id
        if session_id is None:  # before the program started (connecting, waiting for go)
            return
        store = self.store
        if isinstance(event, TelemetryReceived):
            self._distance_m = event.distance_m
            desired = self.session.desired
            target = desired.speed.mph if desired.speed and desired.belt is Belt.RUNNING else 0.0
            store.add_sample(
                session_id,
                Sample(
                    at=self.wall(event.at),
                    offset_s=event.at - self._clock_origin,
                    block_idx=self._block[0] if self._block else None,
                    target_mph=round(target, 4),
                    speed_mph=round(event.speed.mph, 4),
                    incline_pct=round(float(event.incline.value), 2),
                    distance_m=event.distance_m,
                ),
            )
            return
        described = describe_event(event)
        if described is not None:
            store.add_event(
                session_id,
                EventRecord(self.wall(event.at), event.at - self._clock_origin, *described),
            )
        if isinstance(event, BlockStarted):
            self._close_block("done")
            step = event.step
            elapsed = self.session.scheduler.program_elapsed()
            self._block = (step.index, elapsed)
            speed = step.block.speed
            store.begin_block(
                session_id,
                BlockRecord(
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
                ),
            )
        elif isinstance(event, BlockSkipped):
            self._close_block("skipped")
        elif isinstance(event, BlockExtended) and self._block:
            store.extend_block(session_id, self._block[0], event.seconds)
        elif isinstance(event, ProgramFinished):
            self._close_block("done")
        elif isinstance(event, ProgramStopped):
            self._close_block("stopped")
        elif isinstance(event, SessionEnded):
            store.end_session(
                session_id,
                ended_at=self.wall(event.at),
                status=_STATUS_FOR_OUTCOME.get(event.outcome, Status.STOPPED),
                detail=event.detail,
                distance_m=self._distance_m,
                belt_stopped=event.belt_stopped,
            )

    def _close_block(self, result: str) -> None:
        if self._block is None or self.session_id is None:
            return
        index, started = self._block
        elapsed = self.session.scheduler.program_elapsed()
        actual = max(0.0, elapsed - started)
        self.store.end_block(self.session_id, index, actual, result)
        if result != "stopped":
            self._blocks_done = index + 1
        if self.session.program.steps[index].kind.is_retro:
            self._retro_s += actual
        self.store.update_progress(
            self.session_id, blocks_done=self._blocks_done, retro_s=self._retro_s, elapsed_s=elapsed
        )
        self._block = None
