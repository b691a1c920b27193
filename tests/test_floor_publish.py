"""A console on the floor, against a real Mosquitto: what it publishes, what it accepts, and
that a broker that is slow, gone or never there costs the session nothing."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from retrotread.drivers.registry import open_treadmill
from retrotread.drivers.sim import SimDriver
from retrotread.events import CommandIssued, Event, Notice, SessionEnded
from retrotread.floor.auth import RemoteCommand, Verifier, sign
from retrotread.floor.publisher import FloorLink
from retrotread.floor.topics import command_topic, shown_client
from retrotread.options import FloorOptions
from retrotread.session import Session
from retrotread.vocabulary import Command, Outcome, StopReason
from tests.helpers import retro_program
from tests.mqtt_support import Mosquitto, ScaledClock, Seen, Spy, free_port, mosquitto, within

__all__ = ["mosquitto"]  # the fixture

SECRET = "correct-horse-battery-staple-0123"
SCALE = 20.0  # program seconds per real second


def secret_file(tmp_path: Path) -> str:
    path = tmp_path / "floor.secret"
    path.write_text(SECRET + "\n")
    return str(path)


class Console:
    """A session on the simulator, published to the floor."""

    def __init__(self, url: str, console_id: str, durations: list[int], **floor: Any) -> None:
        self.clock = ScaledClock(SCALE)
        self.driver = open_treadmill("sim://", clock=self.clock)
        assert isinstance(self.driver, SimDriver)
        self.session = Session(retro_program(durations), self.driver, self.clock, unattended=True)
        self.events: list[Event] = []
        self.session.subscribe(self.events.append)
        self.link = FloorLink(
            FloorOptions(broker=url, console_id=console_id, **floor), client_name="Jane Q Doe"
        )
        self.link.attach(self.session)
        self.task = asyncio.create_task(self.session.run())

    def belt_stopped(self) -> bool:
        assert self.driver.machine is not None
        return self.driver.machine.belt_stopped

    def notices(self) -> list[str]:
        return [e.message for e in self.events if type(e) is Notice]


def state_of(item: Seen) -> dict[str, Any]:
    return item.json()


async def test_state_events_availability_and_discovery(mosquitto: Mosquitto) -> None:
    async with Spy(mosquitto.url, "retrotread/#", "homeassistant/#") as spy:
        console = Console(mosquitto.url, "tm-01", [20, 20], client_name="initials")
        await within(10, console.link.connected.wait())
        online = await spy.wait_for(lambda s: s.topic == "retrotread/tm-01/availability")
        assert online.payload == b"online"
        running = await spy.wait_for(
            lambda s: (
                s.topic.endswith("/state")
                and state_of(s)["engine"] == "running"
                and state_of(s)["actual_speed_mph"]
            )
        )
        state = running.json()
        async with Spy(mosquitto.url, "retrotread/tm-01/#") as late:  # what a new floor sees
            kept = await late.wait_for(lambda s: s.topic.endswith("/state"))
            assert kept.retain and kept.json()["program"] == "test"
            assert (await late.wait_for(lambda s: s.topic.endswith("/availability"))).retain
        assert state["client"] == "J.Q.D."
        assert state["block"]["index"] == 1 and state["block"]["of"] == 2
        assert state["target_speed_mph"] == 2.8 and state["link_up"] is True
        block = await spy.wait_for(
            lambda s: s.topic.endswith("/event") and s.json()["type"] == "block"
        )
        assert not block.retain and block.json()["title"]
        await spy.wait_for(lambda s: s.topic.endswith("/event") and s.json()["type"] == "countdown")
        config = await spy.wait_for(
            lambda s: s.topic == "homeassistant/sensor/retrotread_tm-01/actual_speed/config"
        )
        assert config.json()["state_topic"] == "retrotread/tm-01/state"
        assert config.json()["availability_topic"] == "retrotread/tm-01/availability"
        # Home Assistant back online: the configs again
        before = len([s for s in spy.seen if s.topic.endswith("/config")])
        await spy.publish("homeassistant/status", b"online")
        await spy.wait_for(
            lambda s: (
                s.topic.endswith("/config")
                and len([x for x in spy.seen if x.topic.endswith("/config")]) > before
            )
        )
        summary = await within(20, console.task)
        assert summary.outcome is Outcome.COMPLETED
        ended = await spy.wait_for(
            lambda s: s.topic.endswith("/event") and s.json()["type"] == "ended"
        )
        assert ended.json()["belt_stopped"] is True
        await console.link.close()
        await spy.wait_for(
            lambda s: s.topic == "retrotread/tm-01/availability" and s.payload == b"offline"
        )
    assert console.link.dropped == 0


def test_client_names_are_opt_in() -> None:
    assert shown_client("Jane Q Doe", "none") is None
    assert shown_client("Jane Q Doe", "initials") == "J.Q.D."
    assert shown_client("Jane Q Doe", "full") == "Jane Q Doe"
    assert shown_client(None, "full") is None


async def test_a_signed_stop_from_the_floor_stops_the_belt(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    console = Console(mosquitto.url, "tm-02", [60, 60], secret_file=secret_file(tmp_path))
    async with Spy(mosquitto.url, "retrotread/tm-02/state") as spy:
        await spy.wait_for(lambda s: (s.json()["actual_speed_mph"] or 0) > 1)
        message = sign(RemoteCommand.STOP, "tm-02", "front desk", SECRET.encode())
        await spy.publish(command_topic("tm-02"), json.dumps(message).encode())
        summary = await within(20, console.task)
        remote = await spy.wait_for(lambda s: s.json()["remote"] is not None)
        assert remote.json()["remote"] == "stop by front desk"
    assert summary.outcome is Outcome.STOPPED and summary.reason is StopReason.OPERATOR
    assert "STOP from the floor (front desk)" in summary.detail
    assert summary.belt_stopped and console.belt_stopped()
    assert "STOP from the floor, sent by front desk" in console.notices()
    await console.link.close()


async def test_a_pause_from_the_floor_pauses_and_nothing_remote_resumes(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    console = Console(mosquitto.url, "tm-03", [60, 60], secret_file=secret_file(tmp_path))
    async with Spy(mosquitto.url, "retrotread/tm-03/state") as spy:
        await spy.wait_for(lambda s: (s.json()["actual_speed_mph"] or 0) > 1)
        pause = sign(RemoteCommand.PAUSE, "tm-03", "coach", SECRET.encode())
        await spy.publish(command_topic("tm-03"), json.dumps(pause).encode())
        await spy.wait_for(lambda s: s.json()["engine"] == "paused")
        for name in ("resume", "start", "set speed"):
            forged = {**sign(RemoteCommand.PAUSE, "tm-03", "coach", None), "command": name}
            await spy.publish(command_topic("tm-03"), json.dumps(forged).encode())
        await within(10, _until(lambda: len(console.notices()) >= 4))
        assert console.session.state.engine.value == "paused"
    assert "pause from the floor, sent by coach" in console.notices()
    assert all("not a floor command" in n for n in console.notices()[1:4])
    console.session.stop()
    await within(20, console.task)
    assert console.belt_stopped()
    await console.link.close()


async def _until(check: Any) -> None:
    while not check():  # noqa: ASYNC110 - a test's condition on another task's work
        await asyncio.sleep(0.01)


def test_unsigned_forged_replayed_and_retained_commands_are_refused() -> None:
    now = [1000.0]
    verifier = Verifier("tm-04", SECRET.encode(), wall=lambda: now[0])
    good = sign(RemoteCommand.STOP, "tm-04", "desk", SECRET.encode(), now=1000.0)
    assert verifier.check(good).sender == "desk"
    refusals = {
        "replay": good,
        "unsigned": sign(RemoteCommand.STOP, "tm-04", "desk", None, now=1000.0),
        "wrong secret": sign(RemoteCommand.STOP, "tm-04", "desk", b"x" * 20, now=1000.0),
        "another console": sign(RemoteCommand.STOP, "tm-05", "desk", SECRET.encode(), now=1000.0),
        "old": sign(RemoteCommand.STOP, "tm-04", "desk", SECRET.encode(), now=900.0),
        "renamed sender": {
            **sign(RemoteCommand.STOP, "tm-04", "a", SECRET.encode()),
            "sender": "b",
        },
    }
    from retrotread.floor.auth import CommandRefused

    for message in refusals.values():  # in order: the replay comes after the first
        with pytest.raises(CommandRefused):
            verifier.check(message)
    fresh = sign(RemoteCommand.STOP, "tm-04", "desk", SECRET.encode(), now=1000.0)
    with pytest.raises(CommandRefused, match="retained"):
        verifier.check(fresh, retained=True)
    with pytest.raises(CommandRefused, match="takes no commands"):
        Verifier("tm-04", None).check(fresh)
    trusting = Verifier("tm-04", None, trust_broker=True)
    assert (
        trusting.check(sign(RemoteCommand.PAUSE, "tm-04", "desk", None)).command
        is RemoteCommand.PAUSE
    )


async def test_a_retained_stop_on_the_broker_never_stops_a_later_session(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with Spy(mosquitto.url, "retrotread/tm-06/state") as spy:
        old = sign(RemoteCommand.STOP, "tm-06", "yesterday", SECRET.encode())
        await spy.publish(command_topic("tm-06"), json.dumps(old).encode(), retain=True)
        console = Console(mosquitto.url, "tm-06", [10, 10], secret_file=secret_file(tmp_path))
        summary = await within(20, console.task)
    assert summary.outcome is Outcome.COMPLETED
    assert any("retained" in n for n in console.notices())
    await console.link.close()


async def test_no_broker_at_all_costs_the_session_nothing() -> None:
    console = Console(f"mqtt://127.0.0.1:{free_port()}", "tm-07", [10, 10])
    summary = await within(20, console.task)
    assert summary.outcome is Outcome.COMPLETED and console.belt_stopped()
    started = time.monotonic()
    await console.link.close(timeout_s=1.0)
    assert time.monotonic() - started < 1.5


async def test_killing_the_broker_mid_session_stops_no_belt(mosquitto: Mosquitto) -> None:
    console = Console(mosquitto.url, "tm-08", [40, 40])
    async with Spy(mosquitto.url, "retrotread/tm-08/state") as spy:
        await spy.wait_for(lambda s: (s.json()["actual_speed_mph"] or 0) > 1)
    mosquitto.kill()
    await asyncio.sleep(0.5)  # real time: the console notices the broker is gone meanwhile
    assert not console.task.done() and not console.belt_stopped()
    mosquitto.start()  # back on the same port: the console reconnects and says it is online
    async with Spy(mosquitto.url, "retrotread/tm-08/#") as spy:
        await spy.wait_for(lambda s: s.topic.endswith("/availability") and s.payload == b"online")
        summary = await within(20, console.task)
    assert summary.outcome is Outcome.COMPLETED and summary.belt_stopped
    assert not any(
        isinstance(e, SessionEnded) and e.outcome is not Outcome.COMPLETED for e in console.events
    )
    await console.link.close()


async def test_a_stalled_broker_never_delays_a_stop(mosquitto: Mosquitto) -> None:
    console = Console(mosquitto.url, "tm-09", [60, 60])
    async with Spy(mosquitto.url, "retrotread/tm-09/state") as spy:
        await spy.wait_for(lambda s: (s.json()["actual_speed_mph"] or 0) > 1)
    mosquitto.pause()
    try:
        for n in range(2000):  # far more than the queue holds: the oldest go
            console.session.notify(f"flood {n}")
        asked = time.monotonic()
        console.session.stop()
        issued = [
            e for e in console.events if isinstance(e, CommandIssued) and e.command is Command.STOP
        ]
        await within(
            5,
            _until(
                lambda: any(
                    isinstance(e, CommandIssued) and e.command is Command.STOP
                    for e in console.events
                )
            ),
        )
        assert time.monotonic() - asked < 0.1, issued
        summary = await within(20, console.task)
        assert summary.belt_stopped and console.belt_stopped()
        assert console.link.dropped > 0
        started = time.monotonic()
        await console.link.close(timeout_s=1.0)
        assert time.monotonic() - started < 1.5
    finally:
        mosquitto.unpause()
