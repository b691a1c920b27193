"""Third-party drivers: a package that registers one under ``retrotread.drivers`` is found by
its URL scheme, by the command line and by the console's device picker.

Each test writes a small installed distribution (a module and its ``.dist-info`` with
``entry_points.txt``) into its own folder and puts that folder on the path of a subprocess (the
real command line) or, for the registry's own checks, of this process (undone afterwards).
"""

from __future__ import annotations

import asyncio
import inspect
import io
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrotread.clock import LoopClock
from retrotread.commands.devices import cmd_devices
from retrotread.drivers.base import Treadmill
from retrotread.drivers.registry import (
    BUILT_IN,
    DRIVERS,
    driver_entries,
    find_entry,
    open_treadmill,
    shadowed_entries,
)
from retrotread.drivers.sim import SimDriver, SimulatorDriver
from retrotread.drivers.url import DeviceUrl
from retrotread.errors import DeviceUrlError, DriverUnavailable
from retrotread.profiles import get_profile
from retrotread.tui.devices import DeviceChoice, find_scanner, scanner_over, scanning_entries

#: A driver from another package: the simulator sold under a brand of its own, with a URL
#: grammar and options of its own, and a scan that finds one unit.
DRIVER = '''
"""{dist}: a treadmill driver for retrotread, from outside retrotread."""

from dataclasses import dataclass
from typing import ClassVar

from retrotread.drivers.sim import SimDriver


@dataclass(frozen=True)
class Unit:
    url: str
    name: str


class BrandDriver(SimDriver):
    scheme: ClassVar[str] = "{scheme}"
    url_grammar: ClassVar[str] = "{scheme}://UNIT[?profile=NAME]"
    url_options: ClassVar[dict[str, str]] = {{"profile": "device profile"}}

    @staticmethod
    async def scan(seconds: float) -> list[Unit]:
        return [Unit("{scheme}://unit-7", "Brand unit 7")]


NOT_A_DRIVER = "a string"
'''


def install(site: Path, dist: str, points: dict[str, str], module: str | None = None) -> Path:
    """Write distribution ``dist`` (version 1.0) into ``site``: its module and metadata."""
    site.mkdir(parents=True, exist_ok=True)
    if module is not None:
        (site / f"{dist}.py").write_text(module)
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in points.items())
    (info / "entry_points.txt").write_text(f"[retrotread.drivers]\n{lines}")
    return site


def brand(site: Path, dist: str = "brandtread", scheme: str = "brand") -> Path:
    module = textwrap.dedent(DRIVER.format(dist=dist, scheme=scheme))
    return install(site, dist, {scheme: f"{dist}:BrandDriver"}, module)


