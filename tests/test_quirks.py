"""Real treadmills' quirks, end to end: each catalogue profile (devices/*.toml) plays a
program on the simulator playing the machine it describes, through the real BLE path
(session, governor, ``ble://`` driver, pyftms, bleak, over the simulator's bleak backend), on
the virtual clock: the belt in the retro band, the incline right, the belt stopped at the end.
A profile whose quirk does not match the machine fails the way a user would see it."""

from __future__ import annotations

import asyncio
import tomllib
from dataclasses import replace
from importlib import resources

import pytest

from retrotread.clock import LoopClock, run
from retrotread.drivers.registry import open_treadmill
from retrotread.drivers.sim_ble import SimBleDriver
from retrotread.errors import CommandRejected, CommandTimeout, ProfileError, Rejection
from retrotread.events import CommandUnconfirmed, Event, Fault, FaultKind
from retrotread.profiles import bundled_profiles, parse_profile
from retrotread.program.model import BlockKind, Program
from retrotread.session import UNATTENDED_HOLD_LIMIT_S, Outcome, Session, SessionSummary
from retrotread.units import kmh, mph, percent
from retrotread_sim.belt import KMH_PER_MPH, BeltState, Snapshot
from retrotread_sim.ftms.server import MERACH_UNLOCK
from tests.helpers import block, retro_program

#: Each quirk of issue 17 with the catalogue profile that has it.
QUIRK_PROFILES = {
    "speed_field_mph": "horizon-jftm-t202",
    "telemetry_speed_mph (and speed_field_mph)": "bowflex-t9",
    "start_each_command": "technogym-run",
    "request_control_again_s": "wellfit-tm",
    "start_keepalive_s": "xterra-trx3500",
    "incline_step 1 %": "fitshow-sw",
    "ranges_from_profile (decline)": "sole-tt8",
    "incline_table": "iconcept-t01",
    "incline_unreported": "schwinn-810",
    "ranges_from_profile (1 km/h floor)": "mobvoi-tmp",
    "zero_speed_debounce_s": "merach",
    "start_handshake": "toputure-tp1",
    "silence_means_stopped_s": "bowflex-t216",
    "min_command_interval_s": "walkingpad-spaced",
    "unlock_write (and zero_speed_debounce_s)": "merach",
    "unlock_write (and request_control_again_s)": "ypoo-mini-pro",
    "elapsed_frozen_means_stopped_s (and the 1 km/h floor)": "mobvoi-tmp",
}

RETRO_BAND_MPH = (2.6, 3.2)
TOLERANCE_MPH = 0.15


def sim_over_ble(query: str) -> SimBleDriver:
    driver = open_treadmill(f"sim://?link=ble&{query}")
    assert isinstance(driver, SimBleDriver)
    return driver


def play(
    program: Program, driver: SimBleDriver, *, hold_limit_s: float = UNATTENDED_HOLD_LIMIT_S
) -> tuple[SessionSummary, list[Event], list[float], Snapshot]:
    """The program, unattended; returns the summary, the events, the belt's speed (mph)
    sampled every second while the program runs, and the machine after the session."""
    samples: list[float] = []

    async def sample() -> None:
        while True:
            await asyncio.sleep(1.0)
            if driver.machine is not None:
                samples.append(driver.machine.snapshot().speed_kmh / KMH_PER_MPH)

    async def session() -> tuple[SessionSummary, list[Event], list[float], Snapshot]:
        events: list[Event] = []
        runner = Session(program, driver, LoopClock(), unattended=True, hold_limit_s=hold_limit_s)
        runner.subscribe(events.append)
        sampler = asyncio.create_task(sample())
        try:
            summary = await runner.run()
        finally:
            sampler.cancel()
        assert driver.machine is not None
        return summary, events, samples, driver.machine.snapshot()

    return run(session(), virtual=True)


@pytest.mark.parametrize("quirk", list(QUIRK_PROFILES))
def test_a_program_plays_on_the_machine_its_profile_describes(quirk: str) -> None:
    profile = QUIRK_PROFILES[quirk]
    program = retro_program([40, 40])  # 2.8 then 3.0 mph, 2 % incline
    summary, events, samples, machine = play(program, sim_over_ble(f"profile={profile}"))
    problems = [e for e in events if isinstance(e, CommandUnconfirmed | Fault)]
    assert (summary.outcome, problems) == (Outcome.COMPLETED, [])
    low, high = RETRO_BAND_MPH
    # Never above the band; and most of the program in it (ramps and the stop pass below).
    assert max(samples) <= high + TOLERANCE_MPH
    in_band = [s for s in samples if low - TOLERANCE_MPH <= s <= high + TOLERANCE_MPH]
    assert len(in_band) >= 60
    assert abs(machine.incline_pct - 2.0) < 1e-6
    assert (machine.state, machine.speed_kmh, summary.belt_stopped) == (
        BeltState.STOPPED,
        0.0,
        True,
    )


