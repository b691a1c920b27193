"""The ``ble://`` driver against the simulated FTMS treadmill, through pyftms, bleak and
bleak-retry-connector unmodified. Every test runs on the virtual clock."""

from __future__ import annotations

import asyncio
import io

import pytest
from bleak.exc import BleakDBusError
from pyftms.serializer import NumSerializer

from retrotread.clock import run
from retrotread.drivers.base import BeltStatus, MachineEventKind, Telemetry
from retrotread.drivers.ftms_ble import (
    FTMS_PROCEDURE_TIMEOUT_S,
    INCLINE_RESOLUTION,
    SPEED_RESOLUTION,
    bluetooth_unavailable,
    pyftms_value,
    scan,
)
from retrotread.errors import (
    CommandRejected,
    CommandTimeout,
    DeviceUnavailable,
    DeviceUrlError,
    LinkLost,
    Rejection,
    Unavailable,
)
from retrotread.profiles import get_profile
from retrotread.units import kmh, mph, percent
from retrotread_sim import MachineSpec
from retrotread_sim.ftms import AdapterState, FtmsOptions, MachineType, ResultCode, SimPeripheral
from tests.ble_rig import BleRig, ble_rig, play, retro

# -- connecting ---------------------------------------------------------------------------------


def test_connect_reads_the_machine_and_requests_control() -> None:
    async def scenario(rig: BleRig) -> None:
        driver = rig.driver
        assert driver.connected
        assert rig.writes == ["00"]  # Request Control first, and granted
        write = rig.server.writes[0]
        assert write.att_error is None  # indications were already enabled
        assert write.result is ResultCode.SUCCESS
        speed, incline = driver.capabilities.speed, driver.capabilities.incline
        assert (speed.low, speed.high) == (kmh("0.8"), kmh("19.3"))
        assert speed.increment.size == SPEED_RESOLUTION.size
        assert (incline.low, incline.high) == (percent(0), percent(15))
        assert str(incline.increment) == "0.1 %"
        assert driver.capabilities.can_control
        assert driver.device_info["manufacturer"] == "retrotread-sim"
        assert driver.name == "RetroTread SIM-1 (C0:FF:EE:18:26:01)"

    play(scenario)


def test_find_by_name_and_match_the_profile() -> None:
    async def scenario(rig: BleRig) -> None:
        assert rig.driver.profile.name == "generic-ftms"  # matched for FTMS machines by name
        assert rig.driver.profile.quirks.start_before_speed  # the URL's quirk on top

    play(scenario, "start_before_speed=1", by_name=True)


def test_a_profile_named_in_the_url_is_kept() -> None:
    async def scenario(rig: BleRig) -> None:
        assert rig.driver.profile.name == "simulator"
        assert rig.driver.profile.quirks.incline_step == 0.5

    play(scenario, "profile=simulator&incline_step=0.5")


def test_a_missing_treadmill_is_reported_after_the_scan_timeout() -> None:
    async def main() -> float:
        rig = ble_rig("scan_timeout=3")
        rig.peripheral.in_range = False
        with pytest.raises(DeviceUnavailable) as caught:
            await rig.driver.connect()
        assert caught.value.reason is Unavailable.NOT_FOUND
        assert "retrotread scan" in str(caught.value)
        return asyncio.get_running_loop().time()

    assert run(main(), virtual=True) == pytest.approx(3.0)


def test_a_bike_is_not_a_treadmill() -> None:
    async def main() -> None:
        rig = ble_rig()
        rig.radio.remove(rig.peripheral.address)
        bike = SimPeripheral(rig.server, machine_type=MachineType.INDOOR_BIKE)
        rig.radio.add(bike)
        with pytest.raises(DeviceUnavailable) as caught:
            await rig.driver.connect()
        assert caught.value.reason is Unavailable.NOT_A_TREADMILL
        assert "indoor bike" in str(caught.value)

    run(main(), virtual=True)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (AdapterState.OFF, Unavailable.ADAPTER_OFF),
        (AdapterState.MISSING, Unavailable.ADAPTER_MISSING),
        (AdapterState.DENIED, Unavailable.NOT_PERMITTED),
    ],
)
def test_bluetooth_off_missing_or_denied(state: AdapterState, reason: Unavailable) -> None:
    async def main() -> None:
        rig = ble_rig()
        rig.radio.adapter = state
        with pytest.raises(DeviceUnavailable) as caught:
            await rig.driver.connect()
        assert caught.value.reason is reason

    run(main(), virtual=True)


