"""``retrotread probe``: against every simulator personality, the profile it suggests, loaded
back from the file it was written to, plays a program to the end with the belt stopped.

FTMS personalities run over the simulator's bleak backend on the virtual clock; the CSAFE and
Trackmaster consoles over real ptys.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from retrotread.clock import LoopClock, run
from retrotread.commands.probe import Observed, probe, probe_treadmill, suggested_profile
from retrotread.drivers.base import Treadmill
from retrotread.drivers.ftms_ble import FtmsBleDriver
from retrotread.drivers.registry import open_treadmill
from retrotread.drivers.url import DeviceUrl
from retrotread.profiles import Profile, parse_profile
from retrotread.program import find_program
from retrotread.session import Outcome, Session, SessionSummary
from retrotread_sim import SimTreadmill
from retrotread_sim.ftms import FtmsServer, Radio, SimPeripheral, personality
from tests.serial_support import TWO_SPEEDS, SimFactory, serve, write_program

__all__ = ["serve"]  # the fixture, used by name

PLAYED = (Outcome.COMPLETED, Outcome.UNCONFIRMED)


def load_back(text: str, folder: Path) -> Profile:
    path = folder / "probed.toml"
    path.write_text(text, encoding="utf-8")
    return parse_profile(tomllib.loads(path.read_text(encoding="utf-8")), str(path))


async def agree(declared: dict[str, Any]) -> bool:
    assert declared  # what the machine declares is read before anyone is asked
    return True


# -- FTMS ------------------------------------------------------------------------------------


def ftms_driver(kind: str, profile: Profile | None = None) -> FtmsBleDriver:
    radio = Radio()
    radio.add(SimPeripheral(FtmsServer(SimTreadmill(), personality(kind)), name="Walker 7"))
    return FtmsBleDriver.from_url(
        DeviceUrl.parse("ble://?name=Walker 7"),
        clock=LoopClock(),
        profile=profile,
        routing=radio.routed,
    )


async def play(treadmill: Treadmill, folder: Path, *, allow_blind: bool = False) -> SessionSummary:
    program = find_program(str(write_program(folder, TWO_SPEEDS)))
    session = Session(program, treadmill, treadmill.clock, unattended=True, allow_blind=allow_blind)
    return await session.run()


@pytest.mark.parametrize("kind", ["strict", "lenient", "pause-first"])
def test_probe_an_ftms_personality_and_play_on_its_profile(kind: str, tmp_path: Path) -> None:
    async def probed() -> tuple[Observed, str]:
        driver = ftms_driver(kind)
        observed = await probe_treadmill(driver, agree, block_s=6)
        return observed, suggested_profile(driver, observed, "ble://?name=Walker 7")

    observed, text = run(probed(), virtual=True)
    assert observed.exercised and observed.summary is not None
    assert observed.summary.belt_stopped
    assert observed.declared["device information"]["serial_number"] == "SIM-0001"
    assert "target_speed" in observed.declared["target settings"]
    assert observed.reports_speed and observed.reports_incline
    assert observed.speed_ratio is not None and abs(observed.speed_ratio - 1) < 0.05
    assert {"start", "set speed", "stop"} <= set(observed.answers)
    assert '"Walker 7"' in text and 'protocol = "ftms"' in text
    assert "speed_field_mph = false" in text

    loaded = load_back(text, tmp_path)
    assert loaded.match == ("Walker 7",)
    assert str(loaded.speed.increment) == "0.01 km/h" and str(loaded.speed.max) == "19.3 km/h"

    summary = run(play(ftms_driver(kind, loaded), tmp_path), virtual=True)
    assert summary.outcome is Outcome.COMPLETED and summary.belt_stopped


# -- serial consoles -------------------------------------------------------------------------


SERIAL = [
    pytest.param("csafe", (), "protocol=csafe", id="csafe-concept2"),
    pytest.param("csafe", ("--personality", "matrix"), "protocol=csafe", id="csafe-matrix"),
    pytest.param("trackmaster", (), "protocol=trackmaster", id="trackmaster"),
    pytest.param(
        "trackmaster",
        ("--personality", "trackmaster-query"),
        "protocol=trackmaster",
        id="trackmaster-query",
    ),
]


@pytest.mark.parametrize(("protocol", "options", "query"), SERIAL)
def test_probe_a_serial_console_and_play_on_its_profile(
    protocol: str, options: tuple[str, ...], query: str, serve: SimFactory, tmp_path: Path
) -> None:
    sim = serve(protocol, *options)
    url = f"serial://{sim.address}?{query}"

    async def probed() -> tuple[Observed, str]:
        treadmill = open_treadmill(url, profile=_probe_base(url))
        observed = await probe_treadmill(treadmill, agree, block_s=4)
        return observed, suggested_profile(treadmill, observed, url)

    observed, text = run(probed())
    assert observed.exercised and observed.summary is not None
    assert observed.summary.belt_stopped or not observed.reports_speed
    loaded = load_back(text, tmp_path)
    assert loaded.protocol == protocol
    if protocol == "trackmaster":
        queried = "query" in options[-1] if options else False
        assert loaded.quirks.status_query is queried
        assert observed.reports_speed is queried
    if "matrix" in options:
        assert observed.declared["learned sets_in_workout"] is False
        assert loaded.speed.max_change_mph.value >= 4

    async def played() -> SessionSummary:
        return await play(open_treadmill(url, profile=loaded), tmp_path, allow_blind=True)

    summary = run(played())
    assert summary.outcome in PLAYED, summary
    assert summary.belt_stopped or (not loaded.quirks.status_query and protocol == "trackmaster")


def _probe_base(url: str) -> Profile | None:
    from retrotread.commands.probe import probe_profile_base

    return probe_profile_base(url)


def test_probe_url_reads_without_moving(tmp_path: Path) -> None:
    """``--read-only``: the machine's declarations, and no start on the wire."""

    async def asked(declared: dict[str, Any]) -> bool:
        raise AssertionError("nobody is asked when only reading")

    observed, treadmill = run(probe("sim://", asked, read_only=True), virtual=True)
    assert not observed.exercised and observed.declared["profile used"] == "simulator"
    assert "set speed" not in observed.answers and "start" not in observed.answers
