"""Serial URLs and the transport: grammar errors, pyserial's loopback, a port that does not
answer, and reconnecting when the port disappears (pty and TCP) — against the simulator
running in another process."""

from __future__ import annotations

import asyncio
import os
import tty
from pathlib import Path

import pytest

from retrotread.drivers.base import MachineEventKind
from retrotread.drivers.csafe import CsafeDriver
from retrotread.drivers.registry import find_driver, open_treadmill
from retrotread.drivers.serial_link import SerialLink, SerialTreadmill
from retrotread.drivers.trackmaster import TrackmasterDriver
from retrotread.errors import DeviceUnavailable, DeviceUrlError, LinkLost, Unavailable
from retrotread.units import mph
from tests.serial_support import Reports, SimFactory, commands_received, serve

__all__ = ["serve"]

# -- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("serial:///dev/ttyUSB0?protocol=csafe", CsafeDriver),
        ("serial:///dev/ttyS1?protocol=trackmaster&baud=9600", TrackmasterDriver),
        ("socket://127.0.0.1:5555?protocol=csafe&poll=0.25", CsafeDriver),
        ("rfc2217://10.0.0.5:2217?protocol=trackmaster", TrackmasterDriver),
        ("loop://?protocol=csafe&reconnect=false", CsafeDriver),
    ],
)
def test_urls_pick_the_protocol_driver(url: str, driver: type[SerialTreadmill[object]]) -> None:
    treadmill = open_treadmill(url)
    assert type(treadmill) is driver
    assert isinstance(treadmill, SerialTreadmill)
    assert not treadmill.connected


def test_url_options_reach_the_driver() -> None:
    treadmill = open_treadmill("serial:///dev/ttyS1?protocol=trackmaster&baud=9600&poll=0.25")
    assert isinstance(treadmill, TrackmasterDriver)
    assert (treadmill.port, treadmill.baudrate, treadmill.poll_interval) == (
        "/dev/ttyS1",
        9600,
        0.25,
    )
    assert treadmill.profile.name == "generic-trackmaster"
    csafe = open_treadmill("socket://127.0.0.1:5555?protocol=csafe&address=0x07")
    assert isinstance(csafe, CsafeDriver)
    assert (csafe.port, csafe.baudrate, csafe.destination) == ("socket://127.0.0.1:5555", 9600, 7)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("serial:///dev/ttyUSB0", "option protocol is missing"),
        ("serial:///dev/ttyUSB0?protocol=modbus", "'modbus' is not known"),
        ("serial:///dev/ttyUSB0?protocol=csafe&speed=3", "unknown option"),
        ("serial:///dev/ttyUSB0?protocol=csafe&baud=fast", "must be a number"),
        ("serial:///dev/ttyUSB0?protocol=csafe&baud=-5", "whole positive"),
        ("serial:///dev/ttyUSB0?protocol=csafe&poll=2", "at most 1 s"),
        ("serial:///dev/ttyUSB0?protocol=csafe&reconnect=maybe", "true or false"),
        ("serial:///dev/ttyUSB0?protocol=csafe&address=300", "must be a byte"),
        ("serial:///dev/ttyUSB0?protocol=trackmaster&address=1", "CSAFE option"),
        ("serial:///dev/ttyUSB0?protocol=csafe&profile=generic-trackmaster", "is for trackmaster"),
        ("serial://?protocol=csafe", "name the serial port"),
        ("socket://localhost?protocol=csafe", "HOST:PORT"),
    ],
)
def test_bad_urls_show_the_grammar(url: str, complaint: str) -> None:
    with pytest.raises(DeviceUrlError, match=complaint) as err:
        open_treadmill(url)
    assert "grammar:" in str(err.value) or "whole positive" in complaint


def test_every_scheme_has_its_grammar() -> None:
    for scheme in ("serial", "socket", "rfc2217", "loop"):
        grammar = find_driver(scheme).url_grammar
        assert grammar.startswith(f"{scheme}://")
        assert "protocol=csafe|trackmaster" in grammar


# -- the transport ----------------------------------------------------------------------------


async def test_loopback_carries_bytes_both_ways() -> None:
    received: list[bytes] = []
    arrived = asyncio.Event()
    lost: list[Exception] = []

    def on_data(data: bytes) -> None:
        received.append(data)
        if b"".join(received) == b"\xf1\x80\x80\xf2":
            arrived.set()

    link = SerialLink("loop://", 9600, on_data, lost.append)
    await link.open()
    try:
        assert link.is_open
        await link.write(b"\xf1\x80")
        await link.write(b"\x80\xf2")
        async with asyncio.timeout(2):
            await arrived.wait()
    finally:
        await link.close()
    assert not link.is_open and lost == []
    with pytest.raises(LinkLost, match="not open"):
        await link.write(b"\x00")