def test_platform_errors_become_clear_reasons() -> None:
    missing = bluetooth_unavailable(FileNotFoundError(2, "No such file or directory"))
    assert missing.reason is Unavailable.ADAPTER_MISSING
    assert "BlueZ" in str(missing)
    assert bluetooth_unavailable(PermissionError()).reason is Unavailable.NOT_PERMITTED
    not_ready = BleakDBusError("org.bluez.Error.NotReady", [])
    assert bluetooth_unavailable(not_ready).reason is Unavailable.ADAPTER_OFF
    no_daemon = BleakDBusError("org.freedesktop.DBus.Error.ServiceUnknown", [])
    assert "bluetoothd" in str(bluetooth_unavailable(no_daemon))


def test_url_must_name_one_treadmill() -> None:
    from retrotread.drivers.registry import open_treadmill

    with pytest.raises(DeviceUrlError, match="retrotread scan"):
        open_treadmill("ble://")
    with pytest.raises(DeviceUrlError, match="not both"):
        open_treadmill("ble://AA:BB:CC:DD:EE:FF?name=Walker")
    with pytest.raises(DeviceUrlError, match="valid options: name, profile"):
        open_treadmill("ble://AA:BB:CC:DD:EE:FF?colour=red")


def test_scan_lists_ftms_machines_strongest_first() -> None:
    async def main() -> None:
        rig = ble_rig()
        far = SimPeripheral(rig.server, address="C0:FF:EE:00:00:02", name="Far Tread", rssi=-80)
        rig.radio.add(far)
        with rig.radio.routed():
            found = await scan(1.0)
        assert [(s.name, s.address, s.rssi, s.kind) for s in found] == [
            ("RetroTread SIM-1", "C0:FF:EE:18:26:01", -58, "treadmill"),
            ("Far Tread", "C0:FF:EE:00:00:02", -80, "treadmill"),
        ]

    run(main(), virtual=True)


# -- commands and the bytes on the wire ---------------------------------------------------------


def test_commands_reach_the_machine_as_the_intended_bytes() -> None:
    async def scenario(rig: BleRig) -> None:
        driver = rig.driver
        await driver.set_speed(retro(rig, "2.6"))
        await driver.set_speed(retro(rig, "3.2"))
        await driver.set_incline(percent("2.0"))
        await driver.start()
        await driver.pause()
        await driver.stop()
        assert rig.writes == ["00", "02 A3 01", "02 02 02", "03 14 00", "07", "08 02", "08 01"]
        set_speeds = [c.value for c in rig.machine.commands if c.name == "set-speed"]
        assert set_speeds == [pytest.approx(4.19), pytest.approx(5.14)]
        assert all(w.result is ResultCode.SUCCESS for w in rig.server.writes)

    play(scenario)


def test_coarser_increment_quantizes_inside_the_band() -> None:
    async def scenario(rig: BleRig) -> None:
        assert retro(rig, "2.6") == kmh("4.2")
        await rig.driver.set_speed(retro(rig, "2.6"))
        await rig.driver.set_speed(retro(rig, "3.2"))
        assert rig.writes[1:] == ["02 A4 01", "02 FE 01"]  # 4.20 and 5.10 km/h

    play(scenario, spec=MachineSpec(speed_increment_kmh=0.1))


