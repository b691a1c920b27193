"""Where the records live: a SQLite file (the embedded default) or a PostgreSQL database.

The rest of the store writes one SQL, SQLite's, with ``?`` for parameters. Every difference
between the two is here:

- parameters: ``?`` becomes ``%s`` for PostgreSQL (and a literal ``%`` is doubled);
- the schema: migration scripts are written for SQLite and :meth:`PostgresBackend.render` turns
  them into PostgreSQL's: ``REAL`` is ``DOUBLE PRECISION``, an ``INTEGER PRIMARY KEY`` an
  identity column, every table gets the ``rowid`` SQLite gives it implicitly (queries order by
  it), and ``COLLATE NOCASE`` names an ICU collation the first migration creates;
- the schema's version: ``PRAGMA user_version`` in SQLite, a ``schema_version`` table in
  PostgreSQL, where migrations also take an advisory lock (several consoles may open one
  database at once);
- transactions: ``BEGIN IMMEDIATE`` in SQLite (take the write lock now), ``BEGIN`` in PostgreSQL;
- which errors mean "not now" (try again later) rather than "never";
- a session left ``running`` by a process that is gone: in a file, any other host's session is
  over; a shared database is written by many hosts, each judging only its own sessions.
"""

from __future__ import annotations

import abc
import contextlib
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from retrotread.store.model import StoreError

if TYPE_CHECKING:
    import psycopg

#: What a database URL starts with (anything else is a file's path).
URL_SCHEMES = ("postgresql://", "postgres://")

#: A lock key of our own for PostgreSQL's advisory locks, so consoles migrate one at a time.
MIGRATION_LOCK = 0x7265_7472_6F00  # "retro"


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Db(Protocol):
    """A connection as the store uses it (``sqlite3.Connection`` is one)."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> object: ...

    def close(self) -> None: ...


def is_database_url(target: str | Path | None) -> bool:
    return isinstance(target, str) and target.lower().startswith(URL_SCHEMES)


class Backend(abc.ABC):
    """The engine behind a :class:`~retrotread.store.Store`: how to connect to it and what its
    SQL says differently."""

    #: "sqlite" or "postgresql"
    kind: str
    #: where the records are, for people (a path, or a URL without its password)
    location: str
    #: written by many consoles at once (a session of another host may be running)
    shared: bool
    #: the statement that opens a write transaction
    begin: str

    @abc.abstractmethod
    def connect(self, *, timeout_s: float) -> Db:
        """A new connection, ready for the store's SQL (raises the engine's own errors)."""

    @abc.abstractmethod
    def schema_version(self, db: Db) -> int: ...

    @abc.abstractmethod
    def migrate(self, db: Db, migrations: Sequence[str]) -> None:
        """Apply the migrations past the database's version, one transaction each."""

    @abc.abstractmethod
    def retryable(self, err: Exception) -> str | None:
        """Why ``err`` means "not now" (the write is tried again later), or None for "never"."""

    @abc.abstractmethod
    def fresh_connection_after(self, err: Exception) -> bool:
        """Whether a connection that met ``err`` should be closed and opened anew."""

    @property
    @abc.abstractmethod
    def errors(self) -> tuple[type[Exception], ...]:
        """The engine's error classes."""

    @contextlib.contextmanager
    def transaction(self, db: Db) -> Iterator[Db]:
        db.execute(self.begin)
        try:
            yield db
        except BaseException:
            with contextlib.suppress(*self.errors):
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def insert_returning_id(self, db: Db, sql: str, values: Sequence[object]) -> int:
        """Run an ``INSERT`` and give the new row's ``id``."""
        row = db.execute(f"{sql} RETURNING id", values).fetchone()
        assert row is not None
        return int(row[0])


# -- SQLite ----------------------------------------------------------------------------------

#: SQLite primary result codes that mean "not now" rather than "never": the writer keeps the
#: records and tries again (a lock held past the busy timeout, a full disk, an I/O error, a file
#: that cannot be opened or written for the moment).
_SQLITE_TRY_AGAIN = {
    5: "busy",
    6: "locked",
    8: "read-only",
    10: "I/O error",
    13: "full",
    14: "cannot open",
    15: "lock protocol",
}
_SQLITE_LOCKED = {5, 6}


def _sqlite_code(err: Exception) -> int:
    code = getattr(err, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else -1


class SqliteBackend(Backend):
    kind = "sqlite"
    shared = False
    begin = "BEGIN IMMEDIATE"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)

    def connect(self, *, timeout_s: float) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self.path, isolation_level=None, timeout=timeout_s, check_same_thread=False
        )
        return self._configured(connection)

    def connect_read_only(self, *, timeout_s: float) -> sqlite3.Connection:
        """Only reads: nothing is created for a mistyped path, and a file on a read-only
        mount opens as what it is."""
        from retrotread.store.model import StoreError

        if not self.path.is_file():
            what = "is not a file" if self.path.exists() else "does not exist"
            raise StoreError(f"no records at {self.path}: it {what} (nothing was created)")
        connection = sqlite3.connect(
            f"{self.path.resolve().as_uri()}?mode=ro",
            uri=True,
            isolation_level=None,
            timeout=timeout_s,
            check_same_thread=False,
        )
        return self._configured(connection)

    @staticmethod
    def _configured(connection: sqlite3.Connection) -> sqlite3.Connection:
        # NORMAL in WAL mode: a commit survives a killed process (it is in the WAL file);
        # only a power cut can lose the last transactions.
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        return connection

    def schema_version(self, db: Db) -> int:
        return int(db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self, db: Db, migrations: Sequence[str]) -> None:
        assert isinstance(db, sqlite3.Connection)
        db.execute("PRAGMA journal_mode=WAL")
        for version in range(self.schema_version(db) + 1, len(migrations) + 1):
            script = migrations[version - 1]
            # executescript commits first; wrap each migration in its own transaction.
            db.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version={version};")
            db.execute("COMMIT")

    def retryable(self, err: Exception) -> str | None:
        if not isinstance(err, sqlite3.Error):
            return None
        return _SQLITE_TRY_AGAIN.get(_sqlite_code(err))

    def fresh_connection_after(self, err: Exception) -> bool:
        # after a full disk or an I/O error start afresh; a lock passes on the same connection
        return _sqlite_code(err) not in _SQLITE_LOCKED

    @property
    def errors(self) -> tuple[type[Exception], ...]:
        return (sqlite3.Error,)


