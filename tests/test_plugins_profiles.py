"""The user's own device profiles, from the config folder beside the bundled ones.

Each test has its own config folder (``RETROTREAD_CONFIG_DIR``); profiles are written there as
a user would, from a bundled one with a few lines changed.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from retrotread.cli import main
from retrotread.commands.devices import cmd_devices
from retrotread.drivers.registry import open_treadmill
from retrotread.errors import ProfileError
from retrotread.profiles import (
    BUNDLED,
    bundled_profiles,
    get_profile,
    profile_catalogue,
    profile_for_device,
    user_profile_dir,
)
from retrotread.tui.devices import offered_devices

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RETROTREAD_CONFIG_DIR", str(tmp_path / "config"))
    devices = tmp_path / "config" / "devices"
    devices.mkdir(parents=True)
    assert user_profile_dir() == devices
    return devices


def write(folder: Path, file: str, base: str, **lines: str) -> Path:
    """A bundled profile's TOML with top-level or ``table.key`` lines replaced."""
    text = (ROOT / "devices" / f"{base}.toml").read_text()
    out, table = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            table = stripped.strip("[]") + "."
        key = stripped.partition("=")[0].strip()
        replaced = lines.pop(f"{table}{key}" if table else key, None) if "=" in stripped else None
        out.append(f"{key} = {replaced}" if replaced is not None else line)
    assert not lines, f"not in {base}.toml: {lines}"
    path = folder / file
    path.write_text("\n".join(out) + "\n")
    return path


def test_a_user_profile_joins_and_one_of_a_bundled_name_replaces_it(folder: Path) -> None:
    mine = write(
        folder,
        "home-tread.toml",
        "generic-ftms",
        name='"home-tread"',
        description='"The one in the garage"',
        match='["HOME-*"]',
    )
    override = write(
        folder, "csafe.toml", "generic-csafe", description='"Our club console, slower top"'
    )
    catalogue = profile_catalogue()
    assert catalogue.problems == ()
    sources = {found.profile.name: found for found in catalogue.files}
    assert sources["home-tread"].source == str(mine)
    assert not sources["home-tread"].overrides_bundled
    assert sources["generic-csafe"].source == str(override)
    assert sources["generic-csafe"].overrides_bundled
    assert sources["generic-trackmaster"].source == BUNDLED
    assert len(catalogue.files) == len(bundled_profiles()) + 1

    assert get_profile("generic-csafe").description == "Our club console, slower top"
    assert get_profile("home-tread").protocol == "ftms"
    assert profile_for_device("HOME-1", "ftms").name == "home-tread"  # a BLE name picks it
    driver = open_treadmill("sim://?profile=home-tread")
    assert driver.profile.name == "home-tread"
    assert "sim://?profile=home-tread" in [choice.url for choice in offered_devices()]


def test_devices_shows_where_each_profile_comes_from(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = write(folder, "home.toml", "generic-ftms", name='"home-tread"')
    override = write(folder, "csafe.toml", "generic-csafe", description='"Ours"')
    assert main(["devices"]) == 0
    listing, errors = capsys.readouterr()
    bundled, _, yours = listing.partition("Your device profiles")
    assert "generic-trackmaster" in bundled and "generic-csafe" not in bundled
    assert f"({folder}/*.toml)" in yours
    assert f"from {mine}" in yours and f"from {override}" in yours
    assert re.search(r"generic-csafe +csafe +Ours  \(replaces the bundled one\)", yours)
    assert errors == ""


@pytest.mark.parametrize(
    ("lines", "complaint"),
    [
        ({"speed.max": '"fast"'}, "speed.max: expected a speed like 2.8"),
        ({"confirm.timeout_s": '"soon"'}, "confirm.timeout_s: could not convert"),
        ({"incline.increment": '"half"'}, "incline.increment:"),
        ({"speed.max_mph": "[1]"}, "speed.max_mph:"),
        ({"protocol": '"pigeon"'}, "protocol must be one of"),
    ],
)
def test_a_broken_user_profile_names_file_and_field_and_hides_no_other(
    folder: Path, lines: dict[str, str], complaint: str
) -> None:
    broken = write(folder, "broken.toml", "generic-ftms", name='"broken"', **lines)
    write(folder, "home.toml", "generic-ftms", name='"home-tread"')
    catalogue = profile_catalogue()
    [problem] = catalogue.problems
    assert problem.path == broken
    assert problem.message.startswith(f"{broken}: ") and complaint in problem.message
    assert {"home-tread", "generic-ftms", "simulator"} <= {p.name for p in catalogue.profiles}
    assert get_profile("home-tread").name == "home-tread"

    # asking for it by its file's name is the error, never another profile
    with pytest.raises(ProfileError, match=r"broken\.toml") as raised:
        get_profile("broken")
    assert complaint in str(raised.value)

    out, err = io.StringIO(), io.StringIO()
    assert cmd_devices(out, err) == 2
    assert "home-tread" in out.getvalue() and "generic-ftms" in out.getvalue()
    assert err.getvalue() == f"retrotread: device profile not read: {problem.message}\n"


def test_missing_fields_and_bad_toml_are_named(folder: Path) -> None:
    text = (ROOT / "devices" / "generic-ftms.toml").read_text()
    without_max = "\n".join(
        line for line in text.splitlines() if not line.strip().startswith("max =")
    )
    (folder / "no-max.toml").write_text(without_max.replace("generic-ftms", "no-max"))
    (folder / "garbled.toml").write_text('name = "garbled"\nspeed = [\n')
    messages = sorted(problem.message for problem in profile_catalogue().problems)
    assert messages[0].startswith(f"{folder / 'garbled.toml'}: not valid TOML")
    assert messages[1].startswith(f"{folder / 'no-max.toml'}")
    assert "missing max" in messages[1] and "[speed]" in messages[1]
    with pytest.raises(ProfileError, match=r"(?s)no device profile named 'elsewhere'.*not read"):
        get_profile("elsewhere")


def test_two_user_files_of_one_name_keep_the_first(folder: Path) -> None:
    first = write(folder, "a.toml", "generic-ftms", name='"twin"')
    second = write(folder, "b.toml", "generic-ftms", name='"twin"')
    catalogue = profile_catalogue()
    assert [f.source for f in catalogue.files if f.profile.name == "twin"] == [str(first)]
    [problem] = catalogue.problems
    assert problem.path == second and f"already in {first}" in problem.message


def test_no_config_folder_is_no_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETROTREAD_CONFIG_DIR", str(tmp_path / "never-made"))
    catalogue = profile_catalogue()
    assert catalogue.problems == ()
    assert [f.profile.name for f in catalogue.files] == [p.name for p in bundled_profiles()]
    assert not (tmp_path / "never-made").exists()  # reading does not create it