def retrotread(site: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env.update(
        {f"RETROTREAD_{d.upper()}_DIR": str(tmp_path / d) for d in ("config", "data", "log")}
    )
    return subprocess.run(
        [sys.executable, "-m", "retrotread", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


# -- the built-in drivers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sim://", "retrotread.drivers.sim.SimDriver"),
        ("sim://?link=ble&personality=strict", "retrotread.drivers.sim_ble.SimBleDriver"),
        ("ble://AA:BB:CC:DD:EE:FF", "retrotread.drivers.ftms_ble.FtmsBleDriver"),
        ("serial:///dev/ttyUSB0?protocol=csafe", "retrotread.drivers.csafe.CsafeDriver"),
        (
            "socket://localhost:9?protocol=trackmaster",
            "retrotread.drivers.trackmaster.TrackmasterDriver",
        ),
        ("loop://?protocol=csafe", "retrotread.drivers.csafe.CsafeDriver"),
    ],
)
def test_every_built_in_scheme_builds_a_real_driver(url: str, driver: str) -> None:
    treadmill = open_treadmill(url)  # built, not connected
    assert f"{type(treadmill).__module__}.{type(treadmill).__qualname__}" == driver
    assert not inspect.isabstract(type(treadmill))


def test_the_registry_holds_only_drivers_that_can_be_built() -> None:
    for scheme, entry in DRIVERS.items():
        driver = entry.load()
        assert driver.url_grammar.startswith(f"{scheme}://"), scheme
        # a Treadmill in the registry is one that can be built; anything else only opens them
        if isinstance(driver, type):
            assert issubclass(driver, Treadmill) and not inspect.isabstract(driver), scheme
        else:
            assert not isinstance(driver, Treadmill), scheme


def test_the_two_simulator_drivers_stay_apart() -> None:
    with pytest.raises(DeviceUrlError, match="link=ble"):
        SimDriver(DeviceUrl.parse("sim://?link=ble"), get_profile("simulator"), LoopClock())
    with pytest.raises(DeviceUrlError, match="personality= is the FTMS machine"):
        open_treadmill("sim://?personality=strict")
    with pytest.raises(DeviceUrlError, match="link='pigeon' must be one of inprocess, ble"):
        open_treadmill("sim://?link=pigeon")
    over_ble = open_treadmill("sim://?link=ble")
    assert isinstance(over_ble, SimulatorDriver) and not isinstance(over_ble, SimDriver)


# -- the command line, in a process of its own -------------------------------------------------


def test_a_driver_from_another_package_is_found_by_its_scheme(tmp_path: Path) -> None:
    site = brand(tmp_path / "site")

    listed = retrotread(site, tmp_path, "devices")
    assert listed.returncode == 0, listed.stderr
    assert "brand://UNIT[?profile=NAME]  (from brandtread 1.0)" in listed.stdout

    checked = retrotread(site, tmp_path, "check", "first-week", "--device", "brand://unit-7")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("first-week: ok")

    # its own options and grammar, not the simulator's: the scheme opened the plugin's class
    refused = retrotread(site, tmp_path, "check", "first-week", "--device", "brand://?accel=9")
    assert refused.returncode == 2
    assert "unknown option(s) accel; valid options: profile" in refused.stderr
    assert "grammar: brand://UNIT[?profile=NAME]" in refused.stderr


def test_without_the_package_the_scheme_is_unknown(tmp_path: Path) -> None:
    done = retrotread(tmp_path / "empty", tmp_path, "check", "first-week", "--device", "brand://")
    assert done.returncode == 2
    assert "unknown device scheme 'brand://'" in done.stderr
    assert "sim://" in done.stderr  # the known ones are named


# -- the registry, in this process -------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on this process's path for the test's distributions (removed afterwards)."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


@pytest.fixture(autouse=True)
def forget_plugin_modules() -> Iterator[None]:
    yield
    for name in [name for name in sys.modules if name.startswith("plugtest_")]:
        del sys.modules[name]


def test_the_registry_opens_a_plugin_driver(site: Path) -> None:
    brand(site, dist="plugtest_open", scheme="plugopen")
    entry = find_entry("plugopen")
    assert entry.origin == "plugtest_open 1.0" and entry.target == "plugtest_open:BrandDriver"
    driver = open_treadmill("plugopen://unit-7?profile=generic-ftms")
    assert isinstance(driver, SimDriver) and type(driver).__module__ == "plugtest_open"
    assert driver.profile.name == "generic-ftms"


def test_a_built_in_scheme_stays_built_in(site: Path) -> None:
    brand(site, dist="plugtest_takeover", scheme="sim")
    assert driver_entries()["sim"].origin == BUILT_IN
    assert [e.origin for e in shadowed_entries()] == ["plugtest_takeover 1.0"]
    assert type(open_treadmill("sim://")) is SimDriver
    out, err = io.StringIO(), io.StringIO()
    assert cmd_devices(out, err) == 0
    assert "sim:// from plugtest_takeover 1.0 (plugtest_takeover:BrandDriver) is not used" in (
        err.getvalue()
    )


def test_a_broken_plugin_says_so_in_one_line_and_hides_nothing(site: Path) -> None:
    install(site, "plugtest_missing", {"gone": "plugtest_no_such_module:Driver"})
    install(site, "plugtest_wrong", {"wrong": "plugtest_wrong:NOT_A_DRIVER"}, "NOT_A_DRIVER = 1\n")
    brand(site, dist="plugtest_good", scheme="good")

    with pytest.raises(DriverUnavailable, match=r"gone:// \(plugtest_missing 1.0\): cannot load"):
        open_treadmill("gone://")
    with pytest.raises(DriverUnavailable, match=r"wrong:// .* is not a retrotread driver"):
        open_treadmill("wrong://")
    with pytest.raises(DeviceUrlError, match="unknown device scheme"):
        open_treadmill("nowhere://")

    out, err = io.StringIO(), io.StringIO()
    assert cmd_devices(out, err) == 2
    assert "good://UNIT[?profile=NAME]  (from plugtest_good 1.0)" in out.getvalue()
    assert "sim://" in out.getvalue()
    problems = err.getvalue().splitlines()
    assert len(problems) == 2 and all("Traceback" not in line for line in problems)


def test_the_device_picker_scans_with_a_plugin_driver(site: Path) -> None:
    brand(site, dist="plugtest_scan", scheme="scanbrand")
    assert find_scanner() is not None
    scanning = {entry.scheme: entry for entry in scanning_entries()}
    assert {"scanbrand", "ble"} <= set(scanning)
    # the plugin's own scan through the picker (the BLE one needs a radio: not this test's)
    found = asyncio.run(scanner_over([scanning["scanbrand"]], 0.01)())
    assert found == [DeviceChoice("Brand unit 7", "scanbrand://unit-7")]
