"""Heart rate: the strap's measurement codec (both sides), the simulated heart, and the monitor
reading a simulated strap through bleak, unmodified, on the virtual clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import fitdecode
import pytest
from tcxreader.tcxreader import TCXReader

from retrotread.clinic.heart import (
    HeartMeasurement,
    HeartRateError,
    HeartRateMonitor,
    HeartRateSample,
    ceiling_from_age,
    decode_measurement,
)
from retrotread.clock import LoopClock, run
from retrotread.commands.scan import Found
from retrotread.events import Event, Notice
from retrotread.export import Format, export_session
from retrotread.units import Quantity
from retrotread_sim.belt import SimTreadmill
from retrotread_sim.ftms.radio import Radio
from retrotread_sim.heart import (
    HeartModel,
    HeartRateServer,
    HeartStrap,
    belt_workload,
    encode_measurement,
)

KMH_PER_MPH = 1.609344


def test_a_measurement_decodes_8_and_16_bit_values_contact_energy_and_rr() -> None:
    # Bytes as the GATT Specification Supplement lays them out, written by hand.
    assert decode_measurement(bytes([0x00, 72])) == HeartMeasurement(72, None)
    assert decode_measurement(bytes([0x06, 130])) == HeartMeasurement(130, True)
    assert decode_measurement(bytes([0x04, 130])) == HeartMeasurement(130, False)
    wide = decode_measurement(bytes([0x01, 0x2C, 0x01]))  # uint16: 300
    assert wide.bpm == 300
    full = decode_measurement(bytes([0x1F, 0x8C, 0x00, 0x10, 0x00, 0x00, 0x04, 0x00, 0x02]))
    assert full == HeartMeasurement(140, True, 16, (1.0, 0.5))
    with pytest.raises(HeartRateError, match="too short"):
        decode_measurement(bytes([0x01, 0x50]))
    with pytest.raises(HeartRateError, match="empty"):
        decode_measurement(b"")


def test_the_simulators_codec_and_ours_agree() -> None:
    for bpm in (48, 130, 255, 256, 300):
        for uint16 in (False, True):
            data = encode_measurement(bpm, uint16=uint16, rr_1024=[1024, 512], energy_kj=7)
            assert (data[0] & 1) == (uint16 or bpm > 255)
            assert decode_measurement(data) == HeartMeasurement(bpm, True, 7, (1.0, 0.5))


def test_the_ceiling_from_age_is_a_percentage_of_220_minus_age() -> None:
    assert ceiling_from_age(60, 70) == 112  # 0.7 x 160
    assert ceiling_from_age(35, 85) == 157
    with pytest.raises(ValueError, match="outside 30–100"):
        ceiling_from_age(60, 120)


class FixedWork:
    def __init__(self) -> None:
        self.work: tuple[float, float] | None = None

    def __call__(self) -> tuple[float, float] | None:
        return self.work


def test_the_simulated_heart_rises_with_speed_and_incline_lags_and_recovers_slowly() -> None:
    async def story() -> list[int]:
        work = FixedWork()
        heart = HeartModel(work)
        clock = LoopClock()
        seen = [heart.bpm()]

        async def after(seconds: float) -> int:
            await clock.sleep_until(clock.now() + seconds)
            return heart.bpm()

        work.work = (3.2 * KMH_PER_MPH, 0.0)
        seen.append(await after(10))  # 10 s into a flat walk: on its way, not there
        seen.append(await after(290))  # 5 min: about there
        work.work = (3.2 * KMH_PER_MPH, 8.0)
        seen.append(await after(300))  # the same pace uphill: higher
        work.work = None
        seen.append(await after(30))  # 30 s standing: down, but not yet halfway
        return seen

    rest, early, flat, uphill, recovering = run(story(), virtual=True)
    heart = HeartModel(FixedWork())
    flat_goal = heart.target(3.2 * KMH_PER_MPH, 0.0)
    assert rest == 70
    assert rest < early < rest + (flat_goal - rest) / 2
    assert flat == pytest.approx(flat_goal, abs=1)
    assert uphill > flat + 25
    assert rest + (uphill - rest) / 2 < recovering < uphill


class Host:
    """Stands in for the session where only the reading is under test."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.recoveries: list[str] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def request_recovery(self, speed: Quantity, reason: str) -> None:
        self.recoveries.append(reason)

    def release_recovery(self, reason: str) -> None:
        self.recoveries.append(reason)


Story = Callable[[HeartRateMonitor, HeartStrap, SimTreadmill, LoopClock], Awaitable[None]]


