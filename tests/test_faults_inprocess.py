"""Faults injected by the simulator on the in-process link, and what retrotread does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest

from retrotread.clock import LoopClock, run
from retrotread.drivers.registry import open_treadmill
from retrotread.drivers.sim import SimDriver, SimulatorDriver
from retrotread.errors import DeviceUrlError
from retrotread.events import (
    CommandUnconfirmed,
    Event,
    Fault,
    Notice,
    Resumed,
    StopProgress,
    StopState,
)
from retrotread.profiles import get_profile
from retrotread.program.model import Program
from retrotread.session import Outcome, Session, SessionSummary
from tests.helpers import retro_program


@dataclass
class Played:
    summary: SessionSummary
    events: list[Event]
    link_commands: list[str]
    belt_stopped: bool
    notes: list[str] = field(default_factory=list)

    def faults(self) -> list[str]:
        return [e.kind for e in self.events if isinstance(e, Fault)]


Script = Callable[[Session], Coroutine[Any, Any, None]]


def play(
    faults: str,
    program: Program | None = None,
    *,
    unattended: bool = True,
    script: Script | None = None,
    profile: str = "simulator",
) -> Played:
    events: list[Event] = []

    async def main() -> Played:
        clock = LoopClock()
        url = f"sim://?faults={faults}" if faults else "sim://"
        driver = open_treadmill(url, clock=clock, profile=get_profile(profile))
        assert isinstance(driver, SimDriver)
        session = Session(program or retro_program([20, 20, 20]), driver, clock)
        session.unattended = unattended
        session.subscribe(events.append)
        task = asyncio.create_task(session.run())
        if script:
            await script(session)
        summary = await task
        machine = driver.machine
        assert machine is not None
        link = [c.name for c in machine.commands if c.source == "link" and c.accepted]
        notes = [c.detail for c in machine.commands if not c.accepted]
        return Played(summary, events, link, machine.belt_stopped, notes)

    return run(main(), virtual=True)


def test_stale_telemetry_pauses_sends_stop_and_tells() -> None:
    played = play("stale@30")
    assert "telemetry-stale" in played.faults()
    assert played.link_commands[-1] == "stop"
    assert played.belt_stopped
    assert played.summary.outcome is Outcome.FAULT  # unattended: nobody resumes a held program


def test_frozen_telemetry_is_a_fault_too() -> None:
    played = play("freeze@30")
    assert "telemetry-stale" in played.faults()  # one fault: records that stop or repeat
    assert any(
        "telemetry repeats one value" in e.message for e in played.events if isinstance(e, Fault)
    )
    assert played.belt_stopped


def test_an_unanswered_command_is_not_resent() -> None:
    played = play("ignore:set-speed@15")
    assert "command-timeout" in played.faults()
    assert any("ignored by fault plan" in n for n in played.notes)
    # After the timeout only stop went out: the unanswered speed was never sent again.
    assert played.link_commands[-1] == "stop"
    ignored_at = len([c for c in played.link_commands if c == "set-speed"])
    assert ignored_at >= 1
    assert played.belt_stopped


def test_a_late_answer_within_the_timeout_is_fine() -> None:
    played = play("late:set-speed=1@15")
    assert played.summary.outcome is Outcome.COMPLETED
    assert "command-timeout" not in played.faults()


@pytest.mark.parametrize("code", ["invalid-parameter", "failed", "not-supported"])
def test_a_rejected_speed_is_reported_and_the_program_goes_on(code: str) -> None:
    played = play(f"reject:set-speed={code}@15")
    unconfirmed = [e for e in played.events if isinstance(e, CommandUnconfirmed)]
    assert any(code.replace("-", " ") in e.reason for e in unconfirmed)
    assert played.summary.outcome is Outcome.COMPLETED
    assert played.belt_stopped


def test_a_rejected_start_holds_the_program() -> None:
    played = play("reject:start=failed@0")
    assert "start-rejected" in played.faults()
    assert played.belt_stopped


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ("safety-key@15", "safety-key"),
        ("console-stop@15", "stopped-at-console"),
        ("console-pause@15", "paused-at-console"),
    ],
)
def test_console_and_safety_key_hold_until_a_person_resumes(fault: str, kind: str) -> None:
    played = play(fault)
    assert kind in played.faults()
    after = played.link_commands[played.link_commands.index("start") + 1 :]
    assert "start" not in after  # nothing restarted the belt without a person
    assert played.belt_stopped
    assert played.summary.outcome is Outcome.FAULT  # unattended hold limit ended it


def test_speed_changed_at_the_console_is_shown() -> None:
    played = play("console-speed=6.0@15")
    notices = [e.message for e in played.events if isinstance(e, Notice)]
    assert any("speed changed at the console to 3.73 mph" in n for n in notices)


def test_link_drop_unattended_restarts_only_after_the_belt_is_confirmed_stopped() -> None:
    played = play("drop@15+10")
    assert "link-lost" in played.faults()
    assert any(
        "belt confirmed stopped" in e.message for e in played.events if isinstance(e, Notice)
    )
    starts = [i for i, c in enumerate(played.link_commands) if c == "start"]
    assert len(starts) == 2  # the normal start sequence, twice
    between = played.link_commands[starts[0] : starts[1]]
    assert "stop" in between  # stopped first, then restarted
    assert played.summary.outcome is Outcome.COMPLETED
    assert played.belt_stopped


def test_link_drop_attended_waits_for_a_person() -> None:
    async def person(session: Session) -> None:
        clock = LoopClock()
        await clock.sleep_until(60)
        assert session.state.hold and session.state.step is not None
        session.resume()

    played = play("drop@15+10", unattended=False, script=person)
    resumed = [e for e in played.events if isinstance(e, Resumed)]
    assert resumed and resumed[0].at == 60
    assert played.summary.outcome is Outcome.COMPLETED
    assert played.belt_stopped


def test_a_slow_belt_is_reported_not_fought() -> None:
    played = play("slow-ramp=0.2")
    unconfirmed = [e for e in played.events if isinstance(e, CommandUnconfirmed)]
    assert unconfirmed
    assert played.summary.outcome is Outcome.COMPLETED


def test_a_machine_reading_the_speed_field_as_mph_trips_overspeed() -> None:
    played = play("mph-field")
    assert "overspeed" in played.faults()
    message = next(e.message for e in played.events if isinstance(e, Fault))
    assert "speed_field_mph" in message
    assert played.summary.outcome is Outcome.FAULT
    assert played.belt_stopped


def test_a_bad_fault_plan_shows_the_grammar() -> None:
    with pytest.raises(DeviceUrlError, match=r"(?s)unknown fault 'explode'.*grammar"):
        open_treadmill("sim://?faults=explode@3")


@pytest.mark.parametrize("link", ["", "link=ble&"])
def test_stop_while_the_link_is_down_goes_out_when_it_returns(link: str) -> None:
    async def operator_stops_during_the_outage() -> Played:
        clock = LoopClock()
        driver = open_treadmill(f"sim://?{link}faults=drop@15+10", clock=clock)
        assert isinstance(driver, SimulatorDriver)
        session = Session(retro_program([20, 20, 20]), driver, clock)
        events: list[Event] = []
        session.subscribe(events.append)
        task = asyncio.create_task(session.run())
        await clock.sleep_until(18)
        session.stop()
        summary = await task
        assert driver.machine is not None
        return Played(
            summary,
            events,
            [c.name for c in driver.machine.commands if c.source == "link" and c.accepted],
            driver.machine.belt_stopped,
        )

    played = run(operator_stops_during_the_outage(), virtual=True)
    assert played.link_commands[-1] == "stop"
    assert played.belt_stopped
    assert played.summary.belt_stopped
    stop_states = [e.state for e in played.events if isinstance(e, StopProgress)]
    assert stop_states == [StopState.LINK_DOWN, StopState.CONFIRMED]
