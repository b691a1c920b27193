"""Issue 13's FTMS findings and issue 14's "every personality" over the whole BLE stack.

Session, governor, ``ble://`` driver, pyftms, bleak and bleak-retry-connector — all
unmodified — against the simulator's FTMS machines (:data:`retrotread_sim.ftms.PERSONALITIES`)
on the virtual clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest

from retrotread.clock import LoopClock, run
from retrotread.drivers.base import MachineEvent, MachineEventKind, Report, Telemetry, Treadmill
from retrotread.drivers.registry import open_treadmill
from retrotread.drivers.sim_ble import SimBleDriver
from retrotread.events import Event, Fault, StopProgress, StopReason, StopState
from retrotread.program.loader import parse_program
from retrotread.program.model import BlockKind, Program
from retrotread.scheduler import COUNTDOWN_FROM, EngineState
from retrotread.session import Outcome, Session, SessionSummary
from retrotread.units import Unit
from retrotread_sim import SimTreadmill
from retrotread_sim.ftms import PERSONALITIES, ResultCode
from tests.ble_rig import BleRig, ble_rig, first_write
from tests.helpers import retro_program

SHORT_FIRST_WEEK = """
name = "first-week-short"
description = "The built-in first-week program, shortened: its blocks, in seconds."

[defaults]
incline = 2.0
retro_band = [2.6, 3.2]
turn = "slow"
turn_speed = 1.0

[[blocks]]
kind = "warm-up"
name = "Easy forward walk"
duration = "40s"
speed = 2.5

[[blocks]]
repeat = 2
name = "Backward intervals"

  [[blocks.blocks]]
  kind = "turn-around"

  [[blocks.blocks]]
  kind = "retro"
  name = "Retro walk"
  duration = "20s"
  speed = 2.6
  handrail = "both-hands"

  [[blocks.blocks]]
  kind = "turn-around"

  [[blocks.blocks]]
  kind = "recovery"
  name = "Forward recovery"
  duration = "30s"
  speed = 2.5