def test_every_wire_integer_survives_pyftms_truncation() -> None:
    speed, incline = NumSerializer("u2.01"), NumSerializer("s2.1")

    def sent(serializer: NumSerializer, value: float) -> int:
        out = io.BytesIO()
        serializer.serialize(out, value)
        return int.from_bytes(out.getvalue(), "little", signed=serializer.sign)

    assert all(sent(speed, pyftms_value(n, SPEED_RESOLUTION)) == n for n in range(0xFFFF))
    inclines = range(-0x7FFF, 0x7FFF)
    assert all(sent(incline, pyftms_value(n, INCLINE_RESOLUTION)) == n for n in inclines)
    # Why: plain floats truncate to the wrong integer for some speeds, e.g. 0.29 km/h -> 28.
    wrong = [n for n in range(0xFFFF) if int((n / 100) / 0.01) != n]
    assert 29 in wrong and len(wrong) > 1000


# -- result codes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (ResultCode.NOT_SUPPORTED, Rejection.NOT_SUPPORTED),
        (ResultCode.INVALID_PARAMETER, Rejection.INVALID_PARAMETER),
        (ResultCode.OPERATION_FAILED, Rejection.FAILED),
    ],
)
def test_result_codes_become_typed_rejections(code: ResultCode, reason: Rejection) -> None:
    async def scenario(rig: BleRig) -> None:
        rig.server.force_result(0x02, code)
        with pytest.raises(CommandRejected) as caught:
            await rig.driver.set_speed(retro(rig, "2.6"))
        assert caught.value.reason is reason
        assert rig.writes == ["00", "02 A3 01"]  # never resent blindly
        if reason is Rejection.INVALID_PARAMETER:
            assert "4.19 km/h (2.6 mph)" in str(caught.value)
            assert "0.8 km/h (0.5 mph) to 19.3 km/h (11.99 mph)" in str(caught.value)

    play(scenario)


def test_a_value_out_of_the_machines_range_names_it() -> None:
    async def scenario(rig: BleRig) -> None:
        with pytest.raises(CommandRejected) as caught:
            await rig.driver.set_incline(percent("9"))
        assert caught.value.reason is Rejection.INVALID_PARAMETER
        assert "incline 9 % is not accepted" in str(caught.value)
        assert "0 % to 6 % in steps of 0.1 %" in str(caught.value)
        assert rig.writes[-1] == "03 5A 00"

    play(scenario, spec=MachineSpec(incline_max_pct=6.0))


def test_control_not_permitted_is_requested_again_once() -> None:
    async def scenario(rig: BleRig) -> None:
        rig.server.force_result(0x02, ResultCode.CONTROL_NOT_PERMITTED)
        await rig.driver.set_speed(retro(rig, "2.6"))
        assert rig.writes == ["00", "02 A3 01", "00", "02 A3 01"]
        assert MachineEventKind.CONTROL_LOST not in rig.events

    play(scenario)


def test_control_refused_again_fails_safe() -> None:
    async def scenario(rig: BleRig) -> None:
        rig.server.force_result(0x02, ResultCode.CONTROL_NOT_PERMITTED)
        rig.server.deny_control()
        with pytest.raises(CommandRejected) as caught:
            await rig.driver.set_speed(retro(rig, "2.6"))
        assert caught.value.reason is Rejection.NOT_PERMITTED
        assert rig.writes == ["00", "02 A3 01", "00"]  # one re-request, no second try
        assert rig.events == [MachineEventKind.CONTROL_LOST]

    play(scenario)


def test_control_refused_at_connect() -> None:
    async def main() -> None:
        rig = ble_rig()
        rig.server.deny_control()
        with pytest.raises(CommandRejected, match="did not grant control"):
            await rig.driver.connect()
        assert not rig.driver.connected
        assert rig.server.connections == []

    run(main(), virtual=True)


# -- telemetry ----------------------------------------------------------------------------------