def first_problem(events: list[Event]) -> str:
    """What the user sees first: the first fault, else the first unconfirmed command."""
    faults = [e for e in events if isinstance(e, Fault)]
    if faults:
        return f"fault: {faults[0].kind}"
    unconfirmed = [e for e in events if isinstance(e, CommandUnconfirmed)]
    return f"unconfirmed: {unconfirmed[0].command}" if unconfirmed else "none"


#: The simulator's quirk, and what a user sees when the profile (generic FTMS) lacks it.
MISMATCHES = {
    "speed-field-mph": "fault: overspeed",
    "data-speed-mph": "unconfirmed: set speed",
    "start-each-command": "unconfirmed: set speed",
    "start-keepalive": "fault: stopped-at-console",
    "start-handshake": "fault: stopped-at-console",
    "quiet-when-still": "fault: stop-not-confirmed",
    "command-spacing": "fault: telemetry-stale",
}


@pytest.mark.parametrize("quirk", list(MISMATCHES))
def test_a_profile_without_the_machines_quirk_fails_visibly(quirk: str) -> None:
    program = retro_program([40, 40])
    _, events, _, _ = play(program, sim_over_ble(f"profile=generic-ftms&quirks={quirk}"))
    assert first_problem(events) == MISMATCHES[quirk]


def test_a_machine_that_loses_the_first_request_for_control_never_answers_it() -> None:
    driver = sim_over_ble("profile=generic-ftms&quirks=request-control-twice")
    with pytest.raises(CommandTimeout, match="request control"):
        play(retro_program([40]), driver)


def test_an_incline_table_machine_driven_in_tenths_of_a_percent_stays_flat() -> None:
    _, _, _, machine = play(retro_program([40]), sim_over_ble("quirks=incline-table"))
    assert machine.incline_pct == 0.0  # 2 % sent as 20, which its table reads as 0 %


def test_the_catalogue_names_models_patterns_and_sources() -> None:
    real = [p for p in bundled_profiles() if p.models]
    assert len(real) >= 15
    assert all(p.sources and p.protocol == "ftms" for p in real)
    assert sum(bool(p.match) for p in real) >= 15


def test_a_read_only_machine_connects_reports_and_says_to_use_its_console() -> None:
    driver = sim_over_ble("quirks=read-only")

    async def try_it() -> tuple[bool, Rejection, bool]:
        async with driver:
            await asyncio.sleep(2)
            with pytest.raises(CommandRejected) as refused:
                await driver.set_speed(mph("2.8"))
            return driver.capabilities.can_control, refused.value.reason, driver.latest is not None

    assert run(try_it(), virtual=True) == (False, Rejection.READ_ONLY, True)


# -- a vendor unlock before control (Merach, YPOO) ---------------------------------------------


def test_the_unlock_reaches_the_vendor_characteristic_before_request_control() -> None:
    driver = sim_over_ble("profile=merach")
    summary, _, _, _ = play(retro_program([20]), driver)
    assert driver.ble is not None
    server = driver.ble.server
    first_request = server.writes[0]
    assert [(uuid, data) for _, uuid, data in server.vendor_writes] == [MERACH_UNLOCK]
    unlocked_at = server.vendor_writes[0][0]
    # the 200 ms qz leaves after it, then Request Control (00)
    assert (first_request.data, first_request.time - unlocked_at) == (b"\x00", pytest.approx(0.2))
    assert summary.outcome is Outcome.COMPLETED


def test_a_machine_that_wants_an_unlock_refuses_control_without_it() -> None:
    driver = sim_over_ble("profile=generic-ftms&quirks=vendor-unlock")
    with pytest.raises(CommandRejected, match=r"did not grant control.*unlock_write") as refused:
        play(retro_program([40]), driver)
    assert refused.value.reason is Rejection.NOT_PERMITTED


# -- elapsed time frozen: nobody on the belt (Mobvoi TMP) --------------------------------------

#: The walker steps off at 30 s (on the simulator's clock) for 40 s.
STEPS_OFF = "faults=off-belt@30+40"


def test_elapsed_time_frozen_holds_the_session_and_stops_the_belt() -> None:
    program = retro_program([40, 40])
    summary, events, samples, machine = play(
        program, sim_over_ble(f"profile=mobvoi-tmp&{STEPS_OFF}"), hold_limit_s=20
    )
    assert first_problem(events) == "fault: belt-stopped"
    # Frozen 2 s, read as a still belt, the session's 2 s grace, then its stop (3 km/h/s).
    assert samples[28] > 2.5 and samples[40] == 0.0
    assert (summary.outcome, summary.belt_stopped, machine.state) == (
        Outcome.FAULT,
        True,
        BeltState.STOPPED,
    )


