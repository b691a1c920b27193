"""The command line, run as a user runs it: a child process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

RETROTREAD = [sys.executable, "-m", "retrotread"]


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RETROTREAD, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_programs_lists_builtins_name_first_with_times() -> None:
    result = cli("programs")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[0] == "first-week"
    assert "total 14:00" in lines[0] and "retro  2:00" in lines[0]
    assert len(lines) == 8


def test_check_reports_every_mistake_and_exit_status(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(
        'name = "ok"\n[defaults]\nstart_facing = "rear"\n'
        '[[blocks]]\nkind = "retro"\nduration = 20\nspeed = 2.6\n'
    )
    bad = tmp_path / "intervals.toml"
    bad.write_text('name = "bad"\n[[blocks]]\nkind = "retro"\nduration = 20\nspeed = 4.1\n')
    ok = cli("check", str(good))
    assert ok.returncode == 0 and "ok" in ok.stdout
    result = cli("check", str(good), str(bad))
    assert result.returncode == 2
    assert f"{bad}:5: block 1 'retro': speed 4.1 mph is above the retro band" in result.stderr
    assert "Traceback" not in result.stderr


def test_rehearse_plays_a_builtin_and_ends_with_the_belt_stopped() -> None:
    result = cli("run", "warm-up", "--rehearse")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "▶ warm-up" in out
    assert "2/5 TURN" in out and "Hold both handrails, turn to face the rear" in out
    assert "3… RETRO" in out
    assert "ended     completed" in out
    assert "belt      stopped" in out


def test_a_run_without_a_person_or_unattended_is_refused() -> None:
    result = cli("run", "first-week")
    assert result.returncode == 2
    assert "--unattended" in result.stderr


def test_unknown_device_scheme_lists_the_known_ones() -> None:
    result = cli("run", "first-week", "--unattended", "--device", "usb://x")
    assert result.returncode == 2
    assert "unknown device scheme 'usb://'" in result.stderr and "sim://" in result.stderr


def test_unknown_device_option_shows_the_grammar() -> None:
    result = cli("run", "first-week", "--rehearse", "--device", "sim://?profil=x")
    assert result.returncode == 2
    assert "unknown option(s) profil" in result.stderr
    assert "grammar: sim://[?profile=NAME]" in result.stderr


SHORT = """\
name = "short"
description = "one long block, so a signal lands mid-block"
[[blocks]]
kind = "warm-up"
duration = "2m"
speed = 2.5
"""


def start_mid_block(tmp_path: Path, device: str, journal: Path) -> subprocess.Popen[str]:
    """``retrotread run`` on a one-block program, returned once its belt is moving."""
    program = tmp_path / "short.toml"
    program.write_text(SHORT)
    child = subprocess.Popen(
        [*RETROTREAD, "run", str(program), "--unattended", "--mute", "--device", device],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    for line in child.stdout:
        if "1/1 WARM-UP" in line:
            break
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait until the belt is really moving
        entries = (
            [json.loads(x) for x in journal.read_text().splitlines()] if journal.exists() else []
        )
        if any(e.get("name") == "start" for e in entries):
            break
        time.sleep(0.05)
    time.sleep(1.0)  # well into the block, the belt up to speed
    return child


@pytest.mark.realtime
@pytest.mark.parametrize(
    ("signum", "status"),
    [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129), (signal.SIGQUIT, 131)],
    ids=["TERM", "INT", "HUP", "QUIT"],
)
def test_a_signal_mid_block_stops_the_belt_before_exit(
    tmp_path: Path, signum: signal.Signals, status: int
) -> None:
    journal = tmp_path / "belt.jsonl"
    child = start_mid_block(tmp_path, f"sim://?record={journal}", journal)
    child.send_signal(signum)
    out, err = child.communicate(timeout=20)
    assert child.returncode == status, err
    entries = [json.loads(x) for x in journal.read_text().splitlines()]
    link = [e for e in entries if e.get("source") == "link"]
    assert link[-1]["name"] == "stop"
    assert entries[-1]["event"] == "closed"
    assert entries[-1]["stopped"] is True  # halted and reading zero
    assert "belt      stopped" in out
    assert "Traceback" not in err


@pytest.mark.realtime
def test_a_second_ctrl_c_does_not_cut_the_stop_short(tmp_path: Path) -> None:
    """Issue 13, finding 15: the second Ctrl-C used to cancel the stop (CancelledError
    traceback, exit 1, no summary, session left running). It now only says what is going on."""
    journal = tmp_path / "belt.jsonl"
    child = start_mid_block(tmp_path, f"sim://?record={journal}", journal)
    child.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 10
    while not any(  # the stop is out; the belt is still slowing down
        e.get("name") == "stop" for e in map(json.loads, journal.read_text().splitlines())
    ):
        assert time.monotonic() < deadline, "no stop after the first Ctrl-C"
        time.sleep(0.02)
    child.send_signal(signal.SIGINT)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=20)
    assert child.returncode == 130, err
    assert "Traceback" not in err
    assert "only SIGKILL abandons this" in out
    assert "belt      stopped" in out
    entries = [json.loads(x) for x in journal.read_text().splitlines()]
    assert entries[-1]["event"] == "closed" and entries[-1]["stopped"] is True
    history = subprocess.run(
        [*RETROTREAD, "history"], capture_output=True, text=True, timeout=30, check=True
    )
    assert "interrupted" in history.stdout and "running" not in history.stdout


ATTENDED = """\
name = "attended"
description = "a short block for a person at the terminal"
[[blocks]]
kind = "warm-up"
duration = "8s"
speed = 2.5
"""


@pytest.mark.realtime
def test_attended_run_waits_for_enter_and_enter_resumes_after_a_console_pause(
    tmp_path: Path,
) -> None:
    import pty

    program = tmp_path / "attended.toml"
    program.write_text(ATTENDED)
    journal = tmp_path / "belt.jsonl"
    device = f"sim://?record={journal}&faults=console-pause@4"
    controller, terminal = pty.openpty()
    child = subprocess.Popen(
        [*RETROTREAD, "run", str(program), "--device", device],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    os.close(terminal)
    assert child.stdout is not None
    seen: list[str] = []
    for line in child.stdout:
        seen.append(line)
        if "Press Enter to start the belt" in line:
            time.sleep(0.5)
            assert not journal.exists() or '"start"' not in journal.read_text()  # no go yet
            os.write(controller, b"\n")
        if "press Enter to resume" in line:
            os.write(controller, b"\n")
    out, err = child.communicate(timeout=30)
    os.close(controller)
    text = "".join(seen) + out
    assert child.returncode == 0, err
    assert "paused-at-console" in text and "Resuming." in text
    assert "ended     completed" in text


FAST_BACKWARD = """\
name = "fast-backward"
description = "widens the retro band and asks 10 mph backward"
[defaults]
retro_band = [2.6, 12]
[[blocks]]
kind = "warm-up"
duration = "30s"
speed = 2.5
[[blocks]]
kind = "turn-around"
[[blocks]]
kind = "retro"
duration = "30s"
speed = 10
"""


def test_check_refuses_a_backward_speed_a_program_file_cannot_raise(tmp_path: Path) -> None:
    program = tmp_path / "fast.toml"
    program.write_text(FAST_BACKWARD)
    result = subprocess.run(
        [*RETROTREAD, "check", str(program)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "10 mph is above the ceiling for walking backward (5 mph)" in result.stderr


def test_check_against_a_device_names_what_it_would_change(tmp_path: Path) -> None:
    program = tmp_path / "uphill.toml"
    program.write_text(
        'name = "steep"\ndescription = "d"\n[defaults]\nincline = 14.0\n'
        '[[blocks]]\nkind = "warm-up"\nduration = "30s"\nspeed = 2.5\n'
    )
    ok = subprocess.run(
        [*RETROTREAD, "check", str(program)], capture_output=True, text=True, timeout=30
    )
    assert ok.returncode == 0, ok.stderr  # no device named: the file itself is fine
    refused = subprocess.run(
        [*RETROTREAD, "check", str(program), "--device", "sim://?profile=generic-ftms"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2
    assert "incline 14 % is outside this machine's 0 %–12 %" in refused.stderr
