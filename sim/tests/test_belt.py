"""The simulated machine: belt physics, state machine, refusals, console and journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrotread_sim import (
    BeltState,
    MachineSpec,
    ManualClock,
    Refusal,
    SimRefused,
    SimTreadmill,
    StatusEvent,
    StatusKind,
)


def machine(**spec: float | bool) -> tuple[SimTreadmill, ManualClock]:
    clock = ManualClock()
    return SimTreadmill(MachineSpec().with_options(**spec), clock), clock


def test_belt_accelerates_at_its_limit_and_integrates_distance() -> None:
    tm, clock = machine(accel_kmh_per_s=2.0)
    tm.set_target_speed(4.0)
    tm.start()
    clock.advance(1.0)
    assert tm.snapshot().speed_kmh == pytest.approx(2.0)
    clock.advance(1.0)
    assert tm.snapshot().speed_kmh == pytest.approx(4.0)
    clock.advance(9.0)
    snap = tm.snapshot()
    assert snap.speed_kmh == pytest.approx(4.0)
    # 0->4 km/h over 2 s averages 2 km/h, then 9 s at 4 km/h: (2*2 + 4*9) / 3.6 m
    assert snap.distance_m == pytest.approx((4 + 36) / 3.6)
    assert snap.elapsed_s == pytest.approx(11.0)


def test_stop_decelerates_and_freezes_incline() -> None:
    tm, clock = machine(decel_kmh_per_s=3.0, incline_pct_per_s=0.5)
    tm.set_target_speed(6.0)
    tm.set_target_incline(2.0)
    tm.start()
    clock.advance(10)
    tm.set_target_incline(6.0)
    clock.advance(1)
    tm.stop()
    snap = tm.snapshot()
    assert snap.state is BeltState.STOPPED
    assert snap.target_speed_kmh == 0.0
    assert snap.target_incline_pct == pytest.approx(2.5)  # incline motion stops with the belt
    clock.advance(1)
    assert tm.snapshot().speed_kmh == pytest.approx(3.0)
    clock.advance(1)
    assert tm.belt_stopped


def test_pause_and_resume() -> None:
    tm, clock = machine()
    tm.set_target_speed(4.0)
    tm.start()
    clock.advance(5)
    tm.pause()
    clock.advance(5)
    assert tm.snapshot().state is BeltState.PAUSED
    assert tm.snapshot().speed_kmh == 0.0
    tm.start()
    clock.advance(5)
    assert tm.snapshot().speed_kmh == pytest.approx(4.0)


def test_out_of_range_is_refused_and_recorded() -> None:
    tm, _ = machine()
    with pytest.raises(SimRefused) as info:
        tm.set_target_speed(25.0)
    assert info.value.reason is Refusal.OUT_OF_RANGE
    record = tm.commands[-1]
    assert (record.name, record.value, record.accepted) == ("set-speed", 25.0, False)


def test_speed_snaps_to_the_machine_increment() -> None:
    tm, _ = machine(speed_increment_kmh=0.1)
    tm.set_target_speed(4.19)
    assert tm.target_speed_kmh == pytest.approx(4.2)


def test_speed_needs_running_quirk() -> None:
    tm, _ = machine(speed_needs_running=True)
    with pytest.raises(SimRefused) as info:
        tm.set_target_speed(4.0)
    assert info.value.reason is Refusal.NOT_RUNNING
    tm.start()
    tm.set_target_speed(4.0)


def test_safety_key_stops_the_belt_and_blocks_the_link() -> None:
    tm, clock = machine()
    seen: list[StatusEvent] = []
    tm.subscribe(seen.append)
    tm.set_target_speed(4.0)
    tm.start()
    clock.advance(3)
    tm.pull_safety_key()
    assert seen[-1].kind is StatusKind.STOPPED_BY_SAFETY_KEY
    with pytest.raises(SimRefused):
        tm.start()
    clock.advance(3)
    assert tm.belt_stopped
    tm.insert_safety_key()
    assert tm.state is BeltState.STOPPED
    tm.start()
    assert tm.state is BeltState.RUNNING


def test_console_actions_announce_themselves() -> None:
    tm, _ = machine()
    seen: list[StatusKind] = []
    tm.subscribe(lambda e: seen.append(e.kind))
    tm.start()
    tm.console_pause()
    tm.console_start()
    tm.console_set_speed(5.0)
    tm.console_stop()
    assert seen == [
        StatusKind.PAUSED_BY_USER,
        StatusKind.STARTED_BY_USER,
        StatusKind.TARGET_SPEED_CHANGED,
        StatusKind.STOPPED_BY_USER,
    ]


def test_journal_records_every_command_with_state(tmp_path: Path) -> None:
    clock = ManualClock()
    journal = tmp_path / "belt.jsonl"
    tm = SimTreadmill(MachineSpec(), clock, journal)
    tm.set_target_speed(4.19)
    tm.start()
    tm.stop()
    tm.close()
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [e.get("name") for e in entries] == ["set-speed", "start", "stop", None]
    assert entries[0]["value"] == 4.19
    assert entries[-1]["event"] == "closed" and entries[-1]["state"] == "stopped"


def test_spec_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    from retrotread_sim.cli import main

    assert main(["spec"]) == 0
    assert json.loads(capsys.readouterr().out)["speed_increment_kmh"] == 0.01
