"""The record commands: clients, next, history, outcome, export, and run --client."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import fitdecode
import pytest

from retrotread.cli import main
from retrotread.clock import LoopClock, run
from retrotread.commands.records import sparkline
from retrotread.drivers.registry import open_treadmill
from retrotread.progression import OperatorOutcome
from retrotread.recording import Recording
from retrotread.session import Session, SessionSummary
from retrotread.store import Status, Store
from tests import pg_support

pg_server = pg_support.pg_server
records = pg_support.records

RETROTREAD = [sys.executable, "-m", "retrotread"]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def db(records: str) -> str:
    """The records the commands get with ``--db``: a file, then a PostgreSQL database."""
    return records


def test_clients_add_and_list(capsys: pytest.CaptureFixture[str], db: str) -> None:
    status, out, _ = cli(capsys, "clients", "add", "Ana Silva", "--note", "knee rehab", "--db", db)
    assert status == 0 and "added client 'Ana Silva'" in out
    status, _, err = cli(capsys, "clients", "add", "ana silva", "--db", db)
    assert status == 2 and "already a client named 'Ana Silva'" in err
    status, out, _ = cli(capsys, "clients", "--db", db)
    assert status == 0
    header, _, row = out.splitlines()
    assert header.split() == ["client", "sessions", "last", "session", "next", "note"]
    assert row.startswith("Ana Silva") and "retro walk 15 s, hold both handrails" in row
    assert row.endswith("knee rehab")


def test_next_prints_the_session_and_why(capsys: pytest.CaptureFixture[str], db: str) -> None:
    cli(capsys, "clients", "add", "Ana", "--db", db)
    status, out, _ = cli(capsys, "next", "--client", "ana", "--db", db)
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "Next for Ana: retro walk 15 s, hold both handrails"
    assert lines[1].startswith("Why: first session: 15 s intervals, hold both handrails")
    assert lines[2].startswith("Program: retro-walk-15s — 13:30 total, 1:30 backward")
    assert "retrotread next --client Ana --start" in lines[3]
    status, _, err = cli(capsys, "next", "--client", "Anna", "--db", db)
    assert status == 2 and "no client named 'Anna' (did you mean 'Ana'?)" in err


def test_next_start_rehearse_plays_the_generated_program_unrecorded(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    cli(capsys, "clients", "add", "Ana", "--db", db)
    status, out, _ = cli(capsys, "next", "--client", "Ana", "--start", "--rehearse", "--db", db)
    assert status == 0
    assert "program   retro-walk-15s on simulator" in out
    assert "blocks    26 of 26" in out and "retro     1:30" in out
    with Store.open(db) as store:
        assert store.sessions() == []


def test_a_rehearsal_is_never_recorded_for_a_client(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    cli(capsys, "clients", "add", "Ana", "--db", db)
    status, _, err = cli(capsys, "run", "first-week", "--rehearse", "--client", "Ana", "--db", db)
    assert status == 2 and "rehearsal" in err and "not recorded" in err


def test_run_with_an_unknown_client_does_not_start(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    status, _, err = cli(capsys, "run", "first-week", "--unattended", "--client", "Zed", "--db", db)
    assert status == 2 and "no client named 'Zed'" in err


def recorded_session(db: str, client: str = "Ana") -> tuple[Store, int]:
    store = Store.open(db)
    person = store.find_client(client) or store.add_client(client)
    recording = Recording(store, person)

    async def main_() -> None:
        clock = LoopClock()
        session = Session(
            store.next_session(person).program,
            open_treadmill("sim://", clock=clock),
            clock,
            unattended=True,
        )
        recording.attach(session)
        await session.run()

    run(main_(), virtual=True)
    assert recording.recorder is not None and recording.recorder.session_id is not None
    return store, recording.recorder.session_id


def test_history_outcome_and_export(
    capsys: pytest.CaptureFixture[str], db: str, tmp_path: Path
) -> None:
    store, first = recorded_session(db)
    store.close()
    status, out, _ = cli(capsys, "outcome", "last", "completed", "--note", "fine", "--db", db)
    assert status == 0
    assert f"session #{first}: outcome completed" in out
    assert "next for Ana: retro walk 15 s" in out and "1 of 3 sessions at 15 s" in out
    status, out, _ = cli(capsys, "history", "--client", "Ana", "--db", db)
    assert status == 0
    header, rule, row = out.splitlines()
    assert header.split()[:5] == ["session", "started", "client", "program", "ended"]
    cells = row.split()
    assert cells[0] == f"#{first}" and "retro-walk-15s" in cells and "completed" in cells
    assert "1:30" in cells and "26/26" in cells
    status, out, _ = cli(capsys, "export", str(first), "-o", str(tmp_path / "s.fit"), "--db", db)
    assert status == 0 and "(FIT)" in out
    with fitdecode.FitReader(str(tmp_path / "s.fit")) as reader:
        names = {f.name for f in reader if isinstance(f, fitdecode.FitDataMessage)}
    assert {"file_id", "record", "lap", "session", "activity"} <= names
    os.chdir(tmp_path)
    status, out, _ = cli(capsys, "export", "last", "--format", "tcx", "--db", db)
    assert status == 0
    written = list(tmp_path.glob(f"retrotread-{first}-*.tcx"))
    assert len(written) == 1 and written[0].name in out
    status, _, err = cli(capsys, "export", "42", "--db", db)
    assert status == 2 and "no session #42" in err
    status, _, err = cli(capsys, "outcome", "x", "pain", "--db", db)
    assert status == 2 and "SESSION must be a number or 'last'" in err


def test_after_an_attended_run_the_operator_is_asked_how_it_went(
    db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store.open(db)
    client = store.add_client("Ana")
    recording = Recording(store, client)
    # an unknown key is asked again; then "b" (lost balance) and a note
    monkeypatch.setattr(sys, "stdin", io.StringIO("x\nb\nstepped off at 40 s\n"))

    async def main_() -> SessionSummary:
        clock = LoopClock()
        program = store.next_session(client).program
        session = Session(program, open_treadmill("sim://", clock=clock), clock, unattended=True)
        recording.attach(session)
        return await session.run()

    summary = run(main_(), virtual=True)
    recording.conclude(summary, ask=True)  # closes the store
    out = capsys.readouterr().out
    assert out.count("How did it go?") == 2 and "outcome recorded: lost balance" in out
    assert recording.recorder is not None and recording.recorder.session_id is not None
    with Store.open(db) as reopened:
        record = reopened.session(recording.recorder.session_id)
        assert (record.outcome, record.note) == (
            OperatorOutcome.LOST_BALANCE,
            "stepped off at 40 s",
        )
        assert reopened.next_session(client).stage.seconds == 15


SHORT = """
name = "short-retro"
description = "two short backward blocks"
[defaults]
start_facing = "rear"
[[blocks]]
kind = "retro"
duration = "2s"
speed = 2.6
[[blocks]]
kind = "retro"
duration = "2s"
speed = 2.8
"""


@pytest.mark.realtime
def test_a_headless_run_for_a_client_is_recorded(tmp_path: Path, db: str) -> None:
    program = tmp_path / "short.toml"
    program.write_text(SHORT)
    with Store.open(db) as store:
        store.add_client("Ana")
    result = subprocess.run(
        [*RETROTREAD, "run", str(program), "--unattended", "--client", "Ana", "--db", db],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert "recorded as session #1 for Ana" in result.stdout
    assert "retrotread outcome 1 completed|pain|lost-balance|dizziness" in result.stdout
    with Store.open(db) as store:
        record = store.session(1)
        assert record.status is Status.COMPLETED and record.belt_stopped
        assert record.blocks_done == 2 and record.retro_s == pytest.approx(4, abs=0.1)
        assert len(store.samples(1)) >= 4


def test_the_history_chart_shows_retro_time_per_session() -> None:
    assert sparkline([0, 30, 60, 120]) == " ▃▅█"
    assert sparkline([0, 0]) == "  "
    assert sparkline([]) == ""


def test_clients_db_before_add_is_the_file_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    chosen = tmp_path / "clinic.sqlite3"
    status, out, _ = cli(capsys, "clients", "--db", str(chosen), "add", "Ana")
    assert status == 0 and str(chosen) in out
    assert chosen.is_file()
    status, out, _ = cli(capsys, "clients", "--db", str(chosen))
    assert status == 0 and "Ana" in out


@pytest.mark.parametrize(
    "command", [["history"], ["clients"], ["export", "1"], ["next", "--client", "Ana"]]
)
def test_a_read_only_command_never_creates_records(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str]
) -> None:
    mistyped = tmp_path / "no" / "such" / "dir" / "x.db"
    status, _, err = cli(capsys, *command, "--db", str(mistyped))
    assert status == 2 and f"no records at {mistyped}: it does not exist" in err
    assert not (tmp_path / "no").exists()


def test_a_read_only_command_leaves_the_file_as_it_was(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    chosen = tmp_path / "x.db"
    cli(capsys, "clients", "add", "Ana", "--db", str(chosen))
    before = chosen.read_bytes()
    status, out, _ = cli(capsys, "history", "--db", str(chosen))
    assert status == 0 and "no sessions recorded" in out
    assert chosen.read_bytes() == before


def test_records_the_operator_chose_but_cannot_be_written_stop_the_run_before_the_belt(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    status, out, err = cli(
        capsys, "run", "first-week", "--unattended", "--db", str(blocked / "x.db")
    )
    assert status == 2 and "--no-record" in err and "nothing was started" in err
    assert "summary" not in out  # nothing played


def test_no_record_opens_no_records_and_refuses_a_client(tmp_path: Path) -> None:
    from retrotread.options import RecordOptions
    from retrotread.recording import open_recording
    from retrotread.store import StoreError

    blocked = tmp_path / "a-file" / "x.db"
    assert open_recording(RecordOptions(db=blocked, enabled=False)) is None
    with pytest.raises(StoreError, match="drop --no-record, or drop --client"):
        open_recording(RecordOptions(client="Ana", enabled=False))


def test_a_data_folder_that_is_a_file_means_an_unrecorded_run_not_an_internal_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "data-is-a-file"
    folder.write_text("")
    monkeypatch.setenv("RETROTREAD_DATA_DIR", str(folder))
    status, out, err = cli(capsys, "run", "first-week", "--rehearse", "--quiet")
    assert status == 0 and "belt      stopped" in out
    status, _, err = cli(capsys, "history")
    assert status == 2 and "data folder" in err and "internal error" not in err


def test_stop_before_the_go_records_no_session(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from retrotread.clock import LoopClock, run
    from retrotread.drivers.registry import open_treadmill
    from retrotread.program import find_program
    from retrotread.recording import Recording
    from retrotread.session import Session
    from retrotread.store import Store

    chosen = tmp_path / "x.db"

    async def refused() -> None:
        clock = LoopClock()
        session = Session(find_program("first-week"), open_treadmill("sim://", clock=clock), clock)

        async def no_go() -> bool:
            return False

        session.go = no_go
        store = Store.open(chosen)
        recording = Recording(store, None)
        recording.attach(session)
        summary = await session.run()
        recording.conclude(summary, ask=False)

    run(refused(), virtual=True)
    with Store.open(chosen) as store:
        assert store.sessions(None) == []


def test_the_play_it_with_hint_is_a_shell_command_with_its_records(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import shlex

    chosen = tmp_path / "my records.db"
    name = 'O\'Brien "Bob"'
    cli(capsys, "clients", "add", name, "--db", str(chosen))
    status, out, _ = cli(capsys, "next", "--client", name, "--db", str(chosen))
    hint = next(line for line in out.splitlines() if line.startswith("Play it with: "))
    argv = shlex.split(hint.removeprefix("Play it with: "))
    assert status == 0
    assert argv == ["retrotread", "next", "--client", name, "--start", "--db", str(chosen)]