@pytest.mark.parametrize("parts", [1, 2, 4])
def test_telemetry_from_treadmill_data(parts: int) -> None:
    async def scenario(rig: BleRig) -> None:
        rig.server.split_records = parts
        await rig.driver.set_incline(percent(2))
        await rig.driver.set_speed(retro(rig, "2.6"))
        await rig.driver.start()
        before = len(rig.telemetry)
        await asyncio.sleep(10)
        latest = rig.driver.latest
        assert latest is not None
        snap = rig.machine.snapshot()
        assert latest.speed == kmh("4.19")
        assert latest.incline == percent(2)
        assert snap.distance_m - 1.5 < latest.distance_m <= snap.distance_m  # whole metres,
        assert snap.elapsed_s - 1.5 < latest.elapsed_s <= snap.elapsed_s  # once a second
        assert latest.belt is BeltStatus.RUNNING
        assert 9 <= len(rig.telemetry) - before <= 11  # one report per record, not fragment

    play(scenario)


def test_machine_status_becomes_machine_events() -> None:
    async def scenario(rig: BleRig) -> None:
        machine = rig.machine
        await rig.driver.set_speed(retro(rig, "2.6"))  # echoed by the machine: not a change
        machine.console_start()
        await asyncio.sleep(0.1)
        machine.console_set_speed(5.0)
        machine.console_set_incline(1.5)
        machine.console_pause()
        machine.console_stop()
        machine.pull_safety_key()
        await asyncio.sleep(0.1)
        assert rig.events == [
            MachineEventKind.STARTED_AT_CONSOLE,
            MachineEventKind.TARGET_SPEED_CHANGED,
            MachineEventKind.TARGET_INCLINE_CHANGED,
            MachineEventKind.PAUSED_AT_CONSOLE,
            MachineEventKind.STOPPED_AT_CONSOLE,
            MachineEventKind.SAFETY_KEY,
        ]
        changed = [e for e in rig.reports if getattr(e, "value", None) is not None]
        assert [getattr(e, "value", None) for e in changed] == [kmh("5"), percent("1.5")]

    play(scenario)


def test_control_lost_is_requested_again() -> None:
    async def scenario(rig: BleRig) -> None:
        rig.server.revoke_control()
        await asyncio.sleep(0.1)
        assert rig.writes == ["00", "00"]
        assert MachineEventKind.CONTROL_LOST not in rig.events
        rig.server.deny_control()
        rig.server.revoke_control()
        await asyncio.sleep(0.1)
        assert rig.writes == ["00", "00", "00"]
        assert rig.events == [MachineEventKind.CONTROL_LOST]

    play(scenario)


# -- quirks -------------------------------------------------------------------------------------


def test_quirk_request_control_before_every_command() -> None:
    async def scenario(rig: BleRig) -> None:
        await rig.driver.start()
        await rig.driver.set_speed(retro(rig, "2.6"))
        assert rig.writes == ["00", "00", "07", "00", "02 A3 01"]

    play(scenario, "request_control_each_command=1")


def test_a_machine_forgetting_control_still_works_without_the_quirk() -> None:
    async def scenario(rig: BleRig) -> None:
        await rig.driver.start()
        await rig.driver.set_speed(retro(rig, "2.6"))
        assert rig.writes == ["00", "07", "02 A3 01", "00", "02 A3 01"]

    play(scenario, options=FtmsOptions(control_per_command=True))


def test_quirk_speed_field_in_mph() -> None:
    async def scenario(rig: BleRig) -> None:
        assert str(rig.driver.capabilities.speed.increment) == "0.01 mph"
        speed = retro(rig, "2.6")
        assert speed == mph("2.6")
        await rig.driver.set_speed(speed)
        await rig.driver.start()
        assert rig.writes[1] == "02 04 01"  # 2.60 in the mph-read field
        await asyncio.sleep(5)
        assert rig.driver.latest is not None
        assert rig.driver.latest.speed == kmh("4.18")  # reported in true km/h: 2.6 mph

    play(scenario, "speed_field_mph=1", spec=MachineSpec(speed_field_mph=True))