[[blocks]]
kind = "cool-down"
name = "Easy forward walk"
duration = "30s"
speed = 2.2
"""


@dataclass
class Played:
    summary: SessionSummary
    events: list[Event]
    reports: list[Report] = field(default_factory=list)
    machine_stopped: bool | None = None  # the simulated belt, read when the session ended

    def faults(self, kind: str) -> list[Fault]:
        return [e for e in self.events if isinstance(e, Fault) and e.kind == kind]

    @property
    def stop_states(self) -> list[StopState]:
        return [e.state for e in self.events if isinstance(e, StopProgress)]


def play(
    program: Program,
    treadmill: Treadmill,
    during: Callable[[Session], Coroutine[Any, Any, None]] | None = None,
    *,
    machine: Callable[[], SimTreadmill | None] = lambda: None,
    unattended: bool = True,
) -> Played:
    """Play ``program`` on ``treadmill`` on the virtual clock; ``during`` runs alongside;
    ``machine`` gives the simulated machine whose belt is read at the end."""

    async def main() -> Played:
        session = Session(program, treadmill, LoopClock(), unattended=unattended)
        events: list[Event] = []
        reports: list[Report] = []
        session.subscribe(events.append)
        treadmill.subscribe(reports.append)
        helper = asyncio.create_task(during(session)) if during else None
        summary = await session.run()
        if helper is not None:
            helper.cancel()
        simulated = machine()
        stopped = simulated.belt_stopped if simulated is not None else None
        return Played(summary, events, reports, stopped)

    return run(main(), virtual=True)


# -- issue 13 finding 1: STOP while a procedure is pending --------------------------------------


def test_stop_pressed_during_a_late_answer_waits_for_it_then_stops_the_belt() -> None:
    """``02 ..`` (set speed) answered after 3 s, STOP pressed 1 s in: the stop goes out only
    after the answer (no ATT 0xFE, nothing written into the pending procedure), and the belt
    ends stopped — end to end over pyftms and bleak against the strict machine."""

    async def scenario(rig: BleRig) -> Played:
        session = Session(retro_program([30, 30]), rig.driver, LoopClock(), unattended=True)
        events: list[Event] = []
        session.subscribe(events.append)
        pressed: list[float] = []

        async def operator() -> None:
            await asyncio.sleep(25)
            rig.server.delay_answers(0x02, 3.0)  # the next speed change is answered late
            sent = await first_write(rig.server, "02", after=25)
            await asyncio.sleep(sent + 1.0 - asyncio.get_running_loop().time())
            pressed.append(asyncio.get_running_loop().time())
            session.stop(StopReason.OPERATOR)

        helper = asyncio.create_task(operator())
        summary = await session.run()
        helper.cancel()
        slow = next(w for w in rig.server.writes if w.time > 25 and w.hex.startswith("02"))
        stop = next(w for w in rig.server.writes if w.hex == "08 01")
        assert slow.answered_at == pytest.approx(slow.time + 3.0)
        assert pressed == [pytest.approx(slow.time + 1.0)]
        assert slow.answered_at is not None and stop.time >= slow.answered_at
        assert stop.time - slow.answered_at < 0.1  # and at once after it
        assert rig.server.busy_refusals == 0
        assert StopState.WAITING_FOR_MACHINE in [
            e.state for e in events if isinstance(e, StopProgress)
        ]
        assert summary.outcome is Outcome.STOPPED and summary.belt_stopped
        assert rig.machine.belt_stopped
        return Played(summary, events)

    async def main() -> Played:
        rig = ble_rig(kind="strict")
        played = await scenario(rig)
        rig.server.close()
        return played

    run(main(), virtual=True)


# -- issue 13 finding 2 (and 9, the machine's side): a reconnect to a belt already stopped ------


def test_after_a_reconnect_already_stopped_counts_as_stopped_and_the_program_restarts() -> None:
    """The strict machine stops its belt when the link drops and, the belt still, sends no
    Treadmill Data after the reconnect. ``08 01`` answered ``80 08 04`` is "already stopped":
    one stop, no retry storm, no "stop-rejected" fault, and the unattended program restarts."""
    rig_box: list[BleRig] = []
    restored_with: list[Telemetry | None] = []

    async def drop(session: Session) -> None:
        rig = rig_box[0]
        await asyncio.sleep(30 - asyncio.get_running_loop().time())
        rig.peripheral.in_range = False
        rig.server.disconnect()
        await asyncio.sleep(10)
        assert rig.machine.belt_stopped  # stopped by the machine itself, not by us
        assert session.state.engine is EngineState.PAUSED
        rig.peripheral.in_range = True

    async def main() -> Played:
        rig = ble_rig(kind="strict")
        rig_box.append(rig)

        def on_report(report: Report) -> None:
            if isinstance(report, MachineEvent) and report.kind is MachineEventKind.LINK_RESTORED:
                restored_with.append(rig.driver.latest)

        rig.driver.subscribe(on_report)
        session = Session(retro_program([60, 60]), rig.driver, LoopClock(), unattended=True)
        events: list[Event] = []
        session.subscribe(events.append)
        helper = asyncio.create_task(drop(session))
        summary = await session.run()
        helper.cancel()
        rig.server.close()
        return Played(summary, events)

    played = run(main(), virtual=True)
    rig = rig_box[0]
    assert restored_with == [None]  # finding 9's machine: nothing reported after reconnect
    writes = rig.server.writes
    again = next(i for i, w in enumerate(writes) if i > 0 and w.hex == "00" and w.time > 30)
    after = [w.hex for w in writes[again:]]
    restart = after.index("07")
    assert after[:2] == ["00", "08 01"]
    assert after[:restart].count("08 01") == 1  # one stop, no storm
    assert writes[again + 1].result is ResultCode.OPERATION_FAILED  # 80 08 04
    assert played.faults("stop-rejected") == []
    assert StopState.REFUSED not in played.stop_states
    assert played.summary.outcome is Outcome.COMPLETED
    assert played.summary.belt_stopped and rig.machine.belt_stopped
    assert rig.server.busy_refusals == 0


def test_a_final_stop_answered_already_stopped_is_confirmed() -> None:
    """Stopped at the console, then STOP in retrotread: the last ``08 01`` gets ``80 08 04``
    and the summary says the belt stopped (not "stop not acknowledged")."""
    rig_box: list[BleRig] = []

    async def person(session: Session) -> None:
        rig = rig_box[0]
        await asyncio.sleep(25)
        rig.machine.console_stop()
        await asyncio.sleep(5)
        session.stop(StopReason.OPERATOR)

    async def main() -> Played:
        rig = ble_rig(kind="strict")
        rig_box.append(rig)
        session = Session(retro_program([60]), rig.driver, LoopClock(), unattended=True)
        events: list[Event] = []
        session.subscribe(events.append)
        helper = asyncio.create_task(person(session))
        summary = await session.run()
        helper.cancel()
        rig.server.close()
        return Played(summary, events)

    played = run(main(), virtual=True)
    rig = rig_box[0]
    last = [(w.hex, w.result) for w in rig.server.writes[-2:]]
    assert last == [("08 01", ResultCode.OPERATION_FAILED), ("08 02", ResultCode.OPERATION_FAILED)]
    assert played.summary.belt_stopped
    assert played.faults("stop-rejected") == []
    assert played.stop_states[-1] is StopState.CONFIRMED


# -- issue 14: a built-in-like program on every personality -------------------------------------


DEVICES = {
    "lenient": "sim://?link=ble&personality=lenient",
    "strict": "sim://?link=ble&personality=strict",
    "strict by profile": "sim://?link=ble&profile=strict-ftms",
    "pause-first": "sim://?link=ble&personality=pause-first",
}


def test_every_personality_is_played() -> None:
    assert {url.split("personality=")[-1] for url in DEVICES.values() if "personality" in url} == (
        set(PERSONALITIES)
    )


@pytest.mark.parametrize("device", list(DEVICES))
def test_a_built_in_like_program_plays_to_the_end_on_every_personality(device: str) -> None:
    program = parse_program(SHORT_FIRST_WEEK, "first-week-short")
    driver = open_treadmill(DEVICES[device])
    assert isinstance(driver, SimBleDriver)
    # kind, seconds into the block (or before its countdown, if fewer), mph, incline
    samples: list[tuple[BlockKind, float, float, float]] = []

    async def watch(session: Session) -> None:
        while True:
            await asyncio.sleep(1)
            step, machine = session.state.step, driver.machine
            if step is None or machine is None:
                continue
            snap = machine.snapshot()
            into = session.state.program_elapsed_s - step.start_s
            # ...or seconds before the 3-2-1, if fewer: the belt slows for a turn-around then.
            settled = min(into, step.duration_s - COUNTDOWN_FROM - into)
            samples.append((step.kind, settled, snap.speed_kmh / 1.609344, snap.incline_pct))

    played = play(program, driver, watch, machine=lambda: driver.machine)
    machine = driver.machine
    assert isinstance(machine, SimTreadmill)
    assert driver.ble is not None
    expected = device.removesuffix(" by profile")
    assert driver.ble.server.options.personality == expected
    assert played.summary.outcome is Outcome.COMPLETED, played.events
    assert played.summary.belt_stopped and played.machine_stopped
    # Incline: 2.0 % asked, accepted and reached (the machine's own journal and state).
    inclines = [c.value for c in machine.commands if c.name == "set-incline" and c.accepted]
    assert inclines and all(v == pytest.approx(2.0) for v in inclines)
    retro = [s for s in samples if s[0] is BlockKind.RETRO and s[1] >= 8]  # settled, not slowing
    assert retro, samples
    assert all(incline == pytest.approx(2.0) for *_, incline in retro)
    # Speeds: what the machine was told stays under the cap, and the belt ran in the band.
    tolerance = driver.profile.confirm.tolerance_mph.to(Unit.MPH).value
    told = [c.value for c in machine.commands if c.name == "set-speed" and c.accepted]
    assert told and max(v for v in told if v is not None) / 1.609344 <= 3.2 + 1e-6
    assert all(2.6 - tolerance <= mph <= 3.2 + tolerance for _, _, mph, _ in retro), [
        s for s in retro if not 2.6 - tolerance <= s[2] <= 3.2 + tolerance
    ]
    assert driver.ble.server.busy_refusals == 0
    assert played.faults("stop-rejected") == []


# -- issue 13 finding 8: turn-arounds in "pause" mode are not a belt that stopped itself --------

PAUSE_TURNS = """\
name = "pause-turns"
description = "turn-arounds that pause the belt, on a machine that counts down before it moves"
[defaults]
turn = "pause"
[[blocks]]
kind = "warm-up"
duration = "30s"
speed = 2.5
[[blocks]]
repeat = 3
  [[blocks.blocks]]
  kind = "turn-around"
  [[blocks.blocks]]
  kind = "retro"
  duration = "20s"
  speed = 2.8
  [[blocks.blocks]]
  kind = "turn-around"
  [[blocks.blocks]]
  kind = "recovery"
  duration = "20s"
  speed = 2.5
"""


@pytest.mark.parametrize("personality", ["strict", "lenient"])
def test_pause_mode_turn_arounds_raise_no_belt_stopped_hold(personality: str) -> None:
    """The zero readings of a pause left a "still since" time that only a stop or pause
    acknowledgement cleared; after the resume (and the strict machine's 3 s countdown) the
    watchdog read it as a belt stopped without a command."""
    driver = open_treadmill(f"sim://?link=ble&personality={personality}")
    assert isinstance(driver, SimBleDriver)
    played = play(
        parse_program(PAUSE_TURNS, "pause-turns.toml"), driver, machine=lambda: driver.machine
    )
    assert played.faults("belt-stopped") == []
    assert played.summary.outcome is Outcome.COMPLETED, played.events
    assert played.summary.belt_stopped and played.machine_stopped
