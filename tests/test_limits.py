"""A client's limits: set by the clinician, enforced by the governor on top of the program and
the profile; a program that would exceed them is refused before the belt moves."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from retrotread.clinic.limits import ClientLimits, LimitsError
from retrotread.clock import LoopClock, run
from retrotread.drivers.sim import SimDriver
from retrotread.drivers.url import DeviceUrl
from retrotread.errors import SafetyError
from retrotread.profiles import get_profile
from retrotread.program import Handrail, find_program, parse_program
from retrotread.progression import OperatorOutcome
from retrotread.safety import Governor
from retrotread.store import Status, Store
from retrotread.units import Unit, mph, percent

PROGRAM = """
name = "limits-check"
description = "a walk, a long backward stretch, a run"
[defaults]
retro_run_band = [3.5, 4.5]
[[blocks]]
kind = "warm-up"
duration = "1m"
speed = 3.0
incline = 4.0
[[blocks]]
kind = "turn-around"
[[blocks]]
kind = "retro"
name = "Long retro"
duration = "90s"
speed = 2.6
handrail = "light-touch"
[[blocks]]
kind = "retro-run"
name = "Retro run"
duration = "30s"
speed = 3.8
handrail = "both-hands"
[[blocks]]
kind = "turn-around"
[[blocks]]
kind = "cool-down"
duration = "1m"
speed = 2.4
"""


def governor(limits: ClientLimits) -> Governor:
    sim = get_profile("simulator")
    driver = SimDriver(DeviceUrl.parse("sim://"), sim, LoopClock())
    return Governor(sim, driver.capabilities, limits.caps("Ana"))


def test_every_limit_the_program_exceeds_is_named() -> None:
    program = parse_program(PROGRAM, "<limits>")
    limits = ClientLimits(
        speed_low_mph=2.8,
        speed_high_mph=3.6,
        incline_max_pct=2.0,
        longest_backward_s=60,
        handrail=Handrail.BOTH_HANDS,
        retro_run=False,
    )
    problems = governor(limits).check(program.steps)
    assert problems == [
        "from block 'Long retro': 120 s backward without a turn-around, longer than Ana's "
        "limit of 60 s",
        "block 'Long retro': light-touch, less support than Ana's limit (both-hands)",
        "block 'Retro run': retro-running is not allowed for Ana",
        "block 'Warm-up': incline 4 % is above Ana's limit of 2 %",
        "block 'Long retro': 2.6 mph is below Ana's backward band (from 2.8 mph); it would run "
        "at 2.8 mph",
        "block 'Retro run': 3.8 mph is above Ana's limit (3.6 mph); it would run at 3.6 mph",
    ]
    assert governor(ClientLimits()).check(program.steps) == []


def test_the_governor_keeps_every_command_inside_the_limits() -> None:
    program = parse_program(PROGRAM, "<limits>")
    gov = governor(ClientLimits(speed_low_mph=2.8, speed_high_mph=3.2, incline_max_pct=2.0))
    warm_up, _, retro, run_, *_ = program.steps
    assert gov.speed(warm_up, mph(4)).to(Unit.MPH).value <= 3.2
    assert float(gov.speed(retro, mph("2.6")).to(Unit.MPH).value) >= 2.8
    with pytest.raises(SafetyError, match=r"band 3\.5–4\.5 mph is outside Ana's limits"):
        gov.speed(run_, mph("3.8"))  # a retro-run band wholly above the client's top speed
    assert gov.incline(percent(10)) == percent(2)


def test_a_session_refuses_a_program_over_the_clients_limits_before_the_belt_moves() -> None:
    from retrotread.session import Session
    from retrotread.vocabulary import Outcome

    program = find_program("first-week")  # 20 s intervals at 2.6-3.2 mph, both hands
    limits = ClientLimits(speed_high_mph=2.4, longest_backward_s=15)

    async def main() -> tuple[Outcome, list[str], list[str]]:
        clock = LoopClock()
        driver = SimDriver(DeviceUrl.parse("sim://"), get_profile("simulator"), clock)
        session = Session(program, driver, clock, unattended=True, caps=limits.caps("Ana"))
        summary = await session.run()
        assert driver.machine is not None
        sent = [c.name for c in driver.machine.commands]
        return summary.outcome, summary.detail.splitlines(), sent

    outcome, lines, sent = run(main(), virtual=True)
    assert outcome is Outcome.FAULT
    assert lines[0] == "this program cannot run as written on this treadmill:"
    assert any("longer than Ana's limit of 15 s" in line for line in lines)
    assert any("is outside Ana's limits" in line for line in lines)
    assert "start" not in sent and "set-speed" not in sent  # the belt never moved


def test_limits_are_checked_when_set_and_shown_before_the_start() -> None:
    with pytest.raises(LimitsError, match="upside down"):
        ClientLimits(speed_low_mph=3.2, speed_high_mph=2.6)
    with pytest.raises(LimitsError, match="needs both the age and the percentage"):
        ClientLimits(age=60)
    limits = ClientLimits(
        speed_low_mph=2.6,
        speed_high_mph=3.0,
        longest_backward_s=60,
        handrail=Handrail.LIGHT_TOUCH,
        retro_run=False,
        age=60,
        hr_percent=70,
    )
    assert limits.ceiling == 112
    assert limits.describe() == [
        "speed: 2.6–3 mph backward, at most 3 mph",
        "backward: at most 60 s without a turn-around",
        "handrails: light-touch or more support",
        "retro-running: not allowed",
        "heart rate: at most 112 bpm (70 % of 220 − 60); above it the belt slows to 2 mph",
    ]
    assert ClientLimits.from_row(limits.as_row()) == limits


def test_limits_and_feelings_are_stored_with_the_client(tmp_path: Path) -> None:
    from retrotread.clinic import records
    from retrotread.clinic.records import Feeling, FeelingError

    with Store.open(tmp_path / "records.sqlite3") as store:
        ana, ben = store.add_client("Ana"), store.add_client("Ben")
        assert records.limits(store, ana) == ClientLimits()
        chosen = ClientLimits(speed_high_mph=3.0, handrail=Handrail.BOTH_HANDS, retro_run=False)
        records.set_limits(store, ana, chosen)
        records.set_limits(store, ana, chosen.with_changes({"hr_ceiling_bpm": 120}))
        assert records.limits(store, ana) == replace(chosen, hr_ceiling_bpm=120)
        assert records.limits(store, ben) == ClientLimits()
        session = store.begin_session(
            client=ana, program=find_program("first-week"), device="sim://", started_at=1e9
        )
        store.end_session(
            session,
            ended_at=1e9 + 900,
            status=Status.COMPLETED,
            detail="",
            distance_m=0,
            belt_stopped=True,
        )
        records.record_feeling(store, session, Feeling(pain=2, block_idx=3))
        records.record_feeling(store, session, Feeling(pain=5, exertion=4, block_idx=7))
        assert records.session_feeling(store, session) == Feeling(pain=5, exertion=4)
        records.record_feeling(store, session, Feeling(pain=3, exertion=3.5, balance_losses=0))
        assert records.session_feeling(store, session) == Feeling(3, 3.5, 0)
        assert [f.block_idx for f in records.feelings(store, session)] == [-1, 3, 7]
        (evidence,) = records.evidence(store, ana)
        assert (evidence.pain, evidence.exertion, evidence.balance_losses) == (3, 3.5, 0)
    with pytest.raises(FeelingError, match="Borg CR10"):
        Feeling(exertion=3.3)
    with pytest.raises(FeelingError, match="outside 0–10"):
        Feeling(pain=11)


def test_limits_and_feel_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from retrotread.cli import main

    db = str(tmp_path / "records.sqlite3")
    with Store.open(db) as store:
        ana = store.add_client("Ana")
        session = store.begin_session(
            client=ana,
            program=find_program("first-week"),
            device="sim://",
            started_at=time.time() - 3600,
        )
        store.end_session(
            session,
            ended_at=time.time() - 2700,
            status=Status.COMPLETED,
            detail="",
            distance_m=0,
            belt_stopped=True,
        )
        store.record_outcome(session, OperatorOutcome.COMPLETED)
    assert main(["limits", "--client", "ana", "--db", db]) == 0
    assert capsys.readouterr().out == "No limits set for Ana.\n"
    status = main(
        [
            "limits", "--client", "Ana", "--speed", "2.6-3.0", "--backward", "60",
            "--handrail", "both-hands", "--retro-run", "no", "--age", "60", "--hr-percent",
            "70", "--db", db,
        ]
    )  # fmt: skip
    assert status == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "Limits for Ana:",
        "  speed: 2.6–3 mph backward, at most 3 mph",
        "  backward: at most 60 s without a turn-around",
        "  handrails: both-hands or more support",
        "  retro-running: not allowed",
        "  heart rate: at most 112 bpm (70 % of 220 − 60); above it the belt slows to 2 mph",
    ]
    assert main(["limits", "--client", "Ana", "--speed", "3.2-2.6", "--db", db]) == 2
    assert "Ana's limits not changed: the speed band 3.2–2.6 mph is upside down" in (
        capsys.readouterr().err
    )
    assert main(["limits", "--client", "Ana", "--clear", "heart", "--db", db]) == 0
    assert "heart rate" not in capsys.readouterr().out
    assert main(["feel", "last", "--client", "Ana", "--pain", "7", "--db", db]) == 0
    out = capsys.readouterr().out
    assert f"session #{session}: pain 7/10" in out
    assert "pain 7/10 recorded at 20 s" in out  # the progression says what it did with it
    assert (
        main(["feel", "last", "--client", "Ana", "--block", "99", "--pain", "1", "--db", db]) == 2
    )
    assert "has blocks 1–" in capsys.readouterr().err


def test_run_for_a_client_shows_their_limits_and_refuses_a_program_over_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from retrotread.cli import main
    from retrotread.clinic import records

    db = str(tmp_path / "records.sqlite3")
    with Store.open(db) as store:
        records.set_limits(store, store.add_client("Ana"), ClientLimits(longest_backward_s=15))
    status = main(["run", "first-week", "--unattended", "--mute", "--client", "Ana", "--db", db])
    out = capsys.readouterr().out
    assert status != 0
    assert out.index("Limits for Ana:") < out.index("cannot run as written")
    assert "backward: at most 15 s without a turn-around" in out
    assert "20 s backward without a turn-around, longer than Ana's limit of 15 s" in out
    with Store.open(db) as store:
        assert store.sessions() == []  # refused before the program started: nothing played


def test_the_next_session_stays_within_the_clients_limits() -> None:
    from datetime import date

    from retrotread.clinic.records import within_limits
    from retrotread.progression import Phase, Stage, plan_next, program_toml, replay
    from retrotread.progression import SessionEvidence as Evidence

    day = date(2025, 3, 3)
    history = [
        Evidence(day, Phase.WALK, s, True, OperatorOutcome.COMPLETED, i)
        for i, s in enumerate([15, 15, 15, 30, 30, 30, 45, 45, 60, 60], start=1)
    ]
    planned = plan_next(history, day)
    assert planned.stage.seconds == 75 and replay(history)[-1].stage.seconds == 75
    held = within_limits(planned, ClientLimits(longest_backward_s=60), "Ana")
    assert held.stage.seconds == 60
    assert held.reason.endswith(
        "within the limits: Ana's limit of 60 s backward: intervals of 60 s"
    )
    assert {s.duration_s for s in held.program.steps if s.kind.is_retro} == {60}
    top = parse_program(program_toml(Stage(Phase.WALK, 7)), "<top>")
    assert top.name == "retro-walk-120s"
    run_offer = plan_next(
        [Evidence(day, Phase.WALK, 120, True, OperatorOutcome.COMPLETED, n) for n in range(20)],
        day,
    )
    assert run_offer.stage.phase is Phase.RUN
    walk = within_limits(run_offer, ClientLimits(retro_run=False), "Ana")
    assert (walk.stage.phase, walk.stage.seconds) == (Phase.WALK, 120)
    assert "retro-running is not allowed for Ana" in walk.reason
    assert within_limits(planned, ClientLimits(), "Ana") is planned
