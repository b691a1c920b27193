"""Recording never delays a command: a locked or full records file holds the records in memory
and they reach the file, each exactly once, when it can be written again (issue 13, finding 14).

The lock is held by another process (Python's sqlite3 in a subprocess) for longer than the
writer's busy timeout; a full disk is SQLite's own "database or disk is full", from a page limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from retrotread.clock import LoopClock, run
from retrotread.drivers.registry import open_treadmill
from retrotread.events import (
    BlockStarted,
    CommandConfirmed,
    Countdown,
    Event,
    Notice,
    ProgramStarted,
    TelemetryReceived,
    Tick,
)
from retrotread.program import Program, parse_program
from retrotread.session import Session, SessionSummary
from retrotread.store import (
    SESSION_ID,
    RecordWriter,
    SessionRecorder,
    Status,
    Store,
    describe_event,
)
from retrotread.store.backend import PostgresBackend
from retrotread.store.spool import SpooledWriter, open_spool
from tests import pg_support

pg_server = pg_support.pg_server
records = pg_support.records

RETROTREAD = [sys.executable, "-m", "retrotread"]

PROGRAM = """
name = "writer"
description = "four short blocks"
[defaults]
retro_band = [2.6, 3.2]
turn_speed = 1.0
[[blocks]]
kind = "warm-up"
duration = "40s"
speed = 2.5
[[blocks]]
kind = "turn-around"
[[blocks]]
kind = "retro"
duration = "60s"
speed = 2.6
[[blocks]]
kind = "turn-around"
[[blocks]]
kind = "cool-down"
duration = "40s"
speed = 2.2
"""

LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
for line in sys.stdin:
    if line.strip() == "lock":
        db.execute("BEGIN EXCLUSIVE")
        print("locked", flush=True)
    elif line.strip() == "release":
        db.execute("COMMIT")
        print("released", flush=True)
"""