def test_elapsed_time_frozen_goes_unnoticed_by_the_generic_profile() -> None:
    program = retro_program([40, 40])
    query = f"profile=generic-ftms&quirks=elapsed-walking-only&{STEPS_OFF}"
    summary, events, samples, _ = play(program, sim_over_ble(query))
    # The belt ran on with nobody on it, and the program played to its end.
    assert (summary.outcome, first_problem(events), min(samples[31:70])) == (
        Outcome.COMPLETED,
        "none",
        pytest.approx(2.8, abs=TOLERANCE_MPH),
    )


# -- a 1 km/h floor: lower requests dropped (Mobvoi TMP) ---------------------------------------


def slow_walk_program() -> Program:
    """A walk at 2 mph, then one at 0.5 mph (0.8 km/h): below the Mobvoi's 1 km/h."""
    return Program(
        name="slow",
        description="",
        items=(
            block(BlockKind.WARM_UP, 40, "2.0", name="brisk"),
            block(BlockKind.COOL_DOWN, 40, "0.5", name="stroll"),
        ),
    )


def test_a_block_below_the_machines_floor_is_refused_before_the_belt_moves() -> None:
    driver = sim_over_ble("profile=mobvoi-tmp")
    summary, events, _, machine = play(slow_walk_program(), driver)
    faults = [e for e in events if isinstance(e, Fault)]
    assert (summary.outcome, faults[0].kind) == (Outcome.FAULT, FaultKind.SAFETY)
    assert "block 'stroll': 0.5 mph is below what this machine runs (0.62 mph)" in faults[0].message
    assert driver.ble is not None
    # Connected (its ranges are read): Request Control, and the session's closing Stop; no
    # Start, no speed.
    assert (driver.ble.server.control_writes, machine.distance_m) == ([b"\x00", b"\x08\x01"], 0.0)


def test_a_machine_that_drops_slow_speeds_leaves_them_unconfirmed_with_the_generic_profile() -> (
    None
):
    _, events, _, _ = play(
        slow_walk_program(), sim_over_ble("profile=generic-ftms&quirks=drops-slow-speeds")
    )
    assert first_problem(events) == "unconfirmed: set speed"


# -- incline: steps and a machine that never reports it ----------------------------------------


def at_incline(program: Program, incline: str) -> Program:
    return replace(
        program, items=tuple(replace(b, incline=percent(incline)) for b in program.items)
    )


#: 1.5 % on a machine that takes whole percent: the profile's grid, or the machine's refusal.
INCLINE_STEP_CASES = {
    "fitshow-sw": ("none", 1.0),  # incline_step 1: sent as 1 % (quantized, as on the grid)
    "generic-ftms&quirks=incline-step-1": ("unconfirmed: set incline", 0.0),  # answered 03
}


@pytest.mark.parametrize("query", list(INCLINE_STEP_CASES))
def test_an_off_grid_incline_is_quantized_by_the_profile_or_refused_by_the_machine(
    query: str,
) -> None:
    _, events, _, machine = play(
        at_incline(retro_program([40]), "1.5"), sim_over_ble(f"profile={query}")
    )
    assert (first_problem(events), machine.incline_pct) == INCLINE_STEP_CASES[query]


#: What the driver reads as the incline after setting 2 %: (incline, marked as an echo).
INCLINE_READINGS = {
    "profile=schwinn-810": (2, True),  # incline_unreported: the set value, marked unconfirmed
    "profile=generic-ftms&quirks=no-incline-data": (2, True),  # no field: the same echo
    "profile=generic-ftms": (2, False),  # a machine that reports it: a reading
}


@pytest.mark.parametrize("query", list(INCLINE_READINGS))
def test_an_incline_the_machine_does_not_report_is_echoed_and_marked(query: str) -> None:
    driver = sim_over_ble(query)

    async def read_incline() -> tuple[float, bool]:
        async with driver:
            await driver.set_speed(kmh("4.5"))  # on the machine's 0.01 km/h grid
            await driver.start()  # a still belt may send nothing (pyftms drops zero records)
            await driver.set_incline(percent(2))
            await asyncio.sleep(6)  # the incline moves 0.5 % a second
            await driver.stop()
            latest = driver.latest
            assert latest is not None
            return float(latest.incline.value), latest.incline_echoed

    assert run(read_incline(), virtual=True) == INCLINE_READINGS[query]


def test_an_unlock_write_that_is_not_hex_is_a_profile_error_naming_its_file() -> None:
    data = tomllib.loads(resources.files("retrotread.devices").joinpath("merach.toml").read_text())
    data["quirks"]["unlock_write"]["value"] = "aa zz"
    with pytest.raises(ProfileError, match=r"my\.toml: unlock_write\.value 'aa zz' is not hex"):
        parse_profile(data, "my.toml")