# -- PostgreSQL ------------------------------------------------------------------------------

_NOCASE = (
    "CREATE COLLATION IF NOT EXISTS nocase "
    "(provider = icu, locale = 'und-u-ks-level2', deterministic = false)"
)
_CREATE_TABLE = re.compile(r"CREATE TABLE (\w+) \((.*?)\n\s*\);", re.S)


def _placeholders(sql: str) -> str:
    """SQLite's ``?`` to psycopg's ``%s`` (the store's SQL has no ``?`` in a string)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresDb:
    """A psycopg connection that speaks the store's SQL (``?`` parameters), in autocommit
    mode: transactions are opened with ``BEGIN`` like SQLite's."""

    def __init__(
        self,
        connection: psycopg.Connection[Any],
        reconnect: Callable[[], psycopg.Connection[Any]] | None = None,
    ) -> None:
        self.connection = connection
        self._reconnect = reconnect

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        """Run a statement; outside a transaction, a connection the server dropped (restarted,
        reached again) is opened anew once."""
        import psycopg
        from psycopg.pq import TransactionStatus

        query = _placeholders(sql)
        if self._reconnect is not None and (self.connection.closed or self.connection.broken):
            self.connection = self._reconnect()
        idle = self.connection.info.transaction_status == TransactionStatus.IDLE
        try:
            return self.connection.execute(query, parameters or None)
        except psycopg.OperationalError:
            if not idle or self._reconnect is None:
                raise
            self.connection = self._reconnect()
            return self.connection.execute(query, parameters or None)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> object:
        with self.connection.cursor() as cursor:
            cursor.executemany(_placeholders(sql), parameters)
        return None

    def close(self) -> None:
        self.connection.close()


def redact(url: str) -> str:
    """A database URL without its password, for messages and logs."""
    return re.sub(r"^(\w+://[^:/@]*):[^@/]*@", r"\1@", url)


class PostgresBackend(Backend):
    kind = "postgresql"
    shared = True
    begin = "BEGIN"

    def __init__(self, url: str) -> None:
        self.url = url
        self.location = redact(url)

    def connect(self, *, timeout_s: float) -> PostgresDb:
        import psycopg

        def connection() -> psycopg.Connection[Any]:
            return psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, round(timeout_s)),
                application_name="retrotread",
            )

        return PostgresDb(connection(), connection)

    def render(self, script: str) -> str:
        """A migration written for SQLite, in PostgreSQL's words."""

        def table(match: re.Match[str]) -> str:
            name, body = match.group(1), match.group(2)
            if "INTEGER PRIMARY KEY" not in body:  # SQLite's implicit rowid, made explicit
                body = "\n        rowid BIGINT GENERATED ALWAYS AS IDENTITY," + body
            return f"CREATE TABLE {name} ({body}\n    );"

        script = _CREATE_TABLE.sub(table, script)
        script = re.sub(
            r"\bINTEGER PRIMARY KEY( AUTOINCREMENT)?\b",
            "INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            script,
        )
        return re.sub(r"\bREAL\b", "DOUBLE PRECISION", script)

    def schema_version(self, db: Db) -> int:
        found = db.execute("SELECT to_regclass('schema_version')").fetchone()[0]
        if found is None:
            return 0
        row = db.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def migrate(self, db: Db, migrations: Sequence[str]) -> None:
        if self.schema_version(db) >= len(migrations):
            return
        for version in range(1, len(migrations) + 1):
            with self.transaction(db):
                db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
                if version == 1:
                    db.execute(_NOCASE)
                    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
                if self.schema_version(db) >= version:  # another console got there first
                    continue
                pg = cast(PostgresDb, db)
                pg.connection.execute(self.render(migrations[version - 1]))
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def retryable(self, err: Exception) -> str | None:
        import psycopg

        if isinstance(err, psycopg.OperationalError):  # unreachable, restarting, cut off
            return "unreachable"
        return None

    def fresh_connection_after(self, err: Exception) -> bool:
        return True

    @property
    def errors(self) -> tuple[type[Exception], ...]:
        import psycopg

        return (psycopg.Error,)


def backend_for(target: Path | str) -> Backend:
    if isinstance(target, Path):
        # a URL that went through Path (an option typed as a path) lost one of its slashes
        text = str(target)
        restored = re.sub(r"^(postgres(?:ql)?):/(?!/)", r"\1://", text, flags=re.I)
        target = restored if restored != text else target
    if is_database_url(target):
        return PostgresBackend(str(target))
    return SqliteBackend(Path(target))


def open_error(backend: Backend, err: Exception) -> StoreError:
    """The error for records that cannot be opened."""
    if backend.kind == "postgresql":
        return StoreError(f"cannot reach the records database {backend.location}: {err}")
    return StoreError(f"cannot open the records at {backend.location}: {err}")
