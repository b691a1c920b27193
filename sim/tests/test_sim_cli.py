"""``retrotread-sim``'s command line: help a person can read, and how much it tells on stderr."""

from __future__ import annotations

import logging
import select
import signal
import subprocess
import sys
import time

import pytest

from retrotread_sim.cli import build_parser, log_level, main


def test_serve_help_shows_no_sphinx_markup(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as leaving:
        main(["serve", "--help"])
    assert leaving.value.code == 0
    shown = capsys.readouterr().out
    assert "A person at the machine is simulated on stdin" in shown
    for markup in ("``", ":mod:", ":class:", ":func:", "::\n"):
        assert markup not in shown, markup
    assert "--personality picks which console answers" in shown


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        (["serve", "--protocol", "csafe"], logging.WARNING),
        (["-v", "serve", "--protocol", "csafe"], logging.INFO),
        (["serve", "--protocol", "csafe", "-v"], logging.INFO),
        (["-v", "serve", "--protocol", "csafe", "-v"], logging.DEBUG),
        (["serve", "--protocol", "csafe", "-vv"], logging.DEBUG),
        (["serve", "--protocol", "csafe", "--log-level", "ERROR"], logging.ERROR),
        (["--log-level", "debug", "spec"], logging.DEBUG),
        (["-vv", "serve", "--protocol", "csafe", "--log-level", "warning"], logging.WARNING),
    ],
)
def test_verbosity_and_the_log_level_go_before_or_after_the_command(
    argv: list[str], level: int
) -> None:
    assert log_level(build_parser().parse_args(argv)) == level


def test_an_unknown_log_level_names_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as leaving:
        main(["serve", "--protocol", "csafe", "--log-level", "loud"])
    assert leaving.value.code == 2
    assert "choose from 'debug', 'info', 'warning', 'error'" in capsys.readouterr().err


def _serve_and_press_stop(*options: str) -> str:
    """Serve on a TCP port of the system's choosing, press STOP at the console, end; stderr."""
    command = [sys.executable, "-m", "retrotread_sim", *options]
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 20
        while len(lines) < 2:  # the address, then the console's answer
            ready, _, _ = select.select([process.stdout], [], [], deadline - time.monotonic())
            assert ready, f"the simulator said only {lines}"
            line = process.stdout.readline()
            assert line, f"the simulator exited: {process.stderr.read() if process.stderr else ''}"
            lines.append(line.strip())
            if len(lines) == 1:
                process.stdin.write("stop\n")
                process.stdin.flush()
        assert lines[0].startswith("127.0.0.1:") and lines[1] == "ok stop"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
        assert process.returncode == 0, err
        return err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_v_after_serve_tells_what_happens_at_the_machine() -> None:
    told = _serve_and_press_stop("serve", "--protocol", "csafe", "--tcp", "127.0.0.1:0", "-v")
    assert "retrotread-sim: INFO: serving csafe on 127.0.0.1:" in told
    assert "retrotread-sim: INFO: at the console: stop" in told


def test_without_v_only_the_address_hint_reaches_stderr() -> None:
    told = _serve_and_press_stop(
        "--log-level", "warning", "serve", "--protocol", "trackmaster", "--tcp", "127.0.0.1:0"
    )
    assert "INFO" not in told and "try --device" in told
