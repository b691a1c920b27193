"""The floor on the command line: ``run --mqtt`` publishes a real headless run, and the
options fail early and clearly."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retrotread.cli import main
from tests.mqtt_support import Mosquitto, Spy, mosquitto, within

__all__ = ["mosquitto"]

SHORT = """name = "short-floor"
description = "one short block"

[[blocks]]
kind = "warm-up"
name = "Easy forward walk"
duration = "4s"
speed = 1.0
"""


async def test_run_with_mqtt_publishes_the_headless_run(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    program = tmp_path / "short.toml"
    program.write_text(SHORT)
    async with Spy(mosquitto.url, "retrotread/cli-1/#") as spy:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "retrotread",
            "run",
            str(program),
            "--unattended",
            "--quiet",
            "--mqtt",
            mosquitto.url,
            "--console-id",
            "cli-1",
            "--mqtt-discovery-prefix",
            "",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            running = await spy.wait_for(
                lambda s: s.topic.endswith("/state") and s.json()["engine"] == "running", 20
            )
            assert running.json()["program"] == "short-floor"
            ended = await spy.wait_for(
                lambda s: s.topic.endswith("/event") and s.json()["type"] == "ended", 30
            )
            assert ended.json()["outcome"] == "completed" and ended.json()["belt_stopped"]
            await spy.wait_for(
                lambda s: s.topic.endswith("/availability") and s.payload == b"offline"
            )
            assert await within(20, process.wait()) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["--mqtt", "http://x"], "mqtt://"),
        (["--mqtt", "mqtt://h", "--console-id", "a/b"], "console id"),
        (["--mqtt", "mqtt://h", "--rehearse"], "virtual clock"),
        (["--mqtt", "mqtt://h", "--floor-secret", "/nonexistent"], "cannot read"),
        (["--mqtt", "mqtt://h", "--mqtt-ca", "ca.pem"], "mqtts://"),
    ],
)
def test_bad_floor_options_fail_before_anything_moves(
    arguments: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "first-week", "--unattended", *arguments]) == 2
    assert words in capsys.readouterr().err


def test_floor_help_shows_the_keys(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["floor", "--help"])
    assert "STOP ALL" in capsys.readouterr().out
