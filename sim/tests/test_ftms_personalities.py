"""The simulated FTMS machines (personalities), driven through plain bleak with raw FTMS bytes.

The strict machine follows the FTMS 1.0 / FTMP 1.0 text; the lenient one answers the way
Open Rowing Monitor's FTMS peripheral and the WalkingPad FTMS treadmills do (sources in
:mod:`retrotread_sim.ftms.server`). These tests are the simulator's own: no retrotread here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest
from bleak import BleakClient
from bleak.backends.device import BLEDevice
from bleak.exc import BleakGATTProtocolError

from retrotread_sim import ManualClock, SimTreadmill
from retrotread_sim.belt import BeltState
from retrotread_sim.ftms import (
    PERSONALITIES,
    AttError,
    FtmsServer,
    Radio,
    SimPeripheral,
    codec,
    personality,
)


async def settle() -> None:
    import asyncio

    for _ in range(10):
        await asyncio.sleep(0)


@dataclass
class Rig:
    clock: ManualClock
    machine: SimTreadmill
    server: FtmsServer
    radio: Radio
    peripheral: SimPeripheral

    def device(self) -> BLEDevice:
        return BLEDevice(self.peripheral.address, self.peripheral.name, {})

    async def run_for(self, seconds: float, step: float = 0.5) -> None:
        """Move the manual clock forward, letting notifications arrive at each step."""
        await settle()
        steps = round(seconds / step)
        for _ in range(steps):
            self.clock.advance(step)
            await settle()


def make_rig(kind: str) -> Rig:
    clock = ManualClock()
    machine = SimTreadmill(None, clock)
    server = FtmsServer(machine, personality(kind))
    radio = Radio()
    return Rig(clock, machine, server, radio, radio.add(SimPeripheral(server)))


@dataclass
class Probe:
    """A raw GATT client that keeps everything the server sends it."""

    client: BleakClient
    received: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))

    async def listen(self) -> None:
        for uuid in (codec.CONTROL_POINT, codec.MACHINE_STATUS, codec.TREADMILL_DATA):
            await self.client.start_notify(
                uuid, lambda _c, data, uuid=uuid: self.received[uuid].append(bytes(data))
            )

    async def command(self, hex_bytes: str) -> bytes:
        """Write to the control point; the indication that answers it."""
        before = len(self.received[codec.CONTROL_POINT])
        await self.client.write_gatt_char(codec.CONTROL_POINT, bytes.fromhex(hex_bytes), True)
        await settle()
        answers = self.received[codec.CONTROL_POINT][before:]
        assert len(answers) == 1, f"expected one indication, got {answers}"
        return answers[0]

    @property
    def statuses(self) -> list[str]:
        return [s.hex(" ").upper() for s in self.received[codec.MACHINE_STATUS]]


@pytest.fixture
def strict() -> Iterator[Rig]:
    rig = make_rig("strict")
    with rig.radio.routed():
        yield rig
    rig.server.close()


@pytest.fixture
def lenient() -> Iterator[Rig]:
    rig = make_rig("lenient")
    with rig.radio.routed():
        yield rig
    rig.server.close()


@pytest.fixture
async def probe(strict: Rig) -> AsyncIterator[Probe]:
    """A client of the strict machine, paired and in control."""
    async with BleakClient(strict.device()) as client:
        await client.pair()
        probe = Probe(client)
        await probe.listen()
        assert await probe.command("00") == bytes.fromhex("80 00 01")
        yield probe


def test_the_family_is_named() -> None:
    assert set(PERSONALITIES) == {"strict", "lenient", "pause-first"}
    assert personality("strict", start_countdown_s=0).start_countdown_s == 0
    with pytest.raises(ValueError, match="known: lenient, strict, pause-first"):
        personality("chatty")


# -- strict: encryption -------------------------------------------------------------------------


async def test_strict_control_point_needs_an_encrypted_link(strict: Rig) -> None:
    async with BleakClient(strict.device()) as client:
        probe = Probe(client)
        await probe.listen()
        with pytest.raises(BleakGATTProtocolError) as caught:
            await client.write_gatt_char(codec.CONTROL_POINT, b"\x00", True)
        assert int(caught.value.code) == AttError.INSUFFICIENT_ENCRYPTION
        assert strict.server.writes[-1].att_error is AttError.INSUFFICIENT_ENCRYPTION
        await settle()
        assert probe.received[codec.CONTROL_POINT] == []  # refused: nothing happened
        await client.pair()
        assert await probe.command("00") == bytes.fromhex("80 00 01")
    # The bond is kept: the next link is encrypted without pairing again.
    async with BleakClient(strict.device()) as client:
        probe = Probe(client)
        await probe.listen()
        assert await probe.command("00") == bytes.fromhex("80 00 01")
    strict.server.forget_bond()
    async with BleakClient(strict.device()) as client:
        with pytest.raises(BleakGATTProtocolError):
            await client.write_gatt_char(codec.CONTROL_POINT, b"\x00", True)


async def test_lenient_needs_no_pairing(lenient: Rig) -> None:
    async with BleakClient(lenient.device()) as client:
        probe = Probe(client)
        await probe.listen()
        assert await probe.command("00") == bytes.fromhex("80 00 01")


# -- strict: one procedure at a time, late answers ----------------------------------------------


async def test_strict_refuses_a_write_into_a_pending_procedure(strict: Rig, probe: Probe) -> None:
    strict.server.delay_answers(0x02, 3.0)
    await probe.client.write_gatt_char(codec.CONTROL_POINT, bytes.fromhex("02 C3 01"), True)
    await strict.run_for(1.0)
    with pytest.raises(BleakGATTProtocolError) as caught:
        await probe.client.write_gatt_char(codec.CONTROL_POINT, bytes.fromhex("08 01"), True)
    assert int(caught.value.code) == AttError.PROCEDURE_ALREADY_IN_PROGRESS
    assert strict.server.busy_refusals == 1
    assert strict.machine.target_speed_kmh == pytest.approx(4.51)  # acted at once ...
    assert strict.machine.commands[-1].name == "set-speed"  # ... the stop was discarded
    await strict.run_for(2.0)
    assert probe.received[codec.CONTROL_POINT][-1] == bytes.fromhex("80 02 01")  # ... at 3 s
    speed_write = next(w for w in strict.server.writes if w.hex == "02 C3 01")
    assert speed_write.answered_at == pytest.approx(speed_write.time + 3.0)
    assert await probe.command("08 01") == bytes.fromhex("80 08 04")  # nothing to stop


# -- strict: 04 for requests that find the machine already there --------------------------------


async def test_strict_answers_redundant_start_stop_pause_with_operation_failed(
    strict: Rig, probe: Probe
) -> None:
    assert await probe.command("08 01") == bytes.fromhex("80 08 04")  # stop when stopped
    assert await probe.command("08 02") == bytes.fromhex("80 08 04")  # pause when stopped
    assert await probe.command("07") == bytes.fromhex("80 07 01")
    assert await probe.command("07") == bytes.fromhex("80 07 04")  # counting down: started
    await strict.run_for(3.0)
    assert strict.machine.state is BeltState.RUNNING
    assert await probe.command("07") == bytes.fromhex("80 07 04")  # start when started
    assert await probe.command("08 02") == bytes.fromhex("80 08 01")
    assert await probe.command("08 02") == bytes.fromhex("80 08 04")  # pause when paused
    assert await probe.command("08 01") == bytes.fromhex("80 08 01")  # a paused belt stops
    assert await probe.command("08 01") == bytes.fromhex("80 08 04")
    noted = [c.name for c in strict.machine.commands if c.source == "link" and not c.accepted]
    assert noted == ["stop", "pause", "start", "start", "pause", "stop"]


async def test_lenient_answers_redundant_requests_with_success(lenient: Rig) -> None:
    async with BleakClient(lenient.device()) as client:
        probe = Probe(client)
        await probe.listen()
        await probe.command("00")
        for request in ("08 01", "07", "07", "08 01", "08 01"):
            assert (await probe.command(request))[2] == 0x01


# -- strict: the console's countdown ------------------------------------------------------------


async def test_strict_belt_moves_only_after_the_countdown(strict: Rig, probe: Probe) -> None:
    await probe.command("02 A3 01")
    await probe.command("07")
    await strict.run_for(2.5)
    assert strict.machine.snapshot().speed_kmh == 0.0
    await strict.run_for(3.0)
    assert strict.machine.snapshot().speed_kmh > 0.0


async def test_a_stop_during_the_countdown_keeps_the_belt_still(strict: Rig, probe: Probe) -> None:
    await probe.command("07")
    await strict.run_for(1.0)
    assert await probe.command("08 01") == bytes.fromhex("80 08 01")
    await strict.run_for(5.0)
    assert strict.machine.belt_stopped
    assert "start" not in [c.name for c in strict.machine.commands if c.accepted]


# -- strict: the belt stops with the controller's link ------------------------------------------


async def test_strict_stops_the_belt_when_the_controlling_link_drops(strict: Rig) -> None:
    client = BleakClient(strict.device())
    await client.connect()
    await client.pair()
    probe = Probe(client)
    await probe.listen()
    await probe.command("00")
    await probe.command("02 A3 01")
    await probe.command("07")
    await strict.run_for(6.0)
    assert strict.machine.snapshot().speed_kmh == pytest.approx(4.19)
    strict.server.disconnect()
    await strict.run_for(3.0)
    assert strict.machine.belt_stopped
    last = strict.machine.commands[-1]
    assert (last.source, last.name, last.detail) == ("machine", "stop", "controller link lost")


async def test_a_link_without_control_leaves_the_belt_alone(strict: Rig) -> None:
    strict.machine.start()
    async with BleakClient(strict.device()):
        pass
    await strict.run_for(1.0)
    assert strict.machine.state is BeltState.RUNNING


async def test_lenient_keeps_its_belt_running_when_the_link_drops(lenient: Rig) -> None:
    async with BleakClient(lenient.device()) as client:
        probe = Probe(client)
        await probe.listen()
        await probe.command("00")
        await probe.command("07")
        lenient.server.disconnect()
    await lenient.run_for(3.0)
    assert lenient.machine.state is BeltState.RUNNING


# -- strict: Treadmill Data only when something changed -----------------------------------------


async def test_strict_sends_treadmill_data_only_when_it_changed(strict: Rig, probe: Probe) -> None:
    data = probe.received[codec.TREADMILL_DATA]
    await probe.command("02 A3 01")
    await probe.command("07")
    await strict.run_for(10.0, step=1.0)
    running = len(data)
    assert running >= 7  # a running belt's distance and time change every second
    assert await probe.command("08 01") == bytes.fromhex("80 08 01")
    await strict.run_for(5.0, step=1.0)
    assert data[-1][2:4] == b"\x00\x00"  # the last record that changed: speed zero
    still = len(data)
    await strict.run_for(10.0, step=1.0)
    assert len(data) == still  # a still belt's records do not change: nothing is sent


async def test_a_still_strict_belt_sends_nothing_after_a_reconnect(strict: Rig) -> None:
    """Issue 13 finding 9, the machine's side: after a reconnect, no Treadmill Data comes
    from a still belt, so a controller must not wait for telemetry to learn it is still."""
    client = BleakClient(strict.device())
    await client.connect()
    await client.pair()
    probe = Probe(client)
    await probe.listen()
    await probe.command("00")
    await probe.command("07")
    await strict.run_for(6.0, step=1.0)
    strict.server.disconnect()  # the strict machine stops its belt
    await strict.run_for(5.0, step=1.0)
    assert strict.machine.belt_stopped
    await client.connect()
    again = Probe(client)
    await again.listen()
    await strict.run_for(10.0, step=1.0)
    assert again.received[codec.TREADMILL_DATA] == []
    assert await again.command("00") == bytes.fromhex("80 00 01")
    assert await again.command("08 01") == bytes.fromhex("80 08 04")  # finding 2's answer
    await client.disconnect()


async def test_lenient_sends_treadmill_data_every_second(lenient: Rig) -> None:
    async with BleakClient(lenient.device()) as client:
        probe = Probe(client)
        await probe.listen()
        await lenient.run_for(5.0, step=1.0)
        assert len(probe.received[codec.TREADMILL_DATA]) == 6  # a still belt, every second


# -- strict: the machine announces what the control point changed ------------------------------


async def test_strict_announces_start_stop_and_pause_on_machine_status(
    strict: Rig, probe: Probe
) -> None:
    await probe.command("02 A3 01")
    await probe.command("07")
    await strict.run_for(4.0)
    await probe.command("08 02")
    await probe.command("07")
    await probe.command("08 01")
    assert probe.statuses == ["05 A3 01", "04", "02 02", "04", "02 01"]


async def test_lenient_announces_only_target_changes(lenient: Rig) -> None:
    async with BleakClient(lenient.device()) as client:
        probe = Probe(client)
        await probe.listen()
        await probe.command("00")
        await probe.command("02 A3 01")
        await probe.command("07")
        await probe.command("08 01")
        assert probe.statuses == ["05 A3 01"]


# -- pause-first: a Stop refused while the belt moves (KingSmith R3) ----------------------------


async def test_pause_first_refuses_stop_while_the_belt_moves() -> None:
    rig = make_rig("pause-first")
    with rig.radio.routed():
        async with BleakClient(rig.device()) as client:
            probe = Probe(client)
            await probe.listen()
            await probe.command("00")
            await probe.command("02 A3 01")
            await probe.command("07")
            await rig.run_for(1.0)
            assert await probe.command("08 01") == bytes.fromhex("80 08 04")  # counting down
            await rig.run_for(4.0)
            assert await probe.command("08 01") == bytes.fromhex("80 08 04")  # running
            assert rig.machine.state is BeltState.RUNNING
            assert await probe.command("08 02") == bytes.fromhex("80 08 01")
            assert await probe.command("08 01") == bytes.fromhex("80 08 01")  # paused: stops
            await rig.run_for(3.0)
            assert rig.machine.belt_stopped
            assert probe.statuses[-2:] == ["02 02", "02 01"]
    rig.server.close()