# -- the link -----------------------------------------------------------------------------------


def test_lost_link_reconnects_with_backoff_and_rereads_the_belt() -> None:
    async def scenario(rig: BleRig) -> None:
        driver = rig.driver
        await driver.set_speed(retro(rig, "2.6"))
        await driver.start()
        await asyncio.sleep(5)
        rig.peripheral.in_range = False
        rig.server.disconnect()
        await asyncio.sleep(0.1)
        assert rig.events == [MachineEventKind.LINK_LOST]
        assert not driver.connected
        assert driver.latest is None  # unknown until the belt reports again
        lost_at = asyncio.get_running_loop().time()
        with pytest.raises(LinkLost, match="nothing was sent"):
            await driver.stop()
        assert asyncio.get_running_loop().time() == lost_at  # at once, not after a retry
        await asyncio.sleep(10)
        rig.peripheral.in_range = True
        await asyncio.sleep(20)
        assert rig.events == [MachineEventKind.LINK_LOST, MachineEventKind.LINK_RESTORED]
        assert driver.connected
        assert rig.writes[-1] == "00"  # control requested again on the new link
        kinds = [getattr(r, "kind", None) for r in rig.reports]
        restored = rig.reports[kinds.index(MachineEventKind.LINK_RESTORED)]
        assert 10 < restored.at - lost_at < 15
        reread = rig.reports[kinds.index(MachineEventKind.LINK_RESTORED) - 1]
        assert isinstance(reread, Telemetry)  # the belt was re-read before "restored"
        assert reread.speed == kmh("4.19")  # the machine kept running meanwhile
        assert reread.belt is BeltStatus.RUNNING
        await driver.stop()
        assert rig.writes[-1] == "08 01"

    play(scenario)


def test_link_dropping_mid_command_fails_it_at_once() -> None:
    async def scenario(rig: BleRig) -> None:
        rig.server.force_result(0x07, None)  # the machine sits on the start
        loop = asyncio.get_running_loop()
        asyncio.get_running_loop().call_later(1.0, rig.server.disconnect)
        started = loop.time()
        with pytest.raises(LinkLost, match="outcome unknown"):
            await rig.driver.start()
        assert loop.time() - started == pytest.approx(1.0)

    play(scenario)


def test_an_unanswered_procedure_times_out_at_30_s_drops_the_link_and_reconnects() -> None:
    """FTMS: no answer in 30 s is a failed procedure. The caller gets CommandTimeout (the
    same typed outcome as on every other link, issue 13 finding 10) at exactly 30 s, and
    nothing more goes out on that link — not even a stop queued behind it."""

    async def scenario(rig: BleRig) -> None:
        assert rig.driver.profile.confirm.command_timeout_s == FTMS_PROCEDURE_TIMEOUT_S == 30
        rig.server.force_result(0x07, None)
        loop = asyncio.get_running_loop()
        started = loop.time()
        start = asyncio.create_task(rig.driver.start())
        await asyncio.sleep(10)
        stop = asyncio.create_task(rig.driver.stop())  # waits: the start is still pending
        with pytest.raises(CommandTimeout, match="no answer within 30 s"):
            await start
        assert loop.time() - started == pytest.approx(30.0)
        with pytest.raises(LinkLost, match="nothing was sent"):
            await stop
        await asyncio.sleep(5)
        assert rig.events == [MachineEventKind.LINK_LOST, MachineEventKind.LINK_RESTORED]
        # Nothing more on the old link; control requested again on the new one.
        assert rig.writes == ["00", "07", "00"]
        await rig.driver.start()
        assert rig.writes[-1] == "07"

    play(scenario)


def test_an_answer_within_30_s_is_taken() -> None:
    async def scenario(rig: BleRig) -> None:
        rig.server.delay_answers(0x02, 29.9)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await rig.driver.set_speed(retro(rig, "2.6"))
        assert loop.time() - started == pytest.approx(29.9)
        assert rig.driver.connected and MachineEventKind.LINK_LOST not in rig.events

    play(scenario)


