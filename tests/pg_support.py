"""A real PostgreSQL server for the store's tests: ``initdb`` + ``pg_ctl`` in a temporary
directory, listening on a free loopback port, stopped (and its files removed) when done.

One server per test process (``pg_server``, session-scoped: one per xdist worker), one database
per test (``pg_url``). PostgreSQL refuses to run as root, so as root the server runs as
``nobody`` in a directory owned by it. Autovacuum is off: the suite checks that a test leaves no
process behind, and an autovacuum worker could start in any test. Durability is off too
(fsync): the tests stop the server with ``pg_ctl stop``, never by pulling the plug.

``records`` gives each test its records on both engines (a SQLite file, then a database).
Import the fixtures into a test module::

    from tests.pg_support import pg_server, records  # noqa: F401 (fixtures)
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

#: where Debian puts the server's programs (initdb and pg_ctl are also on PATH here)
BIN_DIRS = [Path(f"/usr/lib/postgresql/{v}/bin") for v in (17, 16, 15, 14)]
#: the unprivileged account the server runs as when the tests run as root
SERVER_USER = "nobody"


def _bin_dir() -> Path:
    for folder in BIN_DIRS:
        if (folder / "pg_ctl").exists():
            return folder
    found = shutil.which("pg_ctl")
    if found is None:
        pytest.fail("PostgreSQL is not installed (Debian package postgresql: `make test` adds it)")
    return Path(found).resolve().parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PgServer:
    """One PostgreSQL cluster in a folder of its own; :meth:`start` and :meth:`stop` it at will
    (a test stops it mid-session to see the records wait, and starts it again)."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.folder = Path(tempfile.mkdtemp(prefix="retrotread-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = 0
        self.as_root = os.geteuid() == 0
        if self.as_root:
            account = pwd.getpwnam(SERVER_USER)
            os.chown(self.folder, account.pw_uid, account.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self.as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(
                f"{program} failed ({done.returncode}): {done.stderr.strip()}\n{log[-2000:]}"
            )

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def start(self) -> None:
        """Start on the same port as before (a fresh free one the first time)."""
        options = " ".join(
            [
                "-h 127.0.0.1",
                f"-k {self.folder}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c autovacuum=off",
                "-c max_connections=200",
            ]
        )
        for attempt in range(3):
            if not self.port or attempt:
                self.port = _free_port()
            try:
                self._run(
                    "pg_ctl",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-w",
                    "-t",
                    "30",
                    "-o",
                    f"-p {self.port} {options}",
                    "start",
                )
                return
            except RuntimeError:
                if attempt == 2 or "could not bind" not in self.log.read_text():
                    raise

    def stop(self) -> None:
        if not self.running:
            return
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")
        except RuntimeError as err:
            if "No such process" not in str(err):  # killed already: nothing to stop
                raise

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"'.encode())
        return self.url(name)

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def running_server() -> Iterator[PgServer]:
    """A server of its own for one test (one that stops and starts it)."""
    server = PgServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One server for the whole test process (each xdist worker has its own).

    Request it by name in the fixture or test that uses it (not with ``getfixturevalue``): a
    session fixture set up before the test's own fixtures is what tells the suite's
    process check that the server's processes are not the test's.
    """
    with running_server() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a new database of this test's own on the shared server."""
    return pg_server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def records(request: pytest.FixtureRequest, pg_server: PgServer, tmp_path: Path) -> str:
    """Where a test's records are: a SQLite file, or a new database on the test server."""
    if request.param == "postgresql":
        return pg_server.create_database()
    return str(tmp_path / "records.sqlite3")


def query_records(records: str, sql: str) -> tuple[Any, ...]:
    """One row, read on a connection of the test's own (not through a Store, which would
    also judge running sessions and send a spool)."""
    if records.startswith("postgresql://"):
        with psycopg.connect(records, autocommit=True) as connection:
            row = connection.execute(sql.encode()).fetchone()
    else:
        with contextlib.closing(sqlite3.connect(records)) as connection:
            row = connection.execute(sql).fetchone()
    assert row is not None
    return tuple(row)