async def test_a_missing_port_is_not_found() -> None:
    treadmill = open_treadmill("serial:///dev/no-such-treadmill?protocol=csafe")
    with pytest.raises(DeviceUnavailable) as err:
        await treadmill.connect()
    assert err.value.reason is Unavailable.NOT_FOUND
    assert not treadmill.connected


async def test_a_port_where_nothing_answers_is_not_a_treadmill() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        treadmill = open_treadmill(f"serial://{os.ttyname(slave)}?protocol=csafe")
        with pytest.raises(DeviceUnavailable, match="no csafe answer") as err:
            await treadmill.connect()
        assert err.value.reason is Unavailable.NOT_A_TREADMILL
        assert os.read(master, 100).startswith(b"\xf1\x80\xa5")  # it did ask
    finally:
        os.close(master)
        os.close(slave)


async def test_a_csafe_driver_on_a_trackmaster_line_is_not_a_treadmill(
    serve: SimFactory,
) -> None:
    sim = serve("trackmaster")
    treadmill = open_treadmill(f"serial://{sim.address}?protocol=csafe")
    with pytest.raises(DeviceUnavailable) as err:
        await treadmill.connect()
    assert err.value.reason is Unavailable.NOT_A_TREADMILL


# -- reconnecting -----------------------------------------------------------------------------


async def test_an_unplugged_pty_is_reopened(serve: SimFactory, tmp_path: Path) -> None:
    sim = serve("csafe", "--link", str(tmp_path / "ttyTREAD"))
    assert sim.address == str(tmp_path / "ttyTREAD")
    driver = open_treadmill(f"serial://{sim.address}?protocol=csafe")
    reports = Reports(driver)
    async with driver:
        mark = reports.mark()
        unplugged = asyncio.create_task(asyncio.to_thread(sim.console, "unplug 1.5"))
        await reports.wait_event(MachineEventKind.LINK_LOST, since=mark, within=3)
        assert not driver.link_up and driver.connected
        with pytest.raises(LinkLost):  # nothing can be sent while the port is gone
            await driver.set_speed(mph("2.6"))
        await unplugged
        await reports.wait_event(MachineEventKind.LINK_RESTORED, since=mark, within=5)
        after = reports.mark()
        await reports.wait_telemetry(lambda t: True, since=after, within=2)
        await driver.set_speed(mph("2.6"))
    # Ready -> Idle, where the console holds a preset speed (docs/csafe.md)
    assert commands_received(sim) == ["F1 82 82 F2", "F1 25 03 1A 00 11 2D F2"]
    replugged = [e for e in sim.records() if e["event"] == "replugged"]
    assert [e["address"] for e in replugged] == [sim.address]  # a new pty behind the same name


async def test_a_dropped_tcp_link_is_reconnected(serve: SimFactory) -> None:
    sim = serve("csafe", "--tcp", "127.0.0.1:0")
    driver = open_treadmill(f"socket://{sim.address}?protocol=csafe")
    reports = Reports(driver)
    async with driver:
        await driver.set_speed(mph("2.6"))
        mark = reports.mark()
        await asyncio.to_thread(sim.console, "unplug 0.3")
        await reports.wait_event(MachineEventKind.LINK_LOST, since=mark, within=3)
        await reports.wait_event(MachineEventKind.LINK_RESTORED, since=mark, within=5)
        await driver.set_speed(mph("3.2"))
    events = [entry["event"] for entry in sim.records()]
    assert events.count("connected") == 2
    assert commands_received(sim) == [
        "F1 82 82 F2",
        "F1 25 03 1A 00 11 2D F2",
        "F1 25 03 20 00 11 17 F2",
    ]


async def test_without_reconnect_the_link_stays_down(serve: SimFactory) -> None:
    sim = serve("csafe", "--tcp", "127.0.0.1:0")
    driver = open_treadmill(f"socket://{sim.address}?protocol=csafe&reconnect=false")
    reports = Reports(driver)
    async with driver:
        await asyncio.to_thread(sim.console, "unplug 0.1")
        await reports.wait_event(MachineEventKind.LINK_LOST, within=3)
        await asyncio.sleep(0.6)
        assert not driver.link_up
        assert MachineEventKind.LINK_RESTORED not in reports.events()
