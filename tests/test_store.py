"""Session records: written as the session runs on the simulator, read back, kept through a kill."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from retrotread.clock import LoopClock, run
from retrotread.drivers.registry import open_treadmill
from retrotread.events import BlockStarted, CueDue, Event, Notice
from retrotread.program import Program, find_program, parse_program
from retrotread.progression import OperatorOutcome, Phase
from retrotread.scheduler import COUNTDOWN_FROM
from retrotread.session import Session, SessionSummary
from retrotread.store import (
    SCHEMA_VERSION,
    Client,
    SessionRecorder,
    Status,
    Store,
    StoreError,
    default_db_path,
)
from tests import pg_support
from tests.pg_support import PgServer, query_records

pg_server = pg_support.pg_server
records = pg_support.records

RETROTREAD = [sys.executable, "-m", "retrotread"]


@pytest.fixture
def store(records: str, tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(records, spool=tmp_path / "spool.sqlite3")
    yield opened
    opened.close()


def play(
    store: Store,
    program: Program,
    client: Client | None = None,
    *,
    operator: Callable[[Session, Event], None] | None = None,
) -> tuple[SessionSummary, SessionRecorder, list[Event]]:
    """Play ``program`` on the in-process simulator on the virtual clock, recording it."""
    seen: list[Event] = []

    async def main() -> tuple[SessionSummary, SessionRecorder]:
        clock = LoopClock()
        session = Session(program, open_treadmill("sim://", clock=clock), clock, unattended=True)
        recorder = SessionRecorder(store, session, client=client)
        session.subscribe(recorder)
        session.subscribe(seen.append)
        if operator is not None:
            act = operator
            session.subscribe(lambda event: act(session, event))
        return await session.run(), recorder

    summary, recorder = run(main(), virtual=True)
    return summary, recorder, seen


def test_a_session_on_the_simulator_writes_its_records(store: Store) -> None:
    client = store.add_client("Ana")
    program = find_program("first-week")
    summary, recorder, seen = play(store, program, client)
    assert recorder.session_id is not None and not recorder.failed
    record = store.session(recorder.session_id)
    assert record.client == "Ana"
    assert record.status is Status.COMPLETED
    assert (record.program, record.phase, record.interval_s) == ("first-week", Phase.WALK, 20)
    assert record.handrail == "both-hands"
    assert record.blocks_done == record.blocks_total == len(program.steps)
    assert record.retro_s == pytest.approx(program.retro_s)
    assert record.elapsed_s == pytest.approx(program.total_s)
    assert record.distance_m == pytest.approx(summary.distance_m)
    assert record.belt_stopped is True
    assert record.ended_at is not None
    assert record.ended_at - record.started_at == pytest.approx(program.total_s, abs=5)

    blocks = store.blocks(recorder.session_id)
    assert [b.idx for b in blocks] == list(range(len(program.steps)))
    assert all(b.result == "done" for b in blocks)
    assert [b.actual_s for b in blocks] == pytest.approx([s.duration_s for s in program.steps])
    assert blocks[2].kind == "retro" and blocks[2].target_mph == pytest.approx(2.6)

    samples = store.samples(recorder.session_id)
    telemetry = [e for e in seen if type(e).__name__ == "TelemetryReceived"]
    assert len(samples) >= program.total_s  # about one a second, from start to belt stopped
    assert len(samples) <= len(telemetry)
    offsets = [s.offset_s for s in samples]
    assert offsets == sorted(offsets)
    retro = [s for s in samples if s.block_idx == 2]
    # One a second, and one after each command (the slow-down for the turn-around included).
    assert 20 <= len(retro) <= 26
    # Over its 3-2-1 the belt slows for the turn-around: the block's own speed holds before.
    step = program.steps[2]
    settled = [s for s in retro if s.offset_s < step.start_s + step.duration_s - COUNTDOWN_FROM]
    assert settled[-1].target_mph == pytest.approx(2.6, abs=0.01)
    assert settled[-1].speed_mph == pytest.approx(2.6, abs=0.05)
    assert settled[-1].incline_pct == pytest.approx(2.0)
    assert retro[-1].target_mph == pytest.approx(1.0, abs=0.01)  # the turn speed
    assert samples[-1].speed_mph == 0 and samples[-1].distance_m == pytest.approx(record.distance_m)

    kinds = [e.kind for e in store.events(recorder.session_id)]
    assert kinds.count("block") == len(program.steps)
    assert kinds.count("cue") == sum(isinstance(e, CueDue) for e in seen) >= 12
    assert kinds[-1] == "ended" and "finished" in kinds
    assert "command" in kinds and "confirmed" in kinds


def test_operator_actions_and_a_stop_are_recorded(store: Store) -> None:
    def operator(session: Session, event: Event) -> None:
        if isinstance(event, BlockStarted):
            loop = asyncio.get_running_loop()
            if event.step.index == 1:
                session.extend(15)
            elif event.step.index == 2:
                session.pause()
                loop.call_later(30, session.resume)
            elif event.step.index == 4:
                session.skip()
            elif event.step.index == 6:
                loop.call_later(3, session.stop)

    program = find_program("first-week")
    summary, recorder, _ = play(store, program, operator=operator)
    assert recorder.session_id is not None
    record = store.session(recorder.session_id)
    assert record.client is None
    assert record.status is Status.STOPPED
    assert record.blocks_done == 6 == summary.blocks_done
    blocks = store.blocks(recorder.session_id)
    assert [b.result for b in blocks] == ["done"] * 4 + ["skipped", "done", "stopped"]
    assert blocks[1].extended_s == 15 and blocks[1].actual_s == pytest.approx(20)
    assert blocks[2].actual_s == pytest.approx(20)  # the pause does not count
    assert blocks[6].actual_s == pytest.approx(3)
    assert record.retro_s == pytest.approx(summary.retro_s)
    events = store.events(recorder.session_id)
    kinds = [e.kind for e in events]
    for kind in ("extended", "paused", "resumed", "skipped", "stopped", "ended"):
        assert kind in kinds
    paused = next(e for e in events if e.kind == "paused")
    resumed = next(e for e in events if e.kind == "resumed")
    assert resumed.offset_s - paused.offset_s == pytest.approx(30)


def test_outcomes_drive_the_next_session(store: Store) -> None:
    client = store.add_client("Ben")
    assert store.next_session(client).stage.seconds == 15
    program = store.next_session(client).program
    ids = []
    for _ in range(3):
        _, recorder, _ = play(store, program, client)
        assert recorder.session_id is not None
        ids.append(recorder.session_id)
    # not counted until the operator says how it went
    assert store.next_session(client).stage.successes == 0
    for session_id in ids:
        store.record_outcome(session_id, OperatorOutcome.COMPLETED, "steady")
    planned = store.next_session(client)
    assert planned.stage.seconds == 30
    assert planned.reason == "3 of 3 sessions at 15 s completed without pain: intervals go to 30 s"
    store.record_outcome(ids[-1], OperatorOutcome.PAIN, "left knee")
    assert store.next_session(client).stage.seconds == 15
    record = store.session(ids[-1])
    assert (record.outcome, record.note) == (OperatorOutcome.PAIN, "left knee")
    outcomes = [e.detail for e in store.events(ids[-1]) if e.kind == "outcome"]
    assert outcomes == ["completed: steady", "pain: left knee"]
    # a month later the same history steps back
    later = date.today() + timedelta(days=40)
    assert "days since the last session" in store.next_session(client, later).reason
    with pytest.raises(StoreError, match="no session #999"):
        store.record_outcome(999, OperatorOutcome.COMPLETED)


def test_clients_are_unique_whatever_the_case_and_typos_get_suggestions(store: Store) -> None:
    store.add_client("Ana  Silva", note="knee")
    assert store.client("ana silva").name == "Ana Silva"
    with pytest.raises(StoreError, match="already a client named 'Ana Silva'"):
        store.add_client("ANA SILVA")
    with pytest.raises(StoreError, match=r"did you mean 'Ana Silva'\?.*clients add"):
        store.client("Ana Slva")
    with pytest.raises(StoreError, match="needs a name"):
        store.add_client("  ")
    store.add_client("Ben")
    assert [c.client.name for c in store.clients()] == ["Ana Silva", "Ben"]
    assert store.clients()[0].client.note == "knee"


def test_the_schema_is_versioned_and_the_file_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite3"
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        store.add_client("Ana")
    with Store.open(path) as store:  # reopening migrates nothing and keeps the data
        assert [c.client.name for c in store.clients()] == ["Ana"]
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StoreError, match="newer retrotread"):
        Store.open(path)
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database, just bytes" * 100)
    with pytest.raises(StoreError, match="not a retrotread records file"):
        Store.open(junk)


def test_a_database_is_migrated_once_and_a_newer_one_refused(
    pg_server: PgServer, tmp_path: Path
) -> None:
    url = pg_server.create_database()
    with Store.open(url, spool=tmp_path / "spool") as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.path is None and store.location == url
        store.add_client("Ana")
    with Store.open(url, spool=tmp_path / "spool") as store:  # migrates nothing, keeps the data
        assert [c.client.name for c in store.clients()] == ["Ana"]
        versions = store.execute("SELECT version FROM schema_version ORDER BY version")
        assert [v for (v,) in versions.fetchall()] == list(range(1, SCHEMA_VERSION + 1))
        store.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="newer retrotread"):
        Store.open(url, spool=tmp_path / "spool")
    password = url.replace("postgres@", "postgres:secret@")
    with pytest.raises(StoreError, match="cannot reach the records database") as refused:
        Store.open(password.replace(f":{pg_server.port}/", ":1/"))
    assert "secret" not in str(refused.value)


def test_the_default_file_is_in_the_data_directory(tmp_path: Path) -> None:
    assert default_db_path() == tmp_path / "data" / "retrotread.sqlite3"  # conftest's data dir
    with Store.open() as store:
        assert store.path == default_db_path()


def test_a_session_left_running_by_a_dead_process_becomes_interrupted(store: Store) -> None:
    client = store.add_client("Cy")
    program = find_program("first-week")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = store.begin_session(client=client, program=program, device="sim", started_at=100.0)
    alive = store.begin_session(client=client, program=program, device="sim", started_at=200.0)
    elsewhere = store.begin_session(
        client=client, program=program, device="sim", started_at=time.time()
    )
    store.execute("UPDATE sessions SET pid = ? WHERE id = ?", (gone.pid, dead))
    store.execute("UPDATE sessions SET host = 'another-console' WHERE id = ?", (elsewhere,))
    # in a file, another host's session is over; in a shared database it is that host's to end,
    # unless it has been silent for longer than any session lasts
    if store.path is not None:
        assert store.mark_interrupted() == [dead, elsewhere]
    else:
        assert store.mark_interrupted() == [dead]
        assert store.session(elsewhere).status is Status.RUNNING
        store.execute("UPDATE sessions SET started_at = 1.0 WHERE id = ?", (elsewhere,))
        assert store.mark_interrupted() == [elsewhere]
    record = store.session(dead)
    assert record.status is Status.INTERRUPTED
    assert record.ended_at == 100.0  # no samples: it ends where it started
    assert "process ended mid-session" in record.detail
    assert store.session(alive).status is Status.RUNNING  # this process is alive
    # an interrupted session does not count for progression
    assert store.next_session(client).stage.successes == 0


def test_a_write_that_can_never_succeed_is_announced_once_and_the_session_goes_on(
    store: Store,
) -> None:
    failed = threading.Event()
    store.writer.subscribe(lambda state, _detail: failed.set() if state == "failed" else None)

    def operator(session: Session, event: Event) -> None:
        if isinstance(event, BlockStarted) and event.step.index == 3:
            # someone else's program empties the file: no sample can be written any more
            store.execute("DROP TABLE samples")
        elif isinstance(event, BlockStarted) and event.step.index == 5:
            # two blocks of samples later the writer has met the dropped table (on a database
            # through the console's spool, on its own thread): the session is still going on
            assert failed.wait(30), store.writer.backlog().describe()

    summary, recorder, seen = play(store, find_program("first-week"), operator=operator)
    assert summary.outcome.value == "completed"
    backlog = recorder.finish(5)
    assert recorder.failed
    said = backlog.describe()
    assert "no such table: samples" in said or 'relation "samples" does not exist' in said
    notices = [e for e in seen if isinstance(e, Notice) and "no longer being recorded" in e.message]
    assert len(notices) == 1


KILL_PROGRAM = """
name = "kill-me"
description = "long enough to be killed in the middle"
[[blocks]]
kind = "warm-up"
duration = "2m"
speed = 2.5
"""


@pytest.mark.realtime
def test_killing_the_process_mid_session_leaves_an_interrupted_session(
    tmp_path: Path, records: str
) -> None:
    """On a database the records go through the console's spool: what the killed console had
    not sent yet is sent by the next one opened on the same data directory."""
    db = records
    program = tmp_path / "kill-me.toml"
    program.write_text(KILL_PROGRAM)
    with Store.open(db) as store:
        store.add_client("Dee")
    child = subprocess.Popen(
        [*RETROTREAD, "run", str(program), "--unattended", "--client", "dee", "--db", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 20
        count, played, moving = 0, 0.0, 0.0
        while time.monotonic() < deadline and (played < 3 or not moving):
            time.sleep(0.2)
            count, played, moving = query_records(
                db,
                "SELECT count(*), coalesce(max(offset_s), 0), coalesce(max(speed_mph), 0) "
                "FROM samples",
            )
        if played < 3 or not moving:
            child.kill()
            _, err = child.communicate(timeout=10)
            pytest.fail(f"no samples of a moving belt recorded: {err.decode()[-2000:]}")
        time.sleep(0.5)
        killed_at = time.time()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL

    with Store.open(db) as store:  # opening it notices the dead process
        record = store.sessions()[-1]
        assert record.client == "Dee"
        assert record.status is Status.INTERRUPTED
        samples = store.samples(record.id)
        assert len(samples) >= count
        # samples right up to the kill: the last is at most about two seconds before it
        assert killed_at - samples[-1].at < 2.5
        # the session ends at its last record, a sample or an event
        last_event = max((e.at for e in store.events(record.id)), default=0.0)
        assert record.ended_at == max(samples[-1].at, last_event)
        assert samples[-1].speed_mph > 0  # the belt was still moving: nothing ended cleanly
        assert store.blocks(record.id)[0].result == "interrupted"
        assert "ended" not in [e.kind for e in store.events(record.id)]


def test_a_parsed_program_records_its_toml_and_reason(store: Store) -> None:
    client = store.add_client("Eve")
    planned = store.next_session(client)
    program = parse_program(planned.toml, "<test>")

    async def main() -> int | None:
        clock = LoopClock()
        session = Session(program, open_treadmill("sim://", clock=clock), clock, unattended=True)
        recorder = SessionRecorder(
            store, session, client=client, program_toml=planned.toml, plan_reason=planned.reason
        )
        session.subscribe(recorder)
        await session.run()
        return recorder.session_id

    session_id = run(main(), virtual=True)
    assert session_id is not None
    record = store.session(session_id)
    assert record.program_toml == planned.toml
    assert record.plan_reason == planned.reason
    assert parse_program(record.program_toml, "<again>").steps == program.steps


def test_the_recorder_takes_the_operators_outcome_for_its_own_session(store: Store) -> None:
    client = store.add_client("Fay")
    _, recorder, _ = play(store, find_program("first-week"), client)
    session_id = recorder.record_outcome("lost balance", "stepped off the side")
    record = store.session(session_id)
    assert (record.outcome, record.note) == (OperatorOutcome.LOST_BALANCE, "stepped off the side")
    program = find_program("first-week")
    clock_session = Session(program, open_treadmill("sim://"), LoopClock(), unattended=True)
    never_started = SessionRecorder(store, clock_session, client=client)
    with pytest.raises(StoreError, match="never started"):
        never_started.record_outcome(OperatorOutcome.COMPLETED)
