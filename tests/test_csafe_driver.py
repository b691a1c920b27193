"""The CSAFE driver over a real pty to ``retrotread-sim serve`` running in another process."""

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
    ProfileError,
    Rejection,
    Unavailable,
)
from retrotread.protocols.csafe import MachineState
from retrotread.units import Increment, Unit, kmh, mph, percent
from tests.serial_support import Reports, SimFactory, commands_received, profile, serve

__all__ = ["serve"]  # the fixture, imported so pytest finds it


def _driver(address: str, options: str = "", **kwargs: object) -> CsafeDriver:
    driver = open_treadmill(f"serial://{address}?protocol=csafe{options}", **kwargs)  # type: ignore[arg-type]
    assert isinstance(driver, CsafeDriver)
    return driver


async def test_telemetry_is_polled_at_least_once_a_second(serve: SimFactory) -> None:
    sim = serve("csafe")
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


async def test_commands_put_the_documented_bytes_on_the_wire(serve: SimFactory) -> None:
    sim = serve("csafe", "--line-rate")
    driver = _driver(sim.address)
    reports = Reports(driver)
    async with driver:
        await driver.set_incline(percent("2.0"))
        await driver.set_speed(mph("2.6"))
        await driver.start()
        assert driver.state is MachineState.IN_USE
        await reports.wait_telemetry(lambda t: t.speed == mph("2.6"), within=5)
        await driver.set_speed(mph("3.2"))
        await reports.wait_telemetry(lambda t: t.speed == mph("3.2"), within=5)
        assert reports.telemetry()[-1].belt is BeltStatus.RUNNING
        mark = reports.mark()
        await driver.stop()
        stopped = await reports.wait_telemetry(lambda t: t.speed.value == 0, since=mark, within=5)
        assert stopped.belt is BeltStatus.STOPPED
        assert driver.state is MachineState.FINISHED
    assert commands_received(sim) == [
        "F1 28 03 14 00 4C 73 F2",  # SetGrade 2.0 % in 0.1 %
        "F1 25 03 1A 00 11 2D F2",  # SetSpeed 2.6 mph in 0.1 mph
        "F1 82 85 07 F2",  # GoIdle + GoInUse in one frame: a workout starts from Idle
        "F1 25 03 20 00 11 17 F2",  # SetSpeed 3.2 mph
        "F1 86 86 F2",  # GoFinished
    ]
    assert reports.events() == []  # everything that changed was asked for
    sim.stop()
    assert sim.records()[-1]["event"] == "closed"
    assert sim.records()[-1]["state"]["belt"] == "stopped"


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
    assert commands_received(sim)[0] == "F1 25 03 A3 01 32 B6 F2"


async def test_garbled_answers_are_asked_again(serve: SimFactory) -> None:
    sim = serve("csafe")
    driver = _driver(sim.address, "&poll=1")
    reports = Reports(driver)
    async with driver:
        mark = reports.mark()
        await reports.wait_for(lambda r: isinstance(r, Telemetry), since=mark)  # a poll is done
        await asyncio.to_thread(sim.console, "corrupt 2")
        await driver.set_speed(mph("2.6"))
    speed_frames = [f for f in sim.frames() if f["commands"] == ["SET_SPEED"]]
    assert len(speed_frames) == 3  # two answers garbled on the wire, the third read
    assert [f["note"] for f in speed_frames] == ["ok", "ok", "ok"]
    assert speed_frames[-1]["state"]["target_speed_kmh"] == pytest.approx(4.1843, abs=1e-4)


async def test_refused_frames_are_retried_within_a_second_then_reported(
    serve: SimFactory,
) -> None:
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
    assert len(refusals) == 3
    assert all("refused" in f["note"] for f in refusals)


async def test_silence_is_a_timeout_and_stale_telemetry_a_lost_link(serve: SimFactory) -> None:
    sim = serve("csafe")
    quick = profile("generic-csafe", telemetry_stale_s=1.0)
    driver = _driver(sim.address, profile=quick)
    reports = Reports(driver)
    async with driver:
        await asyncio.to_thread(sim.console, "mute")
        mark = reports.mark()
        with pytest.raises(CommandTimeout, match="outcome unknown"):
            await driver.set_speed(mph("2.6"))
        await reports.wait_event(MachineEventKind.LINK_LOST, since=mark, within=3)
        await asyncio.to_thread(sim.console, "unmute")
        await reports.wait_event(MachineEventKind.LINK_RESTORED, since=mark, within=3)
        await driver.set_speed(mph("2.6"))
    asked = [f for f in sim.frames() if f["commands"] == ["SET_SPEED"]]
    notes = [f["note"] for f in asked]
    assert notes[-1] == "ok"
    assert len(notes) >= 3 and set(notes[:-1]) == {"muted"}  # asked again, never answered


async def test_what_a_person_does_at_the_console_is_reported(serve: SimFactory) -> None:
    sim = serve("csafe")
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
        await driver.start()  # from Finished: GoIdle + GoInUse
        mark = reports.mark()
        await asyncio.to_thread(sim.console, "key-out")
        await reports.wait_event(MachineEventKind.STOPPED_AT_CONSOLE, since=mark, within=3)
        assert driver.state is MachineState.ERROR
        with pytest.raises(CommandRejected) as refused:
            await driver.start()
        assert refused.value.reason is Rejection.NOT_READY
        await driver.stop()  # nothing is running: accepted, and nothing to do
        await asyncio.to_thread(sim.console, "key-in")
        await driver.start()
        await driver.stop()
    assert reports.events().count(MachineEventKind.STARTED_AT_CONSOLE) == 1


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
    assert commands_received(sim) == ["F0 07 00 28 03 14 00 4C 73 F2"]
    other = _driver(sim.address, "&address=0x09")
    with pytest.raises(DeviceUnavailable, match="no csafe answer") as unanswered:
        await other.connect()
    assert unanswered.value.reason is Unavailable.NOT_A_TREADMILL