def test_close_disconnects_and_unroutes() -> None:
    async def main() -> None:
        rig = ble_rig(profile=get_profile("generic-ftms"))
        async with rig.driver:
            assert len(rig.server.connections) == 1
        assert rig.server.connections == []
        assert not rig.driver.connected
        assert MachineEventKind.LINK_LOST not in rig.events  # closing is not losing

    run(main(), virtual=True)


# -- the FTMS audit: the strict machine (FTMS 1.0 / FTMP 1.0 as written) -----------------------


def test_the_driver_pairs_when_the_control_point_needs_encryption() -> None:
    async def scenario(rig: BleRig) -> None:
        first, granted = rig.server.writes[:2]
        assert first.att_error == 0x0F  # insufficient encryption: refused, nothing happened
        assert (granted.hex, granted.result) == ("00", ResultCode.SUCCESS)
        await rig.driver.set_incline(percent(2))
        rig.server.disconnect()  # a new link to a bonded machine is encrypted again
        await asyncio.sleep(5)
        assert rig.events == [MachineEventKind.LINK_LOST, MachineEventKind.LINK_RESTORED]
        await rig.driver.set_incline(percent(3))
        assert [w.att_error for w in rig.server.writes] == [0x0F, None, None, None, None]

    play(scenario, kind="strict")


def test_stop_when_already_stopped_is_a_stopped_belt() -> None:
    """FTMS answers Stop on a stopped machine 80 08 04; for a stop that is success, and with
    nothing else known (a strict machine sends no data for a still belt) a zero reading."""

    async def scenario(rig: BleRig) -> None:
        rig.driver.latest = None  # as after a reconnect: nothing known about the belt
        await rig.driver.stop()
        # 04 to the stop, and 04 to the pause that tells "already" from "not while moving"
        assert [(w.hex, w.result) for w in rig.server.writes[-2:]] == [
            ("08 01", ResultCode.OPERATION_FAILED),
            ("08 02", ResultCode.OPERATION_FAILED),
        ]
        latest = rig.driver.latest
        assert latest is not None
        assert latest.speed == kmh(0) and latest.belt is BeltStatus.STOPPED
        assert rig.writes.count("08 01") == 1  # once: nothing to retry

    play(scenario, kind="strict")


def test_stop_answered_already_stopped_keeps_a_moving_reading() -> None:
    """A belt still seen moving is not declared still by the answer: telemetry decides."""

    async def scenario(rig: BleRig) -> None:
        await rig.driver.set_speed(retro(rig, "2.6"))
        await rig.driver.start()
        await asyncio.sleep(8)
        rig.machine.console_stop()  # stopped at the machine; the belt winds down
        await asyncio.sleep(0.3)
        await rig.driver.stop()  # 80 08 04
        latest = rig.driver.latest
        assert latest is not None and latest.speed > kmh(0)
        await asyncio.sleep(3)
        latest = rig.driver.latest
        assert latest is not None and latest.speed == kmh(0)
        assert latest.belt is BeltStatus.STOPPED

    play(scenario, kind="strict")


def test_start_when_started_is_success_and_otherwise_a_refusal() -> None:
    async def scenario(rig: BleRig) -> None:
        await rig.driver.set_speed(retro(rig, "2.6"))
        await rig.driver.start()
        await asyncio.sleep(6)
        await rig.driver.start()  # 80 07 04: the belt runs, as start wants
        assert rig.server.writes[-1].result is ResultCode.OPERATION_FAILED
        await rig.driver.pause()
        await asyncio.sleep(3)
        await rig.driver.pause()  # 80 08 04: already paused, as pause wants
        assert rig.server.writes[-1].result is ResultCode.OPERATION_FAILED
        rig.machine.pull_safety_key()
        await asyncio.sleep(0.1)
        with pytest.raises(CommandRejected) as caught:
            await rig.driver.start()  # 80 07 04 with the key out: a refusal
        assert caught.value.reason is Rejection.FAILED

    play(scenario, kind="strict")


