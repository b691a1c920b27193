"""Records in PostgreSQL while the database goes away and comes back: the console records into
its local spool, the belt never waits, and every record reaches the database exactly once.

Each test here runs a PostgreSQL server of its own (it stops and starts it), on a free port.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from retrotread.clock import LoopClock, run
from retrotread.drivers.registry import open_treadmill
from retrotread.events import BlockStarted, CommandConfirmed, Event, Notice
from retrotread.program import parse_program
from retrotread.session import Session, SessionSummary
from retrotread.store import SessionRecorder, Status, Store
from retrotread.store.backend import PostgresBackend
from retrotread.store.spool import Forwarder, encode, open_spool
from retrotread.store.writes import SESSION_ID
from tests.pg_support import PgServer, running_server
from tests.test_store_writer import PROGRAM, assert_recorded_exactly_once


@pytest.fixture
def server() -> Iterator[PgServer]:
    with running_server() as started:
        yield started


def play(
    store: Store, operator: Callable[[Session, Event], None]
) -> tuple[SessionSummary, SessionRecorder, list[tuple[Event, float]]]:
    seen: list[tuple[Event, float]] = []
    client = store.client("Ana")

    async def main() -> tuple[SessionSummary, SessionRecorder]:
        clock = LoopClock()
        session = Session(
            parse_program(PROGRAM), open_treadmill("sim://", clock=clock), clock, unattended=True
        )
        recorder = SessionRecorder(store, session, client=client)
        session.subscribe(recorder)
        session.subscribe(lambda event: seen.append((event, 0.0)))
        session.subscribe(lambda event: operator(session, event))
        return await session.run(), recorder

    summary, recorder = run(main(), virtual=True)
    return summary, recorder, seen


def heard(store: Store) -> dict[str, threading.Event]:
    """What the store's writer tells, as events a test can wait for."""
    said: dict[str, threading.Event] = defaultdict(threading.Event)
    store.writer.subscribe(lambda state, detail: said[state].set())
    return said


def test_the_database_stopped_and_started_mid_session_gets_every_record_once(
    server: PgServer, tmp_path: Path
) -> None:
    url = server.create_database()
    store = Store.open(url, spool=tmp_path / "spool.sqlite3")
    try:
        store.add_client("Ana")
        said = heard(store)

        def operator(session: Session, event: Event) -> None:
            if isinstance(event, BlockStarted) and event.step.index == 1:
                server.stop()
                # the block's own records meet the stopped server
                assert said["behind"].wait(10), "the writer never noticed the database gone"
            elif isinstance(event, BlockStarted) and event.step.index == 3:
                server.start()

        summary, recorder, seen = play(store, operator)
        assert summary.outcome.value == "completed" and summary.belt_stopped
        stops = [e for e, _ in seen if isinstance(e, CommandConfirmed) and e.command == "stop"]
        assert stops and stops[-1].latency_s < 0.5  # the outage delayed no command
        assert not recorder.finish(15), store.writer.backlog().describe()
        assert said["caught-up"].is_set() and not recorder.failed
        notices = [e.message for e, _ in seen if isinstance(e, Notice)]
        behind = [m for m in notices if "cannot be written now" in m]
        assert len(behind) == 1 and "kept in the local spool" in behind[0]
        session_id = recorder.session_id
        assert session_id is not None
        record = store.session(session_id)
        assert record.status is Status.COMPLETED and record.blocks_done == 5
        assert record.client == "Ana"
        assert_recorded_exactly_once(store, session_id, seen)
    finally:
        store.close()


