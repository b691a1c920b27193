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


The package, one job a module: :mod:`~retrotread.store.model` (the rows and
:class:`StoreError`), :mod:`~retrotread.store.schema` (migrations),
:mod:`~retrotread.store.writes` (what each session record writes),
:mod:`~retrotread.store.repository` (:class:`Store`: queries, clients, sessions, samples,
outcomes), :mod:`~retrotread.store.writer` (:class:`RecordWriter`, the writer thread) and
:mod:`~retrotread.store.recorder` (:class:`SessionRecorder`, which writes a running session).
"""

from __future__ import annotations

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
from retrotread.store.recorder import SessionRecorder, describe_event
from retrotread.store.repository import DB_NAME, Store, default_db_path
from retrotread.store.schema import MIGRATIONS, SCHEMA_VERSION
from retrotread.store.writer import Backlog, Record, RecordWriter, SessionKey, WriterListener
from retrotread.store.writes import SESSION_ID, Values

__all__ = [
    "DB_NAME",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SESSION_ID",
    "Backlog",
    "BlockRecord",
    "Client",
    "ClientSummary",
    "EventRecord",
    "Record",
    "RecordWriter",
    "Sample",
    "SessionKey",
    "SessionRecord",
    "SessionRecorder",
    "Status",
    "Store",
    "StoreError",
    "Values",
    "WriterListener",
    "default_db_path",
    "describe_event",
]
