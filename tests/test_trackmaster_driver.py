"""The Trackmaster driver over a real pty to ``retrotread-sim serve`` in another process.

The wire is the manual's hex codes as bytes (``A3`` then "0026"; answer ``B3``), as the public
trackmaster-python library speaks it; see docs/trackmaster.md.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from retrotread.drivers.base import BeltStatus
from retrotread.drivers.registry import open_treadmill
from retrotread.drivers.trackmaster import TrackmasterDriver
from retrotread.errors import CommandRejected, CommandTimeout, Rejection
from retrotread.profiles import Profile
from retrotread.units import mph, percent
from retrotread_sim.serve import SimProcess
from tests.serial_support import Reports, SimFactory, profile, serve

__all__ = ["serve"]

QUERYING = profile("generic-trackmaster", quirks={"status_query": True})


def _driver(address: str, chosen: Profile | None = None) -> TrackmasterDriver:
    driver = open_treadmill(f"serial://{address}?protocol=trackmaster", profile=chosen)
    assert isinstance(driver, TrackmasterDriver)
    return driver


def _lines(sim: SimProcess) -> list[tuple[str, str | None]]:
    """(command received, answer) pairs as text, status requests left out."""
    out: list[tuple[str, str | None]] = []
    for frame in sim.frames():
        if frame["text"] in ("C1", "C2"):
            continue
        answer = frame["tx"] and frame["tx"].split()[0]
        out.append((frame["text"], answer))
    return out


async def test_commands_and_acknowledgements(serve: SimFactory) -> None:
    sim = serve("trackmaster", "--line-rate")
    driver = _driver(sim.address)
    assert not driver.polls  # the generic profile does not assume the optional queries
    async with driver:
        await driver.set_incline(percent("2.0"))
        await driver.set_speed(mph("2.6"))
        await driver.start()
        await driver.set_speed(mph("3.2"))
        await driver.stop()
    assert _lines(sim) == [
        ("A4 0020", "B4"),
        ("A3 0026", "B3"),
        ("A1", "B1"),
        ("A3 0032", "B3"),
        ("A2", "B2"),
    ]
    assert sim.frames()[0]["rx"] == "A4 30 30 32 30"  # the A4 byte, then "0020"
    assert sim.frames()[0]["tx"] == "B4"


async def test_out_of_range_and_illegal_are_typed_and_not_repeated(serve: SimFactory) -> None:
    sim = serve("trackmaster")
    driver = _driver(sim.address)
    async with driver:
        with pytest.raises(CommandRejected) as too_fast:
            await driver.set_speed(mph("13.0"))  # the machine stops at 12 mph
        assert too_fast.value.reason is Rejection.OUT_OF_RANGE
        await asyncio.to_thread(sim.console, "key-out")
        with pytest.raises(CommandRejected) as illegal:
            await driver.start()  # no start without the safety key
        assert illegal.value.reason is Rejection.ILLEGAL_COMMAND
    assert _lines(sim) == [("A3 0130", "BE"), ("A1", "BF")]


async def test_garbled_and_missing_answers_are_asked_again(serve: SimFactory) -> None:
    sim = serve("trackmaster")
    driver = _driver(sim.address)
    async with driver:
        await asyncio.to_thread(sim.console, "corrupt 1")
        await driver.set_speed(mph("2.6"))
        await asyncio.to_thread(sim.console, "mute")
        with pytest.raises(CommandTimeout):
            await driver.set_incline(percent("2.0"))
    lines = _lines(sim)
    assert [text for text, _ in lines[:2]] == ["A3 0026", "A3 0026"]
    assert {text for text, _ in lines[2:]} == {"A4 0020"} and len(lines[2:]) == 2  # sent again once


async def test_speed_and_grade_queries_give_telemetry(serve: SimFactory) -> None:
    sim = serve("trackmaster", "--status-query", "--accel", "6")
    driver = _driver(sim.address, QUERYING)
    reports = Reports(driver)
    async with driver:
        assert driver.polls
        await driver.set_incline(percent("2.0"))
        await driver.set_speed(mph("2.6"))
        await driver.start()
        running = await reports.wait_telemetry(lambda t: t.speed == mph("2.6"), within=5)
        assert running.belt is BeltStatus.RUNNING
        mark = reports.mark()
        await driver.stop()
        stopped = await reports.wait_telemetry(lambda t: t.speed.value == 0, since=mark, within=5)
        assert stopped.belt is BeltStatus.STOPPED
        assert stopped.incline.value > 0 and stopped.distance_m > 0 and stopped.elapsed_s > 0
    assert not driver.reports_distance  # distance is estimated from the polled speed


async def test_without_queries_the_driver_carries_on_without_telemetry(
    serve: SimFactory, caplog: pytest.LogCaptureFixture
) -> None:
    sim = serve("trackmaster")  # answers C1 with BF
    driver = _driver(sim.address, QUERYING)
    reports = Reports(driver)
    with caplog.at_level(logging.WARNING, logger="retrotread.drivers.trackmaster"):
        async with driver:
            assert not driver.polls
            await driver.set_speed(mph("2.6"))
            await asyncio.sleep(0.6)
    assert "carrying on without telemetry" in caplog.text
    assert reports.telemetry() == []
    first = sim.frames()[0]
    assert (first["text"], first["tx"]) == ("C1", "BF")


async def test_a_stale_acknowledgement_is_not_taken_for_the_next_command(
    serve: SimFactory,
) -> None:
    sim = serve("trackmaster", "--faults", "duplicate")
    driver = _driver(sim.address)
    async with driver:
        for speed in ("2.0", "2.6", "2.0"):
            await driver.set_speed(mph(speed))
        await driver.stop()  # a B3 copy arriving now is not the B2
    assert [text for text, _ in _lines(sim)] == ["A3 0020", "A3 0026", "A3 0020", "A2"]


async def test_without_status_requests_nothing_is_confirmed_even_with_the_key_out(
    serve: SimFactory,
) -> None:
    # Issue 13, finding 5: a generic Trackmaster cannot see its belt. The driver says so
    # (reports_belt is False), publishes nothing that could confirm a speed or a stop, and a
    # command refused while the safety key is out is reported as refused.
    sim = serve("trackmaster")
    driver = _driver(sim.address)
    reports = Reports(driver)
    async with driver:
        assert not driver.reports_belt
        await driver.set_speed(mph("2.6"))
        await driver.start()
        await asyncio.to_thread(sim.console, "key-out")
        with pytest.raises(CommandRejected) as refused:
            await driver.set_speed(mph("3.0"))
        assert refused.value.reason is Rejection.ILLEGAL_COMMAND
        assert "safety key" in str(refused.value)
        await driver.stop()  # acknowledged: that is all a Trackmaster without status can say
    assert reports.items == []  # no telemetry, no events: nothing claims the belt stopped
