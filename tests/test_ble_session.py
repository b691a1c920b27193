"""Programs played over BLE: session, governor, ``ble://`` driver, pyftms, bleak and
bleak-retry-connector, against the simulated FTMS treadmill, on the virtual clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from retrotread.cli import main
from retrotread.clock import LoopClock, run
from retrotread.drivers.base import Treadmill
from retrotread.drivers.registry import open_treadmill
from retrotread.drivers.sim_ble import SimBleDriver
from retrotread.events import (
    CommandConfirmed,
    CommandUnconfirmed,
    Event,
    Fault,
    Paused,
    Resumed,
)
from retrotread.program import find_program
from retrotread.program.model import Program
from retrotread.scheduler import EngineState
from retrotread.session import Outcome, Session, SessionSummary
from retrotread_sim import MachineSpec
from retrotread_sim.ftms import FtmsServer
from tests.ble_rig import ble_rig
from tests.helpers import retro_program


def over_ble(
    program: Program,
    treadmill: Treadmill,
    during: Callable[[Session], Awaitable[None]] | None = None,
    after: Callable[[], None] | None = None,
) -> tuple[SessionSummary, list[Event]]:
    """Play ``program`` on ``treadmill``, unattended; ``during`` runs alongside (faults, a
    person), ``after`` once the session ended (still on the loop's clock)."""

    async def play() -> tuple[SessionSummary, list[Event]]:
        clock = LoopClock()
        session = Session(program, treadmill, clock, unattended=True)
        events: list[Event] = []
        session.subscribe(events.append)
        helper = asyncio.create_task(during(session)) if during else None
        summary = await session.run()
        if helper is not None:
            helper.cancel()
        if after is not None:
            after()
        return summary, events

    return run(play(), virtual=True)


def sim_over_ble(query: str = "") -> SimBleDriver:
    driver = open_treadmill("sim://?link=ble" + (f"&{query}" if query else ""))
    assert isinstance(driver, SimBleDriver)
    return driver


def server_of(driver: SimBleDriver) -> FtmsServer:
    assert driver.ble is not None
    return driver.ble.server


def ends_with_a_stop(driver: SimBleDriver) -> bool:
    """The last procedure was a stop: ``08 01`` — or, answered "already stopped" (04), that
    stop and the ``08 02`` that settles it."""
    *before, last = server_of(driver).writes
    if last.hex == "08 01":
        return True
    return last.hex == "08 02" and before[-1].hex == "08 01" and before[-1].result == 4


def writes_of(driver: SimBleDriver) -> list[str]:
    return [w.hex for w in server_of(driver).writes]


async def at(seconds: float) -> None:
    """Sleep until this many seconds after the session started (virtual clock)."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, seconds - loop.time()))


PERSONALITIES = ("lenient", "strict", "pause-first")


@pytest.mark.parametrize("kind", PERSONALITIES)
def test_a_built_in_program_over_ble_ends_with_the_belt_stopped(kind: str) -> None:
    driver = sim_over_ble(f"personality={kind}")
    machine_stopped: list[bool] = []

    def check_machine() -> None:
        assert driver.machine is not None
        machine_stopped.append(driver.machine.belt_stopped)

    summary, events = over_ble(find_program("first-week"), driver, after=check_machine)
    assert summary.outcome is Outcome.COMPLETED
    assert machine_stopped == [True]
    assert summary.belt_stopped
    writes = writes_of(driver)
    assert writes[0] == "00"
    assert ends_with_a_stop(driver)
    assert "03 14 00" in writes  # 2.0 % incline
    confirmed = [e for e in events if isinstance(e, CommandConfirmed)]
    assert any(e.command == "set speed" for e in confirmed)  # indication + telemetry
    assert not [e for e in events if isinstance(e, CommandUnconfirmed | Fault)]
    answered = server_of(driver).writes
    if kind == "strict":  # the first write meets the encryption requirement: pair, again
        assert answered[0].att_error == 0x0F
        answered = answered[1:]
    stops = [(w.hex, w.result) for w in answered if w.hex.startswith("08")]
    if kind == "pause-first":
        # a stop is refused while the belt runs, so the belt is paused first; still and
        # paused, it is asked to stop again, and takes it
        assert stops == [("08 01", 4), ("08 02", 1), ("08 01", 1)]
    else:
        assert stops == [("08 01", 1)]  # one stop ends the program: nothing asked twice
    answered = [w for w in answered if not w.hex.startswith("08")]
    assert all(w.result is not None and w.result == 1 for w in answered)


def test_retro_band_edges_go_out_as_the_intended_bytes() -> None:
    driver = sim_over_ble()
    program = retro_program([20, 20, 20, 20])  # 2.8, 3.0, 2.6, 3.2 mph
    summary, _ = over_ble(program, driver)
    assert summary.outcome is Outcome.COMPLETED
    speeds = [w for w in writes_of(driver) if w.startswith("02")]
    # ramped from a standstill in steps of at most 1 mph, then the four blocks
    assert speeds[-3:] == ["02 E3 01", "02 A3 01", "02 02 02"]  # 3.0, 2.6, 3.2 mph


@pytest.mark.parametrize("kind", PERSONALITIES)
def test_safety_key_pauses_the_program_and_nothing_is_sent_until_a_person_resumes(
    kind: str,
) -> None:
    driver = sim_over_ble(f"personality={kind}")
    sent_while_held: list[str] = []

    async def key(session: Session) -> None:
        await at(25)
        machine = driver.machine
        assert machine is not None
        machine.pull_safety_key()
        await asyncio.sleep(1)
        assert session.state.engine is EngineState.PAUSED
        before = len(writes_of(driver))
        await asyncio.sleep(30)
        sent_while_held.extend(writes_of(driver)[before:])
        machine.insert_safety_key()
        machine.console_start()  # the person's go, at the console

    summary, events = over_ble(retro_program([60, 60]), driver, key)
    assert sent_while_held == []
    assert summary.outcome is Outcome.COMPLETED
    assert any(isinstance(e, Paused) and "safety key" in e.reason for e in events)
    assert any(isinstance(e, Resumed) for e in events)
    assert ends_with_a_stop(driver)


@pytest.mark.parametrize("kind", PERSONALITIES)
def test_disconnect_mid_block_pauses_reconnects_and_finishes(kind: str) -> None:
    """Lenient: the belt ran on while the link was down. Strict: the machine stopped it,
    and the stop after the reconnect is answered "already stopped"."""
    driver = sim_over_ble(f"personality={kind}")
    paused_while_down: list[bool] = []

    async def drop(session: Session) -> None:
        await at(30)
        assert driver.ble is not None
        driver.ble.peripheral.in_range = False
        server_of(driver).disconnect()
        await asyncio.sleep(3)
        paused_while_down.append(session.state.engine is EngineState.PAUSED)
        driver.ble.peripheral.in_range = True

    summary, events = over_ble(retro_program([60, 60]), driver, drop)
    assert paused_while_down == [True]
    assert summary.outcome is Outcome.COMPLETED
    assert summary.belt_stopped
    after = [w.hex for w in server_of(driver).writes if w.time > 30]  # on the new link
    assert after[:2] == ["00", "08 01"]  # restored: control, then the belt is stopped
    stops = [w for w in after[: after.index("07")] if w.startswith("08")]
    if kind == "pause-first":  # refused while the belt ran on: paused, then stopped still
        assert stops == ["08 01", "08 02", "08 01"]
    else:
        assert stops.count("08 01") == 1  # one stop, whatever its answer
    assert "07" in after[2:]  # unattended: restarted once the belt was confirmed stopped
    assert ends_with_a_stop(driver)
    assert any(isinstance(e, Fault) and e.kind == "link-lost" for e in events)


def test_an_attended_program_stays_held_after_reconnect_until_resumed() -> None:
    driver = sim_over_ble()
    held: list[bool] = []

    async def drop_then_resume(session: Session) -> None:
        await at(30)
        server_of(driver).disconnect()
        await asyncio.sleep(10)
        held.append(session.state.engine is EngineState.PAUSED and driver.connected)
        session.resume()  # a person's go

    async def go() -> bool:
        return True

    async def play() -> SessionSummary:
        session = Session(retro_program([60, 60]), driver, LoopClock(), go=go)
        helper = asyncio.create_task(drop_then_resume(session))
        summary = await session.run()
        helper.cancel()
        return summary

    summary = run(play(), virtual=True)
    assert held == [True]
    assert summary.outcome is Outcome.COMPLETED
    assert writes_of(driver)[-1] == "08 01"


def test_control_lost_and_refused_pauses_the_program() -> None:
    driver = sim_over_ble()
    sent_while_held: list[str] = []

    async def take_control(session: Session) -> None:
        await at(30)
        server = server_of(driver)
        server.deny_control()
        server.revoke_control()
        await asyncio.sleep(1)
        assert session.state.engine is EngineState.PAUSED
        before = len(writes_of(driver))
        await asyncio.sleep(20)
        sent_while_held.extend(writes_of(driver)[before:])
        server.deny_control(False)
        session.resume()

    summary, events = over_ble(retro_program([60, 60]), driver, take_control)
    assert sent_while_held == []
    assert any(isinstance(e, Fault) and e.kind == "control-lost" for e in events)
    assert summary.outcome is Outcome.COMPLETED
    assert writes_of(driver)[-1] == "08 01"


def test_start_before_speed_quirk_orders_the_commands() -> None:
    async def play() -> tuple[SessionSummary, list[str]]:
        rig = ble_rig("start_before_speed=1", spec=MachineSpec(speed_needs_running=True))
        session = Session(retro_program([20]), rig.driver, LoopClock(), unattended=True)
        summary = await session.run()
        return summary, rig.writes

    summary, writes = run(play(), virtual=True)
    assert summary.outcome is Outcome.COMPLETED
    assert writes[:2] == ["00", "07"]  # start before the first speed
    assert writes[-1] == "08 01"


def test_a_faulted_plan_over_ble_holds_and_recovers() -> None:
    driver = sim_over_ble("faults=reject:set-speed=invalid-parameter@30,split")
    summary, events = over_ble(retro_program([60, 60]), driver)
    assert summary.outcome is Outcome.COMPLETED
    rejected = [e for e in events if isinstance(e, CommandUnconfirmed)]
    assert rejected and "invalid parameter" in rejected[0].reason
    assert "19.3 km/h" in rejected[0].reason  # names the machine's range
    assert server_of(driver).split_records == 2


def test_cli_rehearses_over_ble(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "warm-up", "--device", "sim://?link=ble", "--rehearse", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert "over BLE" in out
    assert "belt      stopped" in out


def test_cli_scan_finds_the_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--simulator", "--timeout", "2"]) == 0
    out = capsys.readouterr().out
    assert "RetroTread SIM-1  C0:FF:EE:18:26:01  -58" in out
    assert "ble://C0:FF:EE:18:26:01" in out


def test_cli_scan_without_bluetooth_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from retrotread.drivers import ftms_ble
    from retrotread_sim.ftms import AdapterState, Radio

    radio = Radio()
    radio.adapter = AdapterState.OFF
    with radio.routed():  # this machine's "Bluetooth": an adapter that is switched off
        code = main(["scan", "--timeout", "1"])
    assert code == 4
    assert "Bluetooth is turned off" in capsys.readouterr().err
    assert ftms_ble.scan  # the command goes through the driver's scan