def on_strap(story: Story, *, uint16: bool = False) -> Host:
    """A strap on a walker on a simulated belt, read by the monitor through bleak."""
    host = Host()

    async def main() -> None:
        clock = LoopClock()
        machine = SimTreadmill()
        strap = HeartStrap(HeartRateServer(HeartModel(belt_workload(machine)), uint16=uint16))
        radio = Radio()
        radio.add(strap)
        monitor = HeartRateMonitor(host, strap.address, clock)
        with radio.routed():
            task = asyncio.get_running_loop().create_task(monitor._run())
            try:
                await story(monitor, strap, machine, clock)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await strap.server.close()
                machine.close()

    run(main(), virtual=True)
    return host


async def walk(machine: SimTreadmill, clock: LoopClock, seconds: float) -> None:
    machine.start()
    machine.set_target_speed(3.2 * KMH_PER_MPH)
    machine.set_target_incline(6.0)
    await clock.sleep_until(clock.now() + seconds)


@pytest.mark.parametrize("uint16", [False, True], ids=["8-bit", "16-bit"])
def test_the_monitor_reads_the_strap_each_second_and_the_rate_follows_the_belt(
    uint16: bool,
) -> None:
    async def story(
        monitor: HeartRateMonitor, strap: HeartStrap, machine: SimTreadmill, clock: LoopClock
    ) -> None:
        await walk(machine, clock, 120)
        assert monitor.connected
        assert all((data[0] & 1) == uint16 for data in strap.server.sent)

    host = on_strap(story, uint16=uint16)
    samples = [e for e in host.events if isinstance(e, HeartRateSample)]
    assert 118 <= len(samples) <= 120  # one a second
    rates = [s.bpm for s in samples if s.bpm is not None]
    assert rates[0] <= 75 and rates[-1] > 110
    assert rates == sorted(rates)  # rising with the walk, no jumps back
    assert not [e for e in host.events if isinstance(e, Notice)]


def test_a_lost_strap_is_a_notice_and_the_monitor_finds_it_again() -> None:
    async def story(
        monitor: HeartRateMonitor, strap: HeartStrap, machine: SimTreadmill, clock: LoopClock
    ) -> None:
        await walk(machine, clock, 20)
        strap.take_off()
        await clock.sleep_until(clock.now() + 20)
        assert not monitor.connected and monitor.current_bpm() is None
        strap.put_on()
        await clock.sleep_until(clock.now() + 20)
        assert monitor.connected and monitor.current_bpm() is not None

    host = on_strap(story)
    notices = [e.message for e in host.events if isinstance(e, Notice)]
    assert len(notices) == 2
    assert "lost: its link dropped; the session goes on without heart rate" in notices[0]
    assert "is back: " in notices[1]
    gap = [e.bpm for e in host.events if isinstance(e, HeartRateSample)][20:35]
    assert None in gap


# -- end to end: the ceiling slows the belt, with a spoken cue -----------------------------------

CEILING_PROGRAM = """
name = "uphill-retro"
description = "one long backward walk uphill, at the top of the band"
[defaults]
start_facing = "rear"
[[blocks]]
kind = "retro"
name = "Uphill retro"
duration = "3m"
speed = 3.2
incline = 6.0
"""


