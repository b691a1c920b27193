"""The settings file: a console remembers its treadmill; command line > environment > file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from retrotread import config
from retrotread.cli import main
from retrotread.speech.engine import SpeechSettings


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def settings_file() -> Path:
    return Path(os.environ["RETROTREAD_CONFIG_DIR"]) / "config.toml"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_device_in_the_file_is_the_one_a_run_drives(
    capsys: pytest.CaptureFixture[str], settings_file: Path
) -> None:
    write(settings_file, '[device]\nurl = "sim://?link=ble"\n')
    status, out, _ = cli(capsys, "run", "first-week", "--rehearse", "--quiet")
    assert status == 0 and "on simulator (simulator) over BLE" in out


def test_the_command_line_wins_over_the_environment_which_wins_over_the_file(
    capsys: pytest.CaptureFixture[str], settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(settings_file, '[device]\nurl = "sim://?link=ble"\n\n[speech]\nrate = 150\n')
    monkeypatch.setenv("RETROTREAD_DEVICE", "sim://?name=from-env")
    status, out, _ = cli(capsys, "config")
    assert status == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "environment RETROTREAD_DEVICE" in lines["device.url"]
    assert "sim://?name=from-env" in lines["device.url"]
    assert lines["speech.rate"].split()[1] == "150" and f"{settings_file}:5" in lines["speech.rate"]
    assert lines["serve.port"].split()[1:] == ["8000", "default"]
    _, out, _ = cli(capsys, "run", "first-week", "--rehearse", "--quiet", "--device", "sim://")
    assert "on simulator (simulator)\n" in out  # the command line's plain sim://, not BLE


def test_config_set_writes_the_file_and_unset_removes_it(
    capsys: pytest.CaptureFixture[str], settings_file: Path
) -> None:
    assert cli(capsys, "config", "set", "device.url", "csafe:///dev/ttyUSB0")[0] == 0
    assert cli(capsys, "config", "set", "speech.mute", "yes")[0] == 0
    assert config.read_file(settings_file)["device.url"].value == "csafe:///dev/ttyUSB0"
    assert config.read_file(settings_file)["speech.mute"].value is True
    assert cli(capsys, "config", "unset", "device.url")[0] == 0
    assert set(config.read_file(settings_file)) == {"speech.mute"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[device]\nurl = \n", "config.toml: Invalid value (at line 2, column 7)"),
        ('[device]\nulr = "sim://"\n', "config.toml:2: unknown setting device.ulr"),
        (
            '[speech]\nlanguage = "en"\nrate = "fast"\n',
            "config.toml:3: speech.rate must be a whole",
        ),
        ("device = 3\n", "config.toml:1: 'device' must be a [table]"),
    ],
)
def test_a_mistake_in_the_file_names_the_file_line_and_setting(
    capsys: pytest.CaptureFixture[str], settings_file: Path, text: str, expected: str
) -> None:
    write(settings_file, text)
    status, _, err = cli(capsys, "run", "first-week", "--rehearse")
    assert status == 2
    assert expected in err and "Traceback" not in err


def test_a_bad_environment_value_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETROTREAD_SERVE_PORT", "eighty")
    status, _, err = cli(capsys, "config")
    assert status == 2
    assert "environment RETROTREAD_SERVE_PORT: serve.port must be a whole number" in err


def test_a_settings_file_that_is_not_a_file_is_refused(
    capsys: pytest.CaptureFixture[str], settings_file: Path
) -> None:
    settings_file.mkdir(parents=True)
    status, _, err = cli(capsys, "config")
    assert status == 2 and "not a regular file" in err


def test_the_built_in_speech_defaults_are_the_speech_engine_s() -> None:
    defaults = SpeechSettings()
    assert config.BY_NAME["speech.rate"].default == defaults.rate_wpm
    assert config.BY_NAME["speech.volume"].default == defaults.volume
    assert config.BY_NAME["speech.language"].default == defaults.language
