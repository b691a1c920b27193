"""The distributions: what the wheels hold and declare, the version, and the pip extras.

The wheels are built from a copy of the tree (nothing is written into the checkout), offline
(``--no-build-isolation``: the setuptools in this environment). A missing extra is played by a
subprocess in which the transport's modules cannot be imported.
"""

from __future__ import annotations

import email
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.message import Message
from pathlib import Path

import pytest

from retrotread.cli import main
from retrotread.extras import OPTIONAL

ROOT = Path(__file__).resolve().parent.parent


def pyproject(path: Path = ROOT / "pyproject.toml") -> dict[str, object]:
    return tomllib.loads(path.read_text())


def version_in(path: Path) -> str:
    project = pyproject(path)["project"]
    assert isinstance(project, dict)
    return str(project["version"])


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, zipfile.ZipFile]:
    """Both wheels, built from a copy of the files git would take (tracked or not ignored)."""
    base = tmp_path_factory.mktemp("wheels")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    source = base / "src"
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = base / "dist"
    build = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("-q", "--no-index", "-w", str(out), str(source), str(source / "sim")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    found = {path.name.split("-")[0]: zipfile.ZipFile(path) for path in out.glob("*.whl")}
    assert set(found) == {"retrotread", "retrotread_sim"}, found
    return found


def metadata(wheel: zipfile.ZipFile) -> Message:
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    return email.message_from_bytes(wheel.read(name))


def entry_points(wheel: zipfile.ZipFile) -> str:
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
    return wheel.read(name).decode()


def test_the_retrotread_wheel_holds_every_package_and_data_file(
    wheels: dict[str, zipfile.ZipFile],
) -> None:
    names = set(wheels["retrotread"].namelist())
    # every package on disk, found without a hand-kept list
    for init in (ROOT / "retrotread").rglob("__init__.py"):
        if "__pycache__" not in init.parts:
            assert str(init.relative_to(ROOT)) in names, init
    # the device profiles, from devices/ at the top of the tree
    profiles = {p.name for p in (ROOT / "devices").glob("*.toml")}
    assert profiles and {f"retrotread/devices/{p}" for p in profiles} <= names
    # the served console's pages, the console's style, the built-in programs, the type marker
    static = {p.name for p in (ROOT / "retrotread" / "web" / "static").iterdir()}
    assert static and {f"retrotread/web/static/{s}" for s in static} <= names
    assert any(n.startswith("retrotread/tui/") and n.endswith(".tcss") for n in names)
    assert any(n.startswith("retrotread/program/library/") and n.endswith(".toml") for n in names)
    assert "retrotread/py.typed" in names
    # the simulator is its own distribution: never installed twice
    assert not [n for n in names if n.startswith("retrotread_sim")]
    assert not [n for n in names if n.startswith(("tests/", "bench/", "sim/"))]


def test_the_wheels_declare_version_extras_and_commands(
    wheels: dict[str, zipfile.ZipFile],
) -> None:
    ours, sim = metadata(wheels["retrotread"]), metadata(wheels["retrotread_sim"])
    assert ours["Version"] == version_in(ROOT / "pyproject.toml")
    assert sim["Version"] == version_in(ROOT / "sim" / "pyproject.toml")
    requires = ours.get_all("Requires-Dist") or []
    # a plain install needs no name pip cannot find, and no transport
    plain = [r for r in requires if "extra ==" not in r]
    assert not [r for r in plain if r.startswith("retrotread-sim")]
    for transport in ("bleak", "pyftms", "bleak-retry-connector", "pyserial", "aiohttp", "segno"):
        assert not [r for r in plain if r.startswith(transport)], transport
    assert set(ours.get_all("Provides-Extra") or []) >= {"ble", "serial", "web", "all", "dev"}
    assert any(r.startswith("bleak") and 'extra == "ble"' in r for r in requires)
    assert any(r.startswith("pyserial") and 'extra == "serial"' in r for r in requires)
    assert any(r.startswith("aiohttp") and 'extra == "web"' in r for r in requires)
    assert "retrotread = retrotread.cli:main" in entry_points(wheels["retrotread"])
    assert "retrotread-sim = retrotread_sim.cli:main" in entry_points(wheels["retrotread_sim"])
    assert not [n for n in wheels["retrotread_sim"].namelist() if n.startswith("retrotread/")]


def test_the_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    import retrotread

    written = version_in(ROOT / "pyproject.toml")
    assert importlib.metadata.version("retrotread") == written
    assert retrotread.__version__ == written
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"retrotread {written}"
    # written once: no other version string in the package
    init = (ROOT / "retrotread" / "__init__.py").read_text()
    assert written not in init


def test_the_makefile_installs_every_extra() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "-e ./sim -e '.[all,dev]'" in makefile
    project = pyproject()["project"]
    assert isinstance(project, dict)
    extras = project["optional-dependencies"]
    [everything] = extras["all"]
    assert everything.startswith("retrotread[")
    assert set(everything.removeprefix("retrotread[").removesuffix("]").split(",")) == (
        set(extras) - {"all", "dev"}
    )


# -- an install without an extra ---------------------------------------------------------------

#: Run retrotread's command line with some top-level modules impossible to import, as in an
#: install without the extras that bring them.
WITHOUT = """
import sys
from importlib.abc import MetaPathFinder

class NotInstalled(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

BLOCKED = set(sys.argv[1].split(","))
sys.meta_path.insert(0, NotInstalled())
from retrotread.cli import main
sys.exit(main(sys.argv[2:]))
"""


def without(modules: str, *args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        {f"RETROTREAD_{d.upper()}_DIR": str(tmp_path / d) for d in ("config", "data", "log")}
    )
    return subprocess.run(
        [sys.executable, "-c", WITHOUT, modules, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("modules", "device", "extra"),
    [
        ("bleak,pyftms,bleak_retry_connector", "ble://AA:BB:CC:DD:EE:FF", "ble"),
        ("bleak,pyftms,bleak_retry_connector", "sim://?link=ble", "ble"),
        ("serial", "serial:///dev/ttyUSB0?protocol=csafe", "serial"),
    ],
)
def test_a_missing_extra_names_what_to_install(
    modules: str, device: str, extra: str, tmp_path: Path
) -> None:
    done = without(modules, "check", "first-week", "--device", device, tmp_path=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"pip install 'retrotread[{extra}]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_without_the_simulator_sim_says_how_to_install_it(tmp_path: Path) -> None:
    done = without("retrotread_sim", "check", "first-week", "--device", "sim://", tmp_path=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "pip install ./sim" in done.stderr and "Traceback" not in done.stderr


def test_devices_lists_what_is_not_installed(tmp_path: Path) -> None:
    done = without("serial,aiohttp,segno", "devices", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(
        line.strip().startswith("serial://") and "pip install 'retrotread[serial]'" in line
        for line in lines
    )
    assert any(line.strip().startswith("ble://ADDRESS") for line in lines)  # still there


def test_serving_without_the_web_extra_names_it(tmp_path: Path) -> None:
    done = without(
        "aiohttp,segno", "tui", "first-week", "--serve", "--port", "0", tmp_path=tmp_path
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "pip install 'retrotread[web]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_extras_the_errors_name_are_the_ones_pyproject_declares() -> None:
    """Each extra a missing module is blamed on brings exactly that module's distributions."""
    project = pyproject()["project"]
    assert isinstance(project, dict)
    declared: dict[str, list[str]] = project["optional-dependencies"]
    owners = importlib.metadata.packages_distributions()
    for name, part in OPTIONAL.items():
        if name == "sim":  # the simulator's own distribution, not an extra
            assert part.modules == ("retrotread_sim",) and "./sim" in part.install
            continue
        assert part.install == f"pip install 'retrotread[{name}]'"
        wanted = {re.split(r"[<>=\[ ;]", req)[0].lower() for req in declared[name]}
        brought = {dist.lower() for module in part.modules for dist in owners[module]}
        assert brought == wanted, name
    assert set(OPTIONAL) - {"sim"} == set(declared) - {"all", "dev"}
