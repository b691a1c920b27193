"""The CSAFE driver over a real pty to ``retrotread-sim serve`` running in another process,
against each console personality (``retrotread_sim.csafe``: matrix, concept2)."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from fractions import Fraction

import pytest

from retrotread.drivers.base import BeltStatus, MachineEventKind, Telemetry
from retrotread.drivers.csafe import CsafeDriver
from retrotread.drivers.registry import open_treadmill
from retrotread.errors import (
    CommandRejected,
    CommandTimeout,
    DeviceUnavailable,
    LinkLost,
    ProfileError,
    Rejection,
    Unavailable,
)
from retrotread.protocols.csafe import MachineState
from retrotread.units import Increment, Unit, kmh, mph, percent
from tests.serial_support import (
    Reports,
    SimFactory,
    commands_received,
    profile,
    serve,
    written_into_pending_answers,
)

__all__ = ["serve"]  # the fixture, imported so pytest finds it

PERSONALITIES = ["matrix", "concept2"]
GO_IDLE = "F1 82 82 F2"
GRADE_2 = "F1 28 03 14 00 4C 73 F2"
SPEED_2_6 = "F1 25 03 1A 00 11 2D F2"
SPEED_3_2 = "F1 25 03 20 00 11 17 F2"
GO_IN_USE = "F1 85 85 F2"
GO_FINISHED = "F1 86 86 F2"


def _driver(address: str, options: str = "", **kwargs: object) -> CsafeDriver:
    driver = open_treadmill(f"serial://{address}?protocol=csafe{options}", **kwargs)  # type: ignore[arg-type]
    assert isinstance(driver, CsafeDriver)
    return driver


@pytest.mark.parametrize("personality", PERSONALITIES)
async def test_telemetry_is_polled_at_least_once_a_second(
    serve: SimFactory, personality: str
) -> None:
    # Issue 14, finding 1: a Matrix console answers the connect poll F1 81 A5 03 ... (no 80
    # record): the old driver ignored it three times and called the port "not a treadmill".
    sim = serve("csafe", "--personality", personality)
    driver = _driver(sim.address)
    reports = Reports(driver)
    async with driver:
        assert driver.state is MachineState.READY
        first = reports.telemetry()[0]  # read while connecting, before any poll
        assert first.speed == mph(0) and first.belt is BeltStatus.STOPPED
        await asyncio.sleep(1.6)
    times = [t.at for t in reports.telemetry()]
    assert len(times) >= 3
    assert max(b - a for a, b in itertools.pairwise(times)) < 1.0


@pytest.mark.parametrize("personality", PERSONALITIES)
async def test_a_workout_puts_the_documented_bytes_on_the_wire(
    serve: SimFactory, personality: str
) -> None:
    sim = serve("csafe", "--line-rate", "--personality", personality)
    driver = _driver(sim.address)
    reports = Reports(driver)
    async with driver:
        await driver.set_incline(percent("2.0"))
        await driver.set_speed(mph("2.6"))
        await driver.start()
        assert driver.state is MachineState.IN_USE
        await reports.wait_telemetry(lambda t: t.speed == mph("2.6"), within=5)
        mark = reports.mark()
        if personality == "concept2":
            await driver.set_speed(mph("3.2"))
            await reports.wait_telemetry(lambda t: t.speed == mph("3.2"), since=mark, within=5)
        else:  # sets only before the workout: the operator is asked, nothing is pretended
            with pytest.raises(CommandRejected) as asked:
                await driver.set_speed(mph("3.2"))
            assert asked.value.reason is Rejection.NOT_DURING_WORKOUT
            assert "set the speed to 3.2 mph on the treadmill console" in str(asked.value)
            assert driver.sets_in_workout is False
        assert reports.telemetry()[-1].belt is BeltStatus.RUNNING
        mark = reports.mark()
        await driver.stop()
        stopped = await reports.wait_telemetry(lambda t: t.speed.value == 0, since=mark, within=5)
        assert stopped.belt is BeltStatus.STOPPED
        assert driver.state is MachineState.FINISHED
    # Ready -> Idle first (presets hold in Idle), each set once — a status-only answer is an
    # accepted one (issue 14, finding 1: the old driver sent every set three times).
    assert commands_received(sim) == [
        GO_IDLE,
        GRADE_2,  # SetGrade 2.0 % in 0.1 %
        SPEED_2_6,  # SetSpeed 2.6 mph in 0.1 mph
        GO_IN_USE,
        SPEED_3_2,  # taken on the Concept2-style console, refused on the Matrix one
        GO_FINISHED,
    ]
    assert MachineEventKind.TARGET_NOT_REACHED not in reports.events()
    sim.stop()
    assert written_into_pending_answers(sim.records()) == []
    final = sim.records()[-1]
    assert final["event"] == "closed" and final["state"]["belt"] == "stopped"
    in_use = [f for f in sim.frames() if f["state"]["csafe_state"] == "in-use"]
    assert in_use and all(f["state"]["target_incline_pct"] == 2.0 for f in in_use)


@pytest.mark.parametrize("personality", PERSONALITIES)
async def test_presets_are_sent_again_after_every_state_change(
    serve: SimFactory, personality: str
) -> None:
    # Issue 14, finding 2: SetGrade in Ready, then GoIdle + GoInUse: GoIdle reset the preset
    # and the incline stayed at 0 % for the whole session; on resume SetSpeed went out in
    # Finished. Now every preset is given to the console in Idle, again after each GoIdle.
    sim = serve("csafe", "--personality", personality, "--accel", "6")
    driver = _driver(sim.address)
    reports = Reports(driver)
    async with driver:
        await driver.set_incline(percent("2.0"))
        await driver.set_speed(mph("2.6"))
        await driver.start()
        await reports.wait_telemetry(lambda t: t.incline == percent(2), within=8)
        await driver.stop()
        await reports.wait_telemetry(lambda t: t.speed.value == 0, within=5)
        await driver.set_speed(mph("2.0"))  # resuming: from Finished, GoIdle first
        await driver.start()
        mark = reports.mark()
        await reports.wait_telemetry(lambda t: t.speed == mph(2), since=mark, within=5)
        assert reports.telemetry()[-1].incline == percent(2)
        await driver.stop()
    sent = commands_received(sim)
    resumed = sent[sent.index(GO_FINISHED) + 1 :]
    assert resumed[:4] == [GO_IDLE, GRADE_2, "F1 25 03 14 00 11 23 F2", GO_IN_USE]
    frames = sim.frames()
    in_use = [f for f in frames if f["state"]["csafe_state"] == "in-use"]
    assert in_use and all(f["state"]["target_incline_pct"] == 2.0 for f in in_use)


async def test_speed_in_hundredths_of_a_kmh(serve: SimFactory) -> None:
    sim = serve("csafe", "--speed-unit", "0.01kmh")
    km_profile = profile("generic-csafe", quirks={"speed_unit": "0.01 km/h"})
    with pytest.raises(ProfileError, match=r"0\.1 mph cannot be sent exactly"):
        _driver(sim.address, profile=km_profile)  # 0.1 mph steps are not whole 0.01 km/h
    km_profile = replace(
        km_profile, speed=replace(km_profile.speed, increment=Increment.of("0.01", Unit.KMH))
    )
    driver = _driver(sim.address, profile=km_profile)
    reports = Reports(driver)
    async with driver:
        await driver.set_speed(kmh("4.19"))  # 2.6 mph, quantized inward by the governor
        await driver.start()
        reached = await reports.wait_telemetry(lambda t: t.speed == kmh("4.19"), within=5)
        assert reached.speed.value == Fraction(419, 100)
        await driver.stop()
    assert commands_received(sim)[1] == "F1 25 03 A3 01 32 B6 F2"


async def test_garbled_answers_are_asked_again(serve: SimFactory) -> None:
    sim = serve("csafe")
    driver = _driver(sim.address, "&poll=1")
    reports = Reports(driver)
    async with driver:
        await driver.set_speed(mph("2.0"))  # now in Idle
        mark = reports.mark()
        await reports.wait_for(lambda r: isinstance(r, Telemetry), since=mark)  # a poll is done
        await asyncio.to_thread(sim.console, "corrupt 2")
        await driver.set_speed(mph("2.6"))
    speed_frames = [f for f in sim.frames() if f["rx"] == SPEED_2_6]
    assert len(speed_frames) == 3  # two answers garbled on the wire, the third read
    assert [f["note"] for f in speed_frames] == ["ok", "ok", "ok"]
    assert speed_frames[-1]["state"]["target_speed_kmh"] == pytest.approx(4.1843, abs=1e-4)


async def test_a_refused_set_is_reported_at_once(serve: SimFactory) -> None:
    sim = serve("csafe", "--speed-needs-running")
    driver = _driver(sim.address)
    async with driver:
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(CommandRejected) as refused:
            await driver.set_speed(mph("2.6"))
        assert loop.time() - began < 1.0
        assert refused.value.reason is Rejection.INVALID_PARAMETER
        assert "SET_SPEED" in str(refused.value)
    refusals = [f for f in sim.frames() if f["commands"] == ["SET_SPEED"]]
    assert len(refusals) == 1  # the same answer every time: not asked again
    assert "refused" in refusals[0]["note"]


async def test_a_console_that_answers_nothing_is_a_lost_link(serve: SimFactory) -> None:
    sim = serve("csafe")
    driver = _driver(sim.address)
    reports = Reports(driver)
    async with driver:
        await driver.set_speed(mph("2.0"))
        await asyncio.to_thread(sim.console, "mute")
        mark = reports.mark()
        loop = asyncio.get_running_loop()
        began = loop.time()
        # No answer to the frame, none to the status frame asked after it: not this command
        # unanswered but a silent console, said at once (the outcome stays unknown).
        with pytest.raises(LinkLost, match="stopped answering; outcome unknown"):
            await driver.set_speed(mph("2.6"))
        assert loop.time() - began < 2.5  # each answer waited for 1 s
        assert reports.events(mark) == [MachineEventKind.LINK_LOST]
        await asyncio.to_thread(sim.console, "unmute")
        await reports.wait_event(MachineEventKind.LINK_RESTORED, since=mark, within=3)
        await driver.set_speed(mph("2.6"))
    asked = [f for f in sim.frames() if f["rx"] == SPEED_2_6]
    assert [f["note"] for f in asked] == ["muted", "ok"]
    assert written_into_pending_answers(sim.records()) == []


async def test_a_command_alone_unanswered_is_a_timeout(serve: SimFactory) -> None:
    sim = serve("csafe", "--faults", "ignore:set-speed@0+30")
    driver = _driver(sim.address)
    reports = Reports(driver)
    async with driver:
        with pytest.raises(CommandTimeout, match="outcome unknown"):
            await driver.set_speed(mph("2.6"))
        assert MachineEventKind.LINK_LOST not in reports.events()  # the console answers polls
    asked = [f for f in sim.frames() if f["rx"] == SPEED_2_6]
    assert len(asked) == 2  # once more after the status frame showed the console alive
    assert written_into_pending_answers(sim.records()) == []


@pytest.mark.parametrize("personality", PERSONALITIES)
async def test_a_late_answer_is_the_answer_to_the_frame_in_flight(
    serve: SimFactory, personality: str
) -> None:
    # Issue 13, finding 4: a second frame went out before the answer to the first (2.4 ms
    # apart) and answers were matched by content. With one frame in flight, the answer that
    # comes — even 0.9 s late — is that frame's, and nothing is written before it.
    sim = serve("csafe", "--personality", personality, "--faults", "late:stop=0.9@0")
    driver = _driver(sim.address)
    async with driver:
        await driver.start()
        first = asyncio.create_task(driver.stop())
        await asyncio.sleep(0.01)
        first.cancel()  # the caller gives up; the frame on the wire keeps its turn
        await driver.stop()  # queued behind it, 2.4 ms or 2 s later alike
        with pytest.raises(asyncio.CancelledError):
            await first
    sim.stop()
    records = sim.records()
    assert written_into_pending_answers(records) == []
    stops = [f for f in records if f.get("event") == "frame" and f["rx"] == GO_FINISHED]
    assert stops and "answered late" in stops[0]["note"]
    assert records[-1]["state"]["belt"] == "stopped"


async def test_a_duplicated_answer_is_not_taken_for_the_next_frame(serve: SimFactory) -> None:
    # The toggle of a copy is the toggle of the answer before it: not this frame's answer.
    sim = serve("csafe", "--personality", "matrix", "--faults", "duplicate")
    driver = _driver(sim.address, "&poll=0.2")
    async with driver:
        for speed in ("2.0", "2.6", "2.0", "2.6"):
            await driver.set_speed(mph(speed))
        assert driver.state is MachineState.IDLE
    sets = [f for f in sim.frames() if f["commands"] == ["SET_SPEED"]]
    assert len(sets) == 4  # each taken the first time: no copy was read as a refusal


@pytest.mark.parametrize("personality", PERSONALITIES)
async def test_what_a_person_does_at_the_console_is_reported(
    serve: SimFactory, personality: str
) -> None:
    sim = serve("csafe", "--personality", personality)
    driver = _driver(sim.address)
    reports = Reports(driver)
    async with driver:
        await driver.set_speed(mph("2.6"))
        await driver.start()
        for action, event in [
            ("pause", MachineEventKind.PAUSED_AT_CONSOLE),
            ("start", MachineEventKind.STARTED_AT_CONSOLE),
            ("stop", MachineEventKind.STOPPED_AT_CONSOLE),
        ]:
            mark = reports.mark()
            await asyncio.to_thread(sim.console, action)
            await reports.wait_event(event, since=mark, within=3)
        await driver.start()  # from Finished: GoIdle, the presets again, GoInUse
        mark = reports.mark()
        await asyncio.to_thread(sim.console, "key-out")
        await reports.wait_event(MachineEventKind.STOPPED_AT_CONSOLE, since=mark, within=3)
        assert driver.state is MachineState.ERROR
        with pytest.raises(CommandRejected) as refused:
            await driver.start()
        assert refused.value.reason is Rejection.NOT_READY
        await driver.stop()  # nothing is running: nothing to do, and no error
        await asyncio.to_thread(sim.console, "key-in")
        await driver.start()
        await driver.stop()
    assert reports.events().count(MachineEventKind.STARTED_AT_CONSOLE) == 1


async def test_a_target_the_console_does_not_reach_is_reported(serve: SimFactory) -> None:
    sim = serve("csafe", "--personality", "concept2")
    quick = profile("generic-csafe", timeout_s=2.0)
    driver = _driver(sim.address, profile=quick)
    reports = Reports(driver)
    async with driver:
        await driver.set_incline(percent("2.0"))
        await asyncio.to_thread(sim.console, "grade 0")  # held at 0 %, as in issue 14
        await driver.start()
        missed = await reports.wait_event(MachineEventKind.TARGET_NOT_REACHED, within=5)
        assert missed.value == percent(0)
        await driver.stop()


async def test_the_operator_sets_what_a_matrix_console_refuses_during_a_workout(
    serve: SimFactory,
) -> None:
    sim = serve("csafe", "--personality", "matrix", "--accel", "6")
    driver = _driver(sim.address)
    reports = Reports(driver)
    async with driver:
        await driver.set_speed(mph("2.0"))
        await driver.start()
        with pytest.raises(CommandRejected):
            await driver.set_speed(mph("2.6"))  # learned: refused during the workout
        with pytest.raises(CommandRejected, match="on the treadmill console"):
            await driver.set_speed(mph("2.8"))  # not even sent now
        mark = reports.mark()
        await asyncio.to_thread(sim.console, "speed 2.8")
        changed = await reports.wait_event(
            MachineEventKind.TARGET_SPEED_CHANGED, since=mark, within=5
        )
        assert changed.value is not None and abs(changed.value.mph - 2.8) <= 0.15
        await driver.stop()
    sets = [f for f in sim.frames() if f["commands"] == ["SET_SPEED"]]
    assert len(sets) == 2  # 2.0 before the workout, 2.6 refused; 2.8 never sent


async def test_distance_and_time_count_from_the_session_not_the_console(
    serve: SimFactory,
) -> None:
    # Issue 14, finding 3: the console's own running total (62 m after a 6 s session).
    sim = serve("csafe", "--odometer", "56", "--accel", "6")
    driver = _driver(sim.address)
    reports = Reports(driver)
    async with driver:
        assert reports.telemetry()[0].distance_m == 0.0
        await driver.set_speed(mph("2.6"))
        await driver.start()
        await asyncio.sleep(3)
        await driver.stop()
        await reports.wait_telemetry(lambda t: t.speed.value == 0, within=5)
        last = reports.telemetry()[-1]
    moved = sim.records()[-1]["state"]["distance_m"]
    assert abs(last.distance_m - moved) <= 1.5  # metre counts either side
    assert 0 < last.elapsed_s <= 5


async def test_a_read_only_console_is_read_and_the_operator_told(serve: SimFactory) -> None:
    sim = serve("csafe", "--read-only")
    read_only = profile("generic-csafe", quirks={"read_only": True})
    driver = _driver(sim.address, profile=read_only)
    assert not driver.capabilities.can_control
    reports = Reports(driver)
    async with driver:
        with pytest.raises(CommandRejected) as told:
            await driver.set_speed(mph("2.6"))
        assert told.value.reason is Rejection.READ_ONLY
        assert "set 2.6 mph on the treadmill console" in str(told.value)
        with pytest.raises(CommandRejected, match="start the belt on the treadmill console"):
            await driver.start()
        mark = reports.mark()
        await asyncio.to_thread(sim.console, "speed 2.6")
        await asyncio.to_thread(sim.console, "start")
        await reports.wait_event(MachineEventKind.STARTED_AT_CONSOLE, since=mark, within=3)
        changed = await reports.wait_event(
            MachineEventKind.TARGET_SPEED_CHANGED, since=mark, within=5
        )
        assert changed.value is not None and abs(changed.value.mph - 2.6) <= 0.15
        with pytest.raises(CommandRejected, match="STOP the belt on the treadmill console"):
            await driver.stop()
        await asyncio.to_thread(sim.console, "stop")
        await reports.wait_event(MachineEventKind.STOPPED_AT_CONSOLE, since=mark, within=3)
    assert commands_received(sim) == []  # nothing but polls went out


async def test_extended_frames_reach_an_addressed_console(serve: SimFactory) -> None:
    sim = serve("csafe", "--address", "7")
    driver = _driver(sim.address, "&address=7")
    async with driver:
        await driver.set_incline(percent("2.0"))
    assert commands_received(sim) == ["F0 07 00 82 82 F2", "F0 07 00 28 03 14 00 4C 73 F2"]
    other = _driver(sim.address, "&address=0x09")
    with pytest.raises(DeviceUnavailable, match="no csafe answer") as unanswered:
        await other.connect()
    assert unanswered.value.reason is Unavailable.NOT_A_TREADMILL