class Locker:
    """Another process that takes and releases an exclusive lock on the records file."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _say(self, word: str, answer: str) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(word + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == answer

    def lock(self) -> None:
        self._say("lock", "locked")

    def release(self) -> None:
        self._say("release", "released")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def local_file(store: Store) -> Path:
    """The file the session writer writes: the records file, or a database's spool (made
    ready here, before anyone locks it)."""
    if store.spool is None:
        assert store.path is not None
        return store.path
    connection, _ = open_spool(store.spool)
    connection.close()
    return store.spool


@pytest.fixture
def store(records: str, tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(records, spool=tmp_path / "spool.sqlite3")
    yield opened
    opened.close()


@pytest.fixture
def locker(store: Store) -> Iterator[Locker]:
    holder = Locker(local_file(store))
    try:
        yield holder
    finally:
        holder.close()


def play(
    store: Store,
    program: Program,
    operator: Callable[[Session, Event], None],
) -> tuple[SessionSummary, SessionRecorder, list[tuple[Event, float]]]:
    """Play on the virtual clock; every event with the real time it was seen at."""
    seen: list[tuple[Event, float]] = []

    async def main() -> tuple[SessionSummary, SessionRecorder]:
        clock = LoopClock()
        session = Session(program, open_treadmill("sim://", clock=clock), clock, unattended=True)
        recorder = SessionRecorder(store, session)
        session.subscribe(recorder)
        session.subscribe(lambda event: seen.append((event, time.perf_counter())))
        session.subscribe(lambda event: operator(session, event))
        return await session.run(), recorder

    summary, recorder = run(main(), virtual=True)
    return summary, recorder, seen


def assert_recorded_exactly_once(
    store: Store, session_id: int, seen: list[tuple[Event, float]]
) -> None:
    """Every sample and every kept event of the session is in the file, once, in order."""
    events = [event for event, _ in seen]
    origin = next(e.at for e in events if isinstance(e, ProgramStarted))
    started = events.index(next(e for e in events if isinstance(e, ProgramStarted)))
    after = events[started + 1 :]
    telemetry = [e for e in after if isinstance(e, TelemetryReceived)]
    samples = store.samples(session_id)
    assert [s.offset_s for s in samples] == pytest.approx([e.at - origin for e in telemetry])
    assert [s.distance_m for s in samples] == [e.distance_m for e in telemetry]
    kept = [
        described
        for e in after
        if not isinstance(e, Tick | Countdown) and (described := describe_event(e)) is not None
    ]
    assert [(e.kind, e.detail) for e in store.events(session_id)] == kept


def test_a_locked_file_delays_no_command_and_every_record_lands_once(
    store: Store, locker: Locker
) -> None:
    stop_asked: list[float] = []

    def operator(session: Session, event: Event) -> None:
        if isinstance(event, BlockStarted) and event.step.index == 2:

            def lock_and_stop() -> None:
                # the lock is held from here to after the session, far past the busy timeout,
                # and the records of the stop itself are the first to meet it
                locker.lock()
                stop_asked.append(time.perf_counter())
                session.stop()

            loop = asyncio.get_running_loop()
            loop.call_at(session.clock.now() + 20, lock_and_stop)

    summary, recorder, seen = play(store, parse_program(PROGRAM), operator)
    assert summary.belt_stopped
    # the stop reached the belt at once, in program time and in real time
    confirmed = [
        (e, at) for e, at in seen if isinstance(e, CommandConfirmed) and e.command == "stop"
    ]
    assert confirmed, "the stop was never confirmed"
    stop_event, confirmed_at = confirmed[0]
    assert confirmed_at - stop_asked[0] < 1.0  # the writer's busy timeout alone is 0.25 s
    assert stop_event.latency_s < 0.5  # program time: the stop was not queued behind a write
    # the session ran to its end while its last records waited behind the lock
    assert store.writer.pending > 0
    assert not recorder.failed

    locker.release()
    assert not recorder.finish(10)
    session_id = recorder.session_id
    assert session_id is not None
    assert store.session(session_id).status is Status.STOPPED
    assert_recorded_exactly_once(store, session_id, seen)


def test_a_file_locked_from_the_start_gets_the_whole_session_afterwards(
    store: Store, locker: Locker
) -> None:
    locker.lock()
    summary, recorder, seen = play(store, parse_program(PROGRAM), lambda s, e: None)
    assert summary.outcome.value == "completed"
    assert store.writer.pending > 0
    assert store.sessions() == []  # nothing could be written yet
    assert "locked" in store.writer.error
    locker.release()
    assert not recorder.finish(10)
    session_id = recorder.session_id
    assert session_id is not None
    record = store.session(session_id)
    assert record.status is Status.COMPLETED and record.blocks_done == 5
    assert_recorded_exactly_once(store, session_id, seen)


def test_a_full_disk_holds_the_records_until_there_is_room(store: Store) -> None:
    with contextlib.closing(sqlite3.connect(local_file(store))) as raw:
        room = {"pages": raw.execute("PRAGMA page_count").fetchone()[0]}  # no page to spare

    def limit(connection: sqlite3.Connection) -> None:
        connection.execute(f"PRAGMA max_page_count = {room['pages']}")

    store.on_connect = limit
    summary, recorder, seen = play(store, parse_program(PROGRAM), lambda s, e: None)
    assert summary.outcome.value == "completed"
    assert store.writer.wait_idle(0.5) is False and "full" in store.writer.error
    room["pages"] = 1_000_000  # space freed: the writer's next connection has room
    assert not recorder.finish(10)
    session_id = recorder.session_id
    assert session_id is not None
    assert_recorded_exactly_once(store, session_id, seen)


def test_memory_for_waiting_samples_is_bounded_and_the_rest_still_lands(
    store: Store, locker: Locker
) -> None:
    store.writer.max_pending_samples = 50
    locker.lock()
    summary, recorder, seen = play(store, parse_program(PROGRAM), lambda s, e: None)
    assert summary.outcome.value == "completed"
    incomplete = [
        e for e, _ in seen if isinstance(e, Notice) and "recording incomplete" in e.message
    ]
    assert len(incomplete) == 1 and "newer ones are dropped" in incomplete[0].message
    assert recorder.failed
    locker.release()
    backlog = recorder.finish(10)
    telemetry = sum(isinstance(e, TelemetryReceived) for e, _ in seen)
    assert backlog.pending == {} and backlog.dropped_samples > 0
    assert "samples dropped" in backlog.describe()
    session_id = recorder.session_id
    assert session_id is not None
    samples = store.samples(session_id)
    assert len(samples) == 50 == telemetry - backlog.dropped_samples
    record = store.session(session_id)
    assert record.status is Status.COMPLETED and record.blocks_done == 5  # blocks always kept


def test_closing_while_locked_waits_a_bounded_time_and_says_what_is_unwritten(
    tmp_path: Path, records: str
) -> None:
    store = Store.open(records, spool=tmp_path / "spool.sqlite3")
    locker = Locker(local_file(store))
    try:
        locker.lock()
        summary, recorder, _ = play(store, parse_program(PROGRAM), lambda s, e: None)
        store.flush_timeout_s = 0.5
        began = time.monotonic()
        backlog = store.close()
        assert time.monotonic() - began < 3
        assert backlog is not None and backlog.pending["sample"] > 100
        assert backlog.pending["session"] == 1 and "locked" in backlog.describe()
        locker.release()
    finally:
        locker.close()
    with Store.open(records, spool=tmp_path / "spool.sqlite3") as reopened:
        assert reopened.sessions() == []  # what was unwritten is gone, and said so


def test_the_writer_alone_writes_batches_whole(tmp_path: Path, records: str) -> None:
    """A failed batch leaves nothing behind: the retry writes it once."""
    with Store.open(records, spool=tmp_path / "spool.sqlite3") as store:
        local = local_file(store)
        if isinstance(store.backend, PostgresBackend):
            writer: RecordWriter | SpooledWriter = SpooledWriter(
                local, store.backend, busy_timeout_s=0.05
            )
        else:
            writer = RecordWriter(local, busy_timeout_s=0.05)
        locker = Locker(local)
        try:
            locker.lock()
            values = (None, "p", "", None, "sim", 1.0, "running", None, 0, None, "", 5, 1, "h")
            key = writer.begin_session(values)
            for n in range(500):
                writer.submit("event", key, (SESSION_ID, float(n), float(n), "notice", str(n)))
            assert not writer.wait_idle(0.3) and writer.behind
            locker.release()
            assert writer.wait_idle(10) and not writer.behind
        finally:
            locker.close()
            writer.close(5)
        assert key.id is not None
        assert [e.detail for e in store.events(key.id)] == [str(n) for n in range(500)]


JOURNAL_PROGRAM = """
name = "locked"
description = "one block, long enough to be stopped in the middle"
[[blocks]]
kind = "warm-up"
duration = "2m"
speed = 2.5
"""


@pytest.mark.realtime
def test_sigterm_while_the_file_is_locked_stops_the_belt_promptly(
    tmp_path: Path, records: str
) -> None:
    """On a database, the file locked is the console's spool (the default one, in its data
    directory): the records wait in memory, then in the spool, then go to the database."""
    db = records
    program = tmp_path / "locked.toml"
    program.write_text(JOURNAL_PROGRAM)
    journal = tmp_path / "belt.jsonl"
    with Store.open(db) as store:
        local = local_file(store)
    locker = Locker(local)
    device = f"sim://?record={journal}"
    child = subprocess.Popen(
        [*RETROTREAD, "run", str(program), "--unattended", "--db", str(db), "--device", device],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:

        def entries() -> list[dict[str, object]]:
            if not journal.exists():
                return []
            return [json.loads(x) for x in journal.read_text().splitlines() if x.endswith("}")]

        deadline = time.monotonic() + 20
        while not any(e.get("name") == "start" for e in entries()):
            assert time.monotonic() < deadline, "the belt never started"
            time.sleep(0.05)
        time.sleep(1.0)  # samples are being recorded
        locker.lock()
        time.sleep(1.0)  # a second of records wait behind the lock
        sent = time.monotonic()
        child.send_signal(signal.SIGTERM)
        while not any(e.get("name") == "stop" and e.get("source") == "link" for e in entries()):
            assert time.monotonic() - sent < 10, "no stop reached the belt"
            time.sleep(0.01)
        stop_latency = time.monotonic() - sent
        time.sleep(0.5)
        locker.release()  # the run's end waits a bounded time for the records, and gets them
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        locker.close()
    assert stop_latency < 1.0, f"stop reached the belt {stop_latency:.2f} s after SIGTERM"
    assert child.returncode == 143, err
    assert "recorded as session #1" in out, out + err
    with Store.open(db) as store:
        record = store.session(1)
        assert record.status is Status.INTERRUPTED
        kinds = [e.kind for e in store.events(1)]
        assert kinds.count("ended") == 1 and kinds.count("notice") >= 1
        offsets = [s.offset_s for s in store.samples(1)]
        assert offsets == sorted(set(offsets)) and offsets[-1] >= 2.0