def test_a_heart_rate_above_the_ceiling_slows_the_belt_with_a_spoken_cue(tmp_path: Path) -> None:
    """The simulated walker's heart rises on a steep backward walk; above the client's ceiling
    the belt slows to the recovery speed (held in the block's band by the governor), the
    walker hears why, the session goes on, and each second's rate is recorded."""
    from retrotread.clinic import records
    from retrotread.clinic.limits import ClientLimits
    from retrotread.drivers.sim import SimDriver
    from retrotread.drivers.url import DeviceUrl
    from retrotread.profiles import get_profile
    from retrotread.program import parse_program
    from retrotread.recording import Recording
    from retrotread.session import Session
    from retrotread.speech.announcer import CueCaller
    from retrotread.store import Store

    limits = ClientLimits(hr_ceiling_bpm=100, recovery_mph=2.0)
    store = Store.open(tmp_path / "records.sqlite3")
    client = store.add_client("Ana")
    records.set_limits(store, client, limits)
    calls: list[str] = []
    belt: list[tuple[float, float, int | None]] = []  # (time, belt mph, bpm)

    async def main() -> None:
        clock = LoopClock()
        driver = SimDriver(DeviceUrl.parse("sim://"), get_profile("simulator"), clock)

        def workload() -> tuple[float, float] | None:
            machine = driver.machine
            if machine is None:
                return None
            snapshot = machine.snapshot()
            return snapshot.speed_kmh, snapshot.incline_pct

        strap = HeartStrap(HeartRateServer(HeartModel(workload)))
        radio = Radio()
        radio.add(strap)
        program = parse_program(CEILING_PROGRAM, "<uphill>")
        session = Session(program, driver, clock, unattended=True, caps=limits.caps("Ana"))
        recording = Recording(store, client)
        recording.attach(session)
        monitor = HeartRateMonitor(
            session, strap.address, clock, limits.ceiling, limits.recovery_speed
        )
        session.subscribe(monitor)
        caller = CueCaller()

        def listen(event: Event) -> None:
            call = caller(event)
            if call is not None:
                calls.append(call.text)
            if isinstance(event, HeartRateSample) and driver.machine is not None:
                mph = driver.machine.snapshot().speed_kmh / KMH_PER_MPH
                belt.append((event.at, mph, event.bpm))

        session.subscribe(listen)
        with radio.routed():
            try:
                await session.run()
            finally:
                await monitor.close()
                await strap.server.close()
        assert recording.recorder is not None
        recording.recorder.finish()

    run(main(), virtual=True)
    over = [i for i, (_, _, bpm) in enumerate(belt) if bpm is not None and bpm > 100]
    assert over, "the simulated heart never passed the ceiling"
    slowed_at = over[0] + 2  # two seconds above it, then the belt slows
    before = [mph for _, mph, _ in belt[over[0] - 5 : over[0]]]
    after = [mph for _, mph, _ in belt[slowed_at + 5 : slowed_at + 30]]
    assert min(before) == pytest.approx(3.2, abs=0.02)
    assert max(after) == pytest.approx(2.6, abs=0.02)  # the bottom of the retro band
    spoken = [c for c in calls if c.startswith("Heart rate")]
    assert spoken and spoken[0].endswith("above 100. Slowing down: keep walking, breathe.")
    with store:
        (record,) = store.sessions(client)
        assert record.status.value == "completed"  # a slowed walk, not a stop
        recorded = records.heart_rate(store, record.id)
        assert 170 <= len(recorded) <= 181 and max(b for _, b in recorded) > 100
        notices = [e.detail for e in store.events(record.id) if e.kind == "notice"]
        assert any("above 100" in n for n in notices)
        # the exports carry it: TCX trackpoints and FIT records (read by independent readers)
        tcx = export_session(store, record.id, Format.TCX, tmp_path / "s.tcx")
        fit = export_session(store, record.id, Format.FIT, tmp_path / "s.fit")
    points = TCXReader().read(str(tcx), only_gps=False).trackpoints
    with_hr = [p.hr_value for p in points if p.hr_value is not None]
    assert len(with_hr) >= len(points) - 5 and max(with_hr) > 100
    with fitdecode.FitReader(str(fit), check_crc=fitdecode.CrcCheck.RAISE) as reader:
        beats = [
            frame.get_value("heart_rate")
            for frame in reader
            if isinstance(frame, fitdecode.FitDataMessage)
            and frame.name == "record"
            and frame.has_field("heart_rate")
        ]
    assert len(beats) >= len(points) - 5 and max(beats) > 100


def test_scan_finds_the_heart_rate_strap_beside_the_treadmill() -> None:
    from retrotread.commands.scan import HEART_STRAP, discover, scan_bluetooth, scan_lines
    from retrotread_sim.ftms import FtmsServer, SimPeripheral

    async def listen() -> tuple[list[Found], list[Found]]:
        radio = Radio()
        machine = SimTreadmill()
        radio.add(SimPeripheral(FtmsServer(machine)))
        radio.add(HeartStrap(HeartRateServer(HeartModel(belt_workload(machine)))))
        with radio.routed():
            return await scan_bluetooth(1.0), await discover(1.0)

    heard, offered = run(listen(), virtual=True)
    straps = [f for f in heard if f.kind == HEART_STRAP]
    assert [(f.name, f.address) for f in straps] == [("HRM-Sim 0D01", "C0:FF:EE:18:0D:01")]
    assert all(f.kind != HEART_STRAP for f in offered)  # the device picker offers treadmills
    lines = scan_lines(heard, 1.0, show_all=False)
    assert any(line.split()[:2] == ["HRM-Sim", "0D01"] for line in lines)
    assert lines[-1] == (
        "Give a client a strap with: retrotread limits --client NAME --strap ADDRESS"
    )
    assert any("RetroTread SIM-1" in line for line in lines)  # the treadmill still listed
