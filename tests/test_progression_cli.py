"""Issue 18's findings in the record commands: outcome, history, next (one story each)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from retrotread import playback
from retrotread.cli import main
from retrotread.clock import LoopClock, run
from retrotread.drivers.registry import open_treadmill
from retrotread.options import RunOptions
from retrotread.program import Program, parse_program
from retrotread.progression import OperatorOutcome
from retrotread.recording import Recording
from retrotread.session import Session
from retrotread.store import Store


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "records.sqlite3")


def play(db: str, client: str, program: Program | None = None) -> int:
    """One recorded session for ``client`` on the virtual clock; returns its number."""
    with Store.open(db) as store:
        person = store.find_client(client) or store.add_client(client)
        recording = Recording(store, person)

        async def go() -> None:
            clock = LoopClock()
            chosen = program or store.next_session(person).program
            session = Session(chosen, open_treadmill("sim://", clock=clock), clock, unattended=True)
            recording.attach(session)
            await session.run()

        run(go(), virtual=True)
        assert recording.recorder is not None
        recording.recorder.finish()
        assert recording.recorder.session_id is not None
        return recording.recorder.session_id


SHORT = parse_program(
    """
name = "short-retro"
description = "one 20 s backward block"
[defaults]
start_facing = "rear"
[[blocks]]
kind = "retro"
duration = "20s"
speed = 2.6
""",
    "<short>",
)


def test_outcome_last_goes_to_the_named_clients_last_session(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    ana = play(db, "Ana", SHORT)
    ben = play(db, "Ben", SHORT)  # interleaved: Ben's is the last in the file
    status, _, err = cli(capsys, "outcome", "last", "pain", "--db", db)
    assert status == 2
    assert "name the client with --client NAME" in err and "Ana, Ben" in err
    status, out, _ = cli(capsys, "outcome", "last", "pain", "--client", "ana", "--db", db)
    assert status == 0 and f"session #{ana}: outcome pain for Ana" in out
    with Store.open(db) as store:
        assert store.session(ana).outcome is OperatorOutcome.PAIN
        assert store.session(ben).outcome is None
    status, _, err = cli(capsys, "outcome", str(ben), "pain", "--client", "Ana", "--db", db)
    assert status == 2 and f"session #{ben} is Ben's, not Ana's" in err


def test_changing_an_outcome_leaves_a_trace_in_history(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    first = play(db, "Ana", SHORT)
    cli(capsys, "outcome", str(first), "pain", "--db", db)
    status, out, _ = cli(capsys, "outcome", str(first), "completed", "--db", db)
    assert status == 0
    assert "outcome completed for Ana, was pain (both kept in the history)" in out
    status, out, _ = cli(capsys, "history", "--client", "Ana", "--db", db)
    assert status == 0 and "completed (was pain)" in out


def test_an_outcome_for_a_session_still_running_is_refused(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    with Store.open(db) as store:
        client = store.add_client("Ana")
        running = store.begin_session(
            client=client, program=SHORT, device="sim://", started_at=time.time()
        )
    status, _, err = cli(capsys, "outcome", str(running), "completed", "--db", db)
    assert status == 2 and f"session #{running} is still running" in err
    with Store.open(db) as store:
        assert store.session(running).outcome is None


def test_cannot_move_properly_from_the_command_line(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    play(db, "Ana", SHORT)
    status, out, _ = cli(capsys, "outcome", "last", "cannot-move", "--db", db)
    assert status == 0 and "outcome cannot move properly" in out
    assert "cannot move properly reported at 20 s" in out


def test_history_limit_zero_is_a_usage_error_not_an_empty_file(
    capsys: pytest.CaptureFixture[str], db: str
) -> None:
    play(db, "Ana", SHORT)
    with pytest.raises(SystemExit) as exited:
        main(["history", "--limit", "0", "--db", db])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "N must be 1 or more, got 0" in err and "no sessions recorded" not in err
    status, out, _ = cli(capsys, "history", "--limit", "1", "--db", db)
    assert status == 0 and "short-retro" in out


def test_next_start_takes_mute_and_hands_it_to_the_run(
    capsys: pytest.CaptureFixture[str], db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli(capsys, "clients", "add", "Ana", "--db", db)
    handed: list[RunOptions] = []
    real_run = playback.run_headless

    def run_headless(options: RunOptions, program: Program | None = None) -> int:
        handed.append(options)
        return real_run(options, program)

    monkeypatch.setattr(playback, "run_headless", run_headless)
    status, out, _ = cli(
        capsys, "next", "--client", "Ana", "--start", "--rehearse", "--mute", "--db", db
    )
    assert status == 0 and "blocks    26 of 26" in out
    assert len(handed) == 1 and handed[0].speech is None and handed[0].program == "retro-walk-15s"