def test_the_machine_announcing_our_own_commands_is_not_the_console() -> None:
    async def scenario(rig: BleRig) -> None:
        await rig.driver.set_speed(retro(rig, "2.6"))
        await rig.driver.start()
        await asyncio.sleep(6)
        await rig.driver.pause()
        await rig.driver.start()
        await rig.driver.stop()
        await asyncio.sleep(3)
        assert rig.events == []  # 04, 02 02, 04, 02 01 were our own, echoed
        rig.machine.console_start()
        await asyncio.sleep(3)
        rig.machine.console_stop()
        await asyncio.sleep(0.1)
        assert rig.events == [
            MachineEventKind.STARTED_AT_CONSOLE,
            MachineEventKind.STOPPED_AT_CONSOLE,
        ]

    play(scenario, kind="strict")


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_split_records_on_the_strict_machine(parts: int) -> None:
    async def scenario(rig: BleRig) -> None:
        rig.server.split_records = parts
        await rig.driver.set_incline(percent(2))
        await rig.driver.set_speed(retro(rig, "2.6"))
        await rig.driver.start()
        await asyncio.sleep(12)
        latest = rig.driver.latest
        assert latest is not None
        assert (latest.speed, latest.incline) == (kmh("4.19"), percent(2))
        assert latest.belt is BeltStatus.RUNNING

    play(scenario, kind="strict")


def test_machine_status_codes_on_the_strict_machine() -> None:
    """02 (stopped, paused at the console), 03 (safety key), 04 (started), FF (control lost)."""

    async def scenario(rig: BleRig) -> None:
        machine = rig.machine
        machine.console_start()
        await asyncio.sleep(1)
        machine.console_pause()
        machine.console_stop()
        machine.pull_safety_key()
        rig.server.revoke_control()
        await asyncio.sleep(0.5)
        assert rig.events == [
            MachineEventKind.STARTED_AT_CONSOLE,
            MachineEventKind.PAUSED_AT_CONSOLE,
            MachineEventKind.STOPPED_AT_CONSOLE,
            MachineEventKind.SAFETY_KEY,
        ]
        assert rig.writes[-1] == "00"  # control requested again after FF, and granted
        assert rig.server.writes[-1].result is ResultCode.SUCCESS

    play(scenario, kind="strict")


def test_pyftms_keeps_its_bleak_client_where_pairing_reaches_it() -> None:
    """Canary: the driver pairs through pyftms's ``_cli`` (``_PyftmsTreadmill.pair_link``)."""
    import inspect

    import pyftms

    source = inspect.getsource(pyftms.FitnessMachine._connect)
    assert "self._cli = await establish_connection(" in source, (
        "pyftms no longer keeps its BleakClient in _cli: fix _PyftmsTreadmill.pair_link"
    )


def test_a_stop_refused_while_the_belt_runs_pauses_it() -> None:
    """The pause-first machine (KingSmith R3) answers Stop 04 while its belt moves: the belt
    reports running on, so the driver pauses it — and the stop returns once that is done."""

    async def scenario(rig: BleRig) -> None:
        await rig.driver.set_speed(retro(rig, "2.6"))
        await rig.driver.start()
        await asyncio.sleep(8)
        await rig.driver.stop()
        assert [(w.hex, w.result) for w in rig.server.writes[-2:]] == [
            ("08 01", ResultCode.OPERATION_FAILED),
            ("08 02", ResultCode.SUCCESS),
        ]
        await asyncio.sleep(3)
        latest = rig.driver.latest
        assert latest is not None and latest.speed == kmh(0)
        assert latest.belt is not BeltStatus.RUNNING
        assert rig.machine.snapshot().speed_kmh == 0
        assert rig.events == []  # 02 02 announced by the machine was our own pause

    play(scenario, kind="pause-first")
