"""The simulated FTMS GATT server, driven through plain bleak over the in-process radio.

These tests are the "other machine's" own: they speak raw FTMS bytes through ``BleakClient``
and ``BleakScanner`` (routed to the simulated radio), and check that the server enforces what
real treadmills enforce.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import bleak
import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDeviceNotFoundError,
    BleakGATTProtocolError,
)

from retrotread_sim import MachineSpec, ManualClock, SimTreadmill
from retrotread_sim.faults import FaultPlan
from retrotread_sim.ftms import (
    AdapterState,
    AttError,
    FtmsOptions,
    FtmsServer,
    Radio,
    ResultCode,
    SimPeripheral,
    codec,
)
from retrotread_sim.ftms.bleak_backend import BACKEND_ID


async def settle() -> None:
    """Let queued notifications and indications arrive."""
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


def make_rig(spec: MachineSpec | None = None, options: FtmsOptions | None = None) -> Rig:
    clock = ManualClock()
    machine = SimTreadmill(spec, clock)
    server = FtmsServer(machine, options)
    radio = Radio()
    return Rig(clock, machine, server, radio, radio.add(SimPeripheral(server)))


@pytest.fixture
def rig() -> Iterator[Rig]:
    rig = make_rig()
    with rig.radio.routed():
        yield rig
    rig.server.close()


@dataclass
class Probe:
    """A raw GATT client that keeps everything the server sends it."""

    client: BleakClient
    received: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))

    async def listen(self, *uuids: str) -> None:
        for uuid in uuids:
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


@pytest.fixture
async def probe(rig: Rig) -> AsyncIterator[Probe]:
    async with BleakClient(rig.device()) as client:
        probe = Probe(client)
        await probe.listen(codec.CONTROL_POINT, codec.MACHINE_STATUS, codec.TREADMILL_DATA)
        yield probe


# -- discovery ----------------------------------------------------------------------------------


async def test_scanner_hears_the_treadmill_advertising_ftms(rig: Rig) -> None:
    found = await BleakScanner.discover(0.3, return_adv=True, service_uuids=[codec.FTMS_SERVICE])
    device, advert = found[rig.peripheral.address]
    assert device.name == "RetroTread SIM-1"
    assert device.details == {}  # no BlueZ path: bleak-retry-connector leaves D-Bus alone
    assert advert.rssi == -58
    assert advert.service_data[codec.FTMS_SERVICE] == bytes.fromhex("01 01 00")


async def test_scanner_filters_other_services_and_stops_hearing_a_connected_machine(
    rig: Rig,
) -> None:
    heart_rate = codec.uuid16(0x180D)
    assert await BleakScanner.discover(0.3, service_uuids=[heart_rate]) == []
    async with BleakClient(rig.device()):
        assert await BleakScanner.discover(0.3) == []  # its only connection slot is taken
    assert len(await BleakScanner.discover(0.3)) == 1


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (AdapterState.OFF, BleakBluetoothNotAvailableReason.POWERED_OFF),
        (AdapterState.MISSING, BleakBluetoothNotAvailableReason.NO_BLUETOOTH),
        (AdapterState.DENIED, BleakBluetoothNotAvailableReason.DENIED_BY_SYSTEM),
    ],
)
async def test_scanner_meets_the_adapter_state(
    rig: Rig, state: AdapterState, reason: BleakBluetoothNotAvailableReason
) -> None:
    rig.radio.adapter = state
    with pytest.raises(BleakBluetoothNotAvailableError) as caught:
        await BleakScanner.discover(0.1)
    assert caught.value.reason is reason


async def test_routing_ends_with_the_block() -> None:
    platform_lookup = bleak.get_platform_client_backend_type
    rig, other = make_rig(), make_rig()
    with rig.radio.routed():
        with other.radio.routed():
            assert BleakClient(rig.device()).backend_id == BACKEND_ID
        assert BleakScanner().backend_id == BACKEND_ID
    assert bleak.get_platform_client_backend_type is platform_lookup


async def test_out_of_range_peripheral_cannot_be_connected(rig: Rig) -> None:
    rig.peripheral.in_range = False
    with pytest.raises(BleakDeviceNotFoundError):
        await BleakClient(rig.device()).connect()


# -- the attribute table ------------------------------------------------------------------------


async def test_reads_feature_ranges_and_device_information(rig: Rig) -> None:
    async with BleakClient(rig.device()) as client:
        feature = await client.read_gatt_char(codec.FEATURE)
        assert feature == bytes.fromhex("0C 10 00 00 03 00 00 00")
        speed = await client.read_gatt_char(codec.SPEED_RANGE)
        assert speed == bytes.fromhex("50 00 8A 07 01 00")  # 0.80-19.30 km/h by 0.01
        incline = await client.read_gatt_char(codec.INCLINATION_RANGE)
        assert incline == bytes.fromhex("00 00 96 00 01 00")  # 0.0-15.0 % by 0.1
        maker = await client.read_gatt_char(codec.MANUFACTURER_NAME)
        assert maker == b"retrotread-sim"
        status = await client.read_gatt_char(codec.TRAINING_STATUS)
        assert status == bytes.fromhex("00 01")  # idle
        with pytest.raises(BleakGATTProtocolError) as caught:
            await client.read_gatt_char(codec.CONTROL_POINT)
        assert caught.value.code == AttError.READ_NOT_PERMITTED


async def test_service_filter_hides_other_services(rig: Rig) -> None:
    async with BleakClient(rig.device(), services=[codec.FTMS_SERVICE]) as client:
        assert [s.uuid for s in client.services] == [codec.FTMS_SERVICE]


# -- the control point rules --------------------------------------------------------------------


async def test_indications_must_be_enabled_before_writing(rig: Rig) -> None:
    async with BleakClient(rig.device()) as client:
        with pytest.raises(BleakGATTProtocolError) as caught:
            await client.write_gatt_char(codec.CONTROL_POINT, b"\x00", True)
        assert caught.value.code == AttError.CCCD_IMPROPERLY_CONFIGURED
    assert rig.server.writes[0].att_error is AttError.CCCD_IMPROPERLY_CONFIGURED


async def test_control_must_be_requested(rig: Rig, probe: Probe) -> None:
    assert await probe.command("02 A3 01") == bytes.fromhex("80 02 05")
    assert rig.machine.target_speed_kmh == 0.0
    assert await probe.command("00") == bytes.fromhex("80 00 01")
    assert await probe.command("02 A3 01") == bytes.fromhex("80 02 01")
    assert rig.machine.target_speed_kmh == pytest.approx(4.19)
    assert rig.server.control_writes == [bytes.fromhex(h) for h in ("02 A3 01", "00", "02 A3 01")]


async def test_procedures_act_on_the_machine(rig: Rig, probe: Probe) -> None:
    await probe.command("00")
    assert await probe.command("03 14 00") == bytes.fromhex("80 03 01")
    assert rig.machine.target_incline_pct == pytest.approx(2.0)
    assert await probe.command("07") == bytes.fromhex("80 07 01")
    assert rig.machine.state.value == "running"
    assert await probe.command("08 02") == bytes.fromhex("80 08 01")
    assert rig.machine.state.value == "paused"
    assert await probe.command("08 01") == bytes.fromhex("80 08 01")
    assert rig.machine.state.value == "stopped"


async def test_values_must_be_in_range(rig: Rig, probe: Probe) -> None:
    await probe.command("00")
    assert await probe.command("02 E8 03") == bytes.fromhex("80 02 01")  # 10.00 km/h
    assert await probe.command("02 D0 07") == bytes.fromhex("80 02 03")  # 20.00 km/h
    assert await probe.command("03 C8 00") == bytes.fromhex("80 03 03")  # 20.0 %
    assert await probe.command("08 07") == bytes.fromhex("80 08 03")  # no such stop code
    assert await probe.command("02 A3") == bytes.fromhex("80 02 03")  # short parameter
    assert rig.machine.target_speed_kmh == pytest.approx(10.0)


async def test_unsupported_procedures(rig: Rig, probe: Probe) -> None:
    await probe.command("00")
    assert await probe.command("05 64 00") == bytes.fromhex("80 05 02")  # target power


async def test_one_procedure_at_a_time(rig: Rig, probe: Probe) -> None:
    await probe.command("00")
    await probe.client.write_gatt_char(codec.CONTROL_POINT, bytes.fromhex("07"), True)
    with pytest.raises(BleakGATTProtocolError) as caught:  # before the indication came back
        await probe.client.write_gatt_char(codec.CONTROL_POINT, bytes.fromhex("08 02"), True)
    assert caught.value.code == AttError.PROCEDURE_ALREADY_IN_PROGRESS
    await settle()
    assert await probe.command("08 02") == bytes.fromhex("80 08 01")


async def test_indication_follows_the_write(rig: Rig, probe: Probe) -> None:
    await probe.client.write_gatt_char(codec.CONTROL_POINT, b"\x00", True)
    assert probe.received[codec.CONTROL_POINT] == []  # the write returned first
    await settle()
    assert probe.received[codec.CONTROL_POINT] == [bytes.fromhex("80 00 01")]


async def test_a_slow_machine_answers_after_its_delay() -> None:
    rig = make_rig(options=FtmsOptions(response_delay_s=0.5))
    with rig.radio.routed():
        async with BleakClient(rig.device()) as client:
            probe = Probe(client)
            await probe.listen(codec.CONTROL_POINT)
            await client.write_gatt_char(codec.CONTROL_POINT, b"\x00", True)
            await settle()
            assert probe.received[codec.CONTROL_POINT] == []
            rig.clock.advance(0.5)
            await settle()
            assert probe.received[codec.CONTROL_POINT] == [bytes.fromhex("80 00 01")]


async def test_safety_key_fails_start(rig: Rig, probe: Probe) -> None:
    await probe.command("00")
    rig.machine.pull_safety_key()
    assert await probe.command("07") == bytes.fromhex("80 07 04")


async def test_reset_and_control_lost_end_control(rig: Rig, probe: Probe) -> None:
    await probe.command("00")
    assert await probe.command("01") == bytes.fromhex("80 01 01")
    assert await probe.command("07") == bytes.fromhex("80 07 05")
    await probe.command("00")
    rig.server.revoke_control()
    await settle()
    assert probe.received[codec.MACHINE_STATUS][-1] == b"\xff"
    assert await probe.command("07") == bytes.fromhex("80 07 05")


async def test_control_is_not_granted_while_denied(rig: Rig, probe: Probe) -> None:
    rig.server.deny_control()
    assert await probe.command("00") == bytes.fromhex("80 00 05")
    rig.server.deny_control(False)
    assert await probe.command("00") == bytes.fromhex("80 00 01")


async def test_control_per_command_quirk() -> None:
    rig = make_rig(options=FtmsOptions(control_per_command=True))
    with rig.radio.routed():
        async with BleakClient(rig.device()) as client:
            probe = Probe(client)
            await probe.listen(codec.CONTROL_POINT)
            await probe.command("00")
            assert await probe.command("07") == bytes.fromhex("80 07 01")
            assert await probe.command("08 02") == bytes.fromhex("80 08 05")


@pytest.mark.parametrize("result", list(ResultCode))
async def test_forced_results(rig: Rig, probe: Probe, result: ResultCode) -> None:
    await probe.command("00")
    rig.server.force_result(0x02, result)
    assert await probe.command("02 A3 01") == bytes([0x80, 0x02, result])
    assert rig.machine.target_speed_kmh == 0.0  # a forced answer does not act
    assert await probe.command("02 A3 01") == bytes.fromhex("80 02 01")


async def test_forced_silence_keeps_the_procedure_pending(rig: Rig, probe: Probe) -> None:
    await probe.command("00")
    rig.server.force_result(0x07, None)
    await probe.client.write_gatt_char(codec.CONTROL_POINT, b"\x07", True)
    await settle()
    assert probe.received[codec.CONTROL_POINT] == [bytes.fromhex("80 00 01")]
    with pytest.raises(BleakGATTProtocolError):
        await probe.client.write_gatt_char(codec.CONTROL_POINT, b"\x07", True)


# -- notifications ------------------------------------------------------------------------------


async def test_treadmill_data_every_interval(rig: Rig, probe: Probe) -> None:
    await settle()
    assert probe.received[codec.TREADMILL_DATA] == [bytes.fromhex("0C04 0000 000000 0000FF7F 0000")]
    await probe.command("00")
    await probe.command("02 A3 01")
    await probe.command("03 14 00")
    await probe.command("07")
    for _ in range(5):
        rig.clock.advance(1.0)
        await settle()
    latest = probe.received[codec.TREADMILL_DATA][-1]
    assert latest[:4] == bytes.fromhex("0C04 A301")  # 4.19 km/h reached
    assert len(probe.received[codec.TREADMILL_DATA]) == 6


async def test_split_records(rig: Rig, probe: Probe) -> None:
    rig.server.split_records = 2
    rig.server.notify_treadmill_data()
    await settle()
    first, last = probe.received[codec.TREADMILL_DATA][-2:]
    assert first[0] & codec.MORE_DATA
    assert last == bytes.fromhex("0000 0000")


async def test_console_and_key_become_machine_status(rig: Rig, probe: Probe) -> None:
    machine = rig.machine
    machine.console_start()
    machine.console_pause()
    machine.console_stop()
    machine.console_set_speed(5.0)
    machine.console_set_incline(1.5)
    machine.pull_safety_key()
    await settle()
    assert probe.received[codec.MACHINE_STATUS] == [
        bytes.fromhex(h) for h in ("04", "02 02", "02 01", "05 F4 01", "06 0F 00", "03")
    ]


async def test_target_changes_by_the_control_point_are_echoed(rig: Rig, probe: Probe) -> None:
    await probe.command("00")
    await probe.command("02 A3 01")
    assert probe.received[codec.MACHINE_STATUS] == [bytes.fromhex("05 A3 01")]


async def test_mph_quirk_reads_the_speed_field_as_mph() -> None:
    rig = make_rig(MachineSpec(speed_field_mph=True))
    with rig.radio.routed():
        async with BleakClient(rig.device()) as client:
            probe = Probe(client)
            await probe.listen(codec.CONTROL_POINT, codec.MACHINE_STATUS)
            await probe.command("00")
            assert await probe.command("02 04 01") == bytes.fromhex("80 02 01")  # 2.60
            assert rig.machine.target_speed_kmh == pytest.approx(4.18)  # ran as 2.6 mph
            assert probe.received[codec.MACHINE_STATUS] == [bytes.fromhex("05 04 01")]


# -- links --------------------------------------------------------------------------------------


async def test_link_loss_fires_the_disconnected_callback_and_ends_control(rig: Rig) -> None:
    gone: list[BleakClient] = []
    client = BleakClient(rig.device(), disconnected_callback=gone.append)
    await client.connect()
    probe = Probe(client)
    await probe.listen(codec.CONTROL_POINT)
    await probe.command("00")
    rig.server.disconnect()
    await settle()
    assert gone == [client]
    assert not client.is_connected
    await client.connect()  # back in range: reconnecting is allowed, control is not kept
    await probe.listen(codec.CONTROL_POINT)
    assert await probe.command("07") == bytes.fromhex("80 07 05")
    await client.disconnect()
    assert gone == [client, client]  # fired on the disconnect asked for too


# -- a fault plan (sim://?faults=...) -----------------------------------------------------------


def planned_rig(plan: str) -> Rig:
    clock = ManualClock()
    machine = SimTreadmill(None, clock)
    server = FtmsServer(machine, plan=FaultPlan.parse(plan))
    radio = Radio()
    return Rig(clock, machine, server, radio, radio.add(SimPeripheral(server)))


async def test_plan_rejects_ignores_and_delays_procedures() -> None:
    rig = planned_rig("reject:set-speed=not-permitted,ignore:start@5,late:pause=2")
    with rig.radio.routed():
        async with BleakClient(rig.device()) as client:
            probe = Probe(client)
            await probe.listen(codec.CONTROL_POINT)
            await probe.command("00")
            assert await probe.command("02 A3 01") == bytes.fromhex("80 02 05")
            assert await probe.command("02 A3 01") == bytes.fromhex("80 02 01")  # one-shot
            assert await probe.command("07") == bytes.fromhex("80 07 01")  # not yet at 5 s
            await client.write_gatt_char(codec.CONTROL_POINT, b"\x08\x02", True)
            await settle()
            assert probe.received[codec.CONTROL_POINT][-1] == bytes.fromhex("80 07 01")
            rig.clock.advance(2)
            await settle()
            assert probe.received[codec.CONTROL_POINT][-1] == bytes.fromhex("80 08 01")
            rig.clock.advance(3)
            await client.write_gatt_char(codec.CONTROL_POINT, b"\x07", True)
            await settle()
            assert probe.received[codec.CONTROL_POINT][-1] == bytes.fromhex("80 08 01")
    notes = [c.detail for c in rig.machine.commands if not c.accepted]
    assert notes == ["refused by fault plan: not-permitted", "ignored by fault plan"]


async def test_plan_drops_the_link_for_its_duration() -> None:
    rig = planned_rig("drop@10+5")
    gone: list[BleakClient] = []
    with rig.radio.routed():
        client = BleakClient(rig.device(), disconnected_callback=gone.append)
        await client.connect()
        rig.clock.advance(10)
        await settle()
        assert gone == [client]
        assert not rig.server.reachable
        assert await BleakScanner.discover(0.2) == []
        with pytest.raises(BleakDeviceNotFoundError):
            await client.connect()
        rig.clock.advance(5)
        await client.connect()
        assert client.is_connected
        await client.disconnect()


async def test_plan_stale_and_frozen_telemetry() -> None:
    rig = planned_rig("stale@2+2,freeze@5")
    with rig.radio.routed():
        async with BleakClient(rig.device()) as client:
            probe = Probe(client)
            await probe.listen(codec.TREADMILL_DATA)
            rig.machine.start()
            for _ in range(8):
                await settle()
                rig.clock.advance(1)
            await settle()
            elapsed = [
                int.from_bytes(r[11:13], "little") for r in probe.received[codec.TREADMILL_DATA]
            ]
            assert elapsed == [0, 1, 4, 5, 5, 5, 5]  # nothing at 2-3 s, then one record repeated