def test_a_console_closed_while_the_database_is_away_leaves_its_records_to_the_next(
    server: PgServer, tmp_path: Path
) -> None:
    url, spool = server.create_database(), tmp_path / "spool.sqlite3"
    store = Store.open(url, spool=spool)
    store.add_client("Ana")
    store.flush_timeout_s = 0.5
    said = heard(store)

    def operator(session: Session, event: Event) -> None:
        if isinstance(event, BlockStarted) and event.step.index == 2:
            assert store.writer.wait_idle(10)  # the session's row and first blocks are in
            server.stop()
            assert said["behind"].wait(10)

    summary, recorder, seen = play(store, operator)
    assert summary.outcome.value == "completed"
    left = recorder.finish(0.5)
    assert left.pending["sample"] > 20 and "kept in the local spool" in left.describe()
    session_id = recorder.session_id  # its row went in before the database went away
    assert session_id is not None
    closed = store.close()
    assert closed is not None and closed.pending["end_session"] == 1

    server.start()
    with Store.open(url, spool=spool) as again:  # opening sends what the spool holds
        record = again.session(session_id)
        assert record.status is Status.COMPLETED and record.blocks_done == 5
        assert_recorded_exactly_once(again, session_id, seen)
        assert not again.writer.backlog()


def test_a_batch_sent_again_after_its_answer_was_lost_is_not_doubled(
    server: PgServer, tmp_path: Path
) -> None:
    """The database took a batch but the console never heard (the answer was lost, the console
    stopped before emptying its outbox): the same records, sent again, are skipped."""
    url, spool = server.create_database(), tmp_path / "spool.sqlite3"
    Store.open(url, spool=spool).close()  # the schema
    outbox, _ = open_spool(spool)
    session = (None, "p", "", None, "sim", 1.0, "running", None, 0, None, "", 1, 1, "h", "uid-1")
    outbox.execute(
        "INSERT INTO outbox (kind, session_uid, record) VALUES ('session', 'uid-1', ?)",
        (encode(session),),
    )
    for n in range(300):
        sample = (SESSION_ID, float(n), float(n), 0, 2.5, 2.5, 0.0, float(n))
        heart = (SESSION_ID, float(n), float(n), 100 + n % 20)
        outbox.executemany(
            "INSERT INTO outbox (kind, session_uid, record) VALUES (?, 'uid-1', ?)",
            [("sample", encode(sample)), ("heart_rate", encode(heart))],
        )
    sent = outbox.execute("SELECT seq, kind, session_uid, record FROM outbox").fetchall()

    def forward() -> None:
        forwarder = Forwarder(spool, PostgresBackend(url), lambda state, detail: None)
        try:
            assert forwarder.wait_idle(10) and forwarder.failed is None
        finally:
            forwarder.close(5)

    forward()
    assert outbox.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    outbox.executemany("INSERT INTO outbox VALUES (?, ?, ?, ?)", sent)  # as if never emptied
    forward()
    outbox.close()
    with Store.open(url, spool=spool) as store:
        (record,) = store.sessions()
        assert [s.at for s in store.samples(record.id)] == [float(n) for n in range(300)]
        beats = store.execute("SELECT count(*), sum(bpm) FROM heart_rate").fetchone()
        assert tuple(beats) == (300, sum(100 + n % 20 for n in range(300)))
        applied = store.execute("SELECT seq FROM spool_applied").fetchone()[0]
        assert applied == sent[-1][0]


def test_the_spool_keeps_records_as_json_with_the_session_number_left_to_fill(
    tmp_path: Path,
) -> None:
    connection, name = open_spool(tmp_path / "spool.sqlite3")
    again, same = open_spool(tmp_path / "spool.sqlite3")
    assert name == same  # a spool keeps its name: the database counts what it took by it
    connection.close()
    again.close()
    assert json.loads(encode((SESSION_ID, 1.5, "x", None))) == {
        "values": [None, 1.5, "x", None],
        "slots": [0],
    }
    raw = sqlite3.connect(tmp_path / "spool.sqlite3")
    try:
        with pytest.raises(sqlite3.IntegrityError):  # a record without its values is refused
            raw.execute("INSERT INTO outbox (kind, session_uid) VALUES ('sample', 'u')")
    finally:
        raw.close()
