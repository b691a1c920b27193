"""``retrotread floor --serve``: the floor in a real headless Chromium and over raw websockets.

Simulated consoles (sessions on the in-process simulator, each with its FloorLink) publish to a
real Mosquitto; the floor's server watches it in the same event loop. The browser is driven
through selenium from worker threads (``asyncio.to_thread``) so the consoles and the server
keep running while it waits. What reached each belt is what its simulator reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from retrotread.clock import LoopClock
from retrotread.drivers.registry import open_treadmill
from retrotread.drivers.sim import SimDriver
from retrotread.events import Event, Notice
from retrotread.floor.auth import read_secret
from retrotread.floor.broker import Broker
from retrotread.floor.publisher import FloorLink
from retrotread.floor.watch import FloorWatcher
from retrotread.floor.web import FloorServer
from retrotread.options import FloorOptions
from retrotread.program import builtin_programs
from retrotread.session import Session, SessionSummary
from retrotread.vocabulary import Outcome, StopReason
from retrotread.web.access import Secrets, new_token
from tests.mqtt_support import Mosquitto, mosquitto
from tests.tui.served import chromium

__all__ = ["mosquitto"]

SECRET = "a-floor-secret-for-this-test-only"
PASSWORD = "correct horse battery staple"
CLIENTS = ["Ann Lee", "Bo Chen", "Cy Dunn"]
FLOOR_STOP = "STOP from the floor, sent by front desk"


@dataclass
class Console:
    session: Session
    driver: SimDriver
    link: FloorLink
    task: asyncio.Task[SessionSummary]
    events: list[Event] = field(default_factory=list)

    def floor_notices(self) -> list[str]:
        return [e.message for e in self.events if type(e) is Notice and "floor" in e.message]

    async def ended(self, seconds: float = 20.0) -> SessionSummary:
        return await asyncio.wait_for(asyncio.shield(self.task), seconds)

    def belt_stopped(self) -> bool:
        return self.driver.machine is not None and self.driver.machine.belt_stopped


@dataclass
class Rig:
    consoles: list[Console]
    server: FloorServer
    watcher: FloorWatcher
    token: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@pytest.fixture
async def rig(mosquitto: Mosquitto, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """``count`` consoles on the broker (their belts moving) and the floor served on port 0."""
    count = getattr(request, "param", len(CLIENTS))
    secret = tmp_path / "floor.secret"
    secret.write_text(SECRET + "\n")
    clock = LoopClock()
    programs = builtin_programs()
    consoles: list[Console] = []
    watcher = FloorWatcher(
        Broker.from_url(mosquitto.url), sender="front desk", secret=read_secret(secret)
    )
    server = FloorServer(
        watcher, Secrets(new_token(), PASSWORD), host="127.0.0.1", port=0, stale_after_s=5.0
    )
    await server.start()
    watching = asyncio.create_task(watcher.run())
    try:
        for n in range(count):
            driver = open_treadmill("sim://", clock=clock)
            assert isinstance(driver, SimDriver)
            session = Session(programs[n], driver, clock, unattended=True)
            link = FloorLink(
                FloorOptions(
                    broker=mosquitto.url,
                    console_id=f"tm-{n:02d}",
                    client_name="initials",
                    secret_file=str(secret),
                ),
                client_name=CLIENTS[n],
            )
            link.attach(session)
            console = Console(session, driver, link, asyncio.create_task(session.run()))
            session.subscribe(console.events.append)
            consoles.append(console)

        def moving() -> bool:
            tiles = watcher.tiles.values()
            return len(watcher.tiles) == count and all(
                t.heard_at and ((t.state or {}).get("actual_speed_mph") or 0) > 0.5 for t in tiles
            )

        await until(moving, "every belt moving on the floor")
        yield Rig(consoles, server, watcher, server.secrets.token)
    finally:
        for console in consoles:
            if not console.task.done():
                console.session.stop(StopReason.OPERATOR, "the test is over")
            with contextlib.suppress(Exception):
                await console.ended()
            await console.link.close()
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        await server.stop()


async def until(check: Callable[[], Any], what: str, seconds: float = 20.0) -> Any:
    """Wait on this loop (the consoles keep running) until ``check()`` is truthy."""
    deadline = time.monotonic() + seconds
    while not (value := check()):
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.05)
    return value


async def until_in_browser(check: Callable[[], Any], what: str, seconds: float = 20.0) -> Any:
    """The same, with ``check`` (a selenium call, which blocks) run in a worker thread."""
    deadline = time.monotonic() + seconds
    last: Any = None
    while not (last := await asyncio.to_thread(_quietly, check)):
        assert time.monotonic() < deadline, f"not within {seconds} s: {what} (last: {last!r})"
        await asyncio.sleep(0.05)
    return last


def _quietly(check: Callable[[], Any]) -> Any:
    from selenium.common.exceptions import WebDriverException

    try:
        return check()
    except WebDriverException:  # an element replaced while read: look again
        return None


@contextlib.asynccontextmanager
async def browser_at(profile: Path) -> AsyncIterator[Any]:
    opened = chromium(profile)
    browser = await asyncio.to_thread(opened.__enter__)
    try:
        yield browser
    finally:
        await asyncio.to_thread(opened.__exit__, None, None, None)


def tile_statuses(browser: Any) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    return {
        tile.get_attribute("data-console"): tile.get_attribute("data-status")
        for tile in browser.find_elements(By.CSS_SELECTOR, "#tiles .tile")
    }


def text(browser: Any, selector: str) -> str:
    from selenium.webdriver.common.by import By

    found: str = browser.find_element(By.CSS_SELECTOR, selector).text
    return found


# -- in a browser --------------------------------------------------------------------------------


async def test_the_floor_in_a_browser_stop_one_and_stop_all(rig: Rig, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    ids = [f"tm-{n:02d}" for n in range(len(CLIENTS))]
    async with browser_at(tmp_path / "profile") as browser:
        # Read-only: the tiles, live, and not one control on the page.
        await asyncio.to_thread(browser.get, f"{rig.base}/view")
        await until_in_browser(
            lambda: tile_statuses(browser) == dict.fromkeys(ids, "RUNNING"), "three tiles, running"
        )
        assert await asyncio.to_thread(browser.find_elements, By.TAG_NAME, "button") == []
        assert await asyncio.to_thread(browser.find_elements, By.TAG_NAME, "input") == []
        watching = browser.current_window_handle

        # The operator's page, from the link with the token.
        await asyncio.to_thread(browser.switch_to.new_window, "tab")
        await asyncio.to_thread(browser.get, f"{rig.base}/#token={rig.token}")
        await until_in_browser(
            lambda: tile_statuses(browser) == dict.fromkeys(ids, "RUNNING"), "the operator's tiles"
        )
        assert "token=" not in browser.current_url
        tile = await asyncio.to_thread(text, browser, "#tile-tm-00")
        lines = tile.splitlines()
        assert lines[:4] == ["tm-00", "A.L.", "RUNNING", builtin_programs()[0].name], lines
        assert lines[4].startswith("WARM-UP 1/") and lines[5].endswith(" left"), lines
        assert lines[6].startswith("target 2.5 · actual ") and lines[-2:] == ["STOP", "Pause"]

        # STOP on one tile stops that belt, and only that one.
        stop_one = browser.find_element(By.CSS_SELECTOR, "#tile-tm-01 .stop")
        await asyncio.to_thread(stop_one.click)
        stopped = rig.consoles[1]
        summary = await stopped.ended()
        assert summary.outcome is Outcome.STOPPED and summary.reason is StopReason.OPERATOR
        assert "front desk" in summary.detail and summary.belt_stopped and stopped.belt_stopped()
        assert FLOOR_STOP in stopped.floor_notices()
        assert not any(c.task.done() for i, c in enumerate(rig.consoles) if i != 1)
        await until_in_browser(
            lambda: "STOP sent" in text(browser, "#tile-tm-01"), "the tile says it was sent"
        )

        # STOP ALL: Enter alone, or other words, confirm nothing.
        await asyncio.to_thread(browser.find_element(By.ID, "stop-all").click)
        words = browser.find_element(By.ID, "words")
        await until_in_browser(words.is_displayed, "the STOP ALL question")
        assert "(2)" in text(browser, "#confirm-question")  # the two still running
        for typed in ("", "stop all", "STOP"):
            browser.execute_script("document.getElementById('confirm-hint').textContent = ''")
            await asyncio.to_thread(words.clear)
            await asyncio.to_thread(words.send_keys, typed, Keys.ENTER)
            await until_in_browser(
                lambda: "not confirmed" in text(browser, "#confirm-hint"), f"{typed!r} refused"
            )
        running = [c for i, c in enumerate(rig.consoles) if i != 1]
        assert not any(c.task.done() or c.session.stop_requested for c in running)
        await asyncio.to_thread(words.clear)
        await asyncio.to_thread(words.send_keys, "STOP ALL", Keys.ENTER)
        for console in running:
            summary = await console.ended()
            assert summary.outcome is Outcome.STOPPED and summary.belt_stopped
            assert console.belt_stopped() and FLOOR_STOP in console.floor_notices()
        await until_in_browser(
            lambda: not browser.find_element(By.ID, "confirm").is_displayed(), "the question gone"
        )

        # The read-only page followed it all.
        await asyncio.to_thread(browser.switch_to.window, watching)
        await until_in_browser(
            lambda: tile_statuses(browser) == dict.fromkeys(ids, "ENDED"), "every tile ended"
        )


# -- the sockets, raw ----------------------------------------------------------------------------


async def _floor_message(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    while True:
        data: dict[str, Any] = await ws.receive_json(timeout=10)
        if data.get("type") == "floor":
            return data


async def _answer(ws: aiohttp.ClientWebSocketResponse, request: dict[str, Any]) -> dict[str, Any]:
    await ws.send_json({"type": "command", **request})
    while True:
        data: dict[str, Any] = await ws.receive_json(timeout=10)
        if data.get("type") == "answer":
            return data


@pytest.mark.parametrize("rig", [1], indirect=True)
async def test_the_read_only_socket_takes_no_command_and_the_operator_needs_the_secret(
    rig: Rig,
) -> None:
    origin = {"Origin": rig.base}
    console = rig.consoles[0]
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{rig.base}/ws/view", headers={"Origin": "http://evil.example"})
        assert refused.value.status == 403

        # Read-only: it shows the floor; a command closes it, and reaches nothing.
        async with http.ws_connect(f"{rig.base}/ws/view", headers=origin) as ws:
            floor = await _floor_message(ws)
            assert [t["id"] for t in floor["tiles"]] == ["tm-00"]
            assert floor["tiles"][0]["status"] == "RUNNING"
            await ws.send_json({"type": "command", "command": "stop", "console": "tm-00"})
            closing = await ws.receive(timeout=10)
            assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 4403
        heard = rig.watcher.tiles["tm-00"].heard_at
        await until(lambda: rig.watcher.tiles["tm-00"].heard_at != heard, "a newer state")
        assert not console.session.stop_requested and console.floor_notices() == []

        # The operator's socket: nothing without the secret, nor with a wrong one.
        for hello in ({"type": "command", "command": "stop", "console": "tm-00"},
                      {"type": "hello", "token": "guessed"}):  # fmt: skip
            async with http.ws_connect(f"{rig.base}/ws/operator", headers=origin) as ws:
                await ws.send_json(hello)
                denied = await ws.receive_json(timeout=10)
                assert denied["type"] == "denied"
                assert (await ws.receive(timeout=10)).data == 4401
        assert not console.session.stop_requested

        # With the password: the server, not the page, holds the STOP ALL rule.
        async with http.ws_connect(f"{rig.base}/ws/operator", headers=origin) as ws:
            await ws.send_json({"type": "hello", "password": PASSWORD})
            assert (await ws.receive_json(timeout=10))["type"] == "welcome"
            for request, said in [
                ({"command": "stop-all"}, "not confirmed"),
                ({"command": "stop-all", "words": "stop all"}, "not confirmed"),
                ({"command": "start", "console": "tm-00"}, "no such command"),
                ({"command": "stop", "console": "tm-99"}, "no console"),
            ]:
                answer = await _answer(ws, request)
                assert not answer["done"] and said in answer["text"], (request, answer)
            assert not console.session.stop_requested and console.floor_notices() == []
            answer = await _answer(ws, {"command": "stop-all", "words": "STOP ALL", "id": 7})
            assert answer["done"] and answer["id"] == 7, answer
        summary = await console.ended()
        assert summary.outcome is Outcome.STOPPED and summary.belt_stopped
        assert console.belt_stopped() and FLOOR_STOP in console.floor_notices()


# -- the command ---------------------------------------------------------------------------------


def test_retrotread_floor_serve_prints_its_links_and_closes_on_sigterm(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    import urllib.request

    secret = tmp_path / "floor.secret"
    secret.write_text(SECRET + "\n")
    log = tmp_path / "floor.log"
    command = [sys.executable, "-m", "retrotread", "floor", "--mqtt", mosquitto.url]
    refused = subprocess.run(
        [*command, "--serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "--allow-remote" in refused.stderr, refused.stderr
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--floor-secret", str(secret), "--serve", "--port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + 30
        while "read-only view" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        printed = log.read_text()
        view = next(w for w in printed.split() if w.endswith("/view"))
        operator = next(w for w in printed.split() if "/#token=" in w)
        assert operator.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(view, timeout=10) as page:
            assert page.status == 200 and b"retrotread floor" in page.read()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert "the floor server closed" in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- stale tiles ---------------------------------------------------------------------------------


async def test_a_tile_turns_stale_on_the_page_with_time_alone() -> None:
    """No broker: the watcher is fed as the broker would feed it, on a clock the test moves."""
    from retrotread.floor.topics import encode

    now = [1000.0]
    watcher = FloorWatcher(Broker.from_url("mqtt://127.0.0.1:1"), sender="desk")
    watcher.monotonic = lambda: now[0]
    state = {"console": "tm-07", "engine": "running", "program": "uphill", "client": "J.D."}
    watcher.handle("retrotread/tm-07/state", encode(state), retained=True)  # kept from before
    server = FloorServer(watcher, Secrets(new_token()), host="127.0.0.1", port=0)
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{base}/ws/view", headers={"Origin": base}) as ws,
        ):
            tile = (await _floor_message(ws))["tiles"][0]
            assert (tile["status"], tile["kind"], tile["client"]) == ("STALE", "stale", "J.D.")
            watcher.handle("retrotread/tm-07/state", encode(state))  # the console speaks
            tile = (await _floor_message(ws))["tiles"][0]
            assert (tile["status"], tile["kind"], tile["heard_s"]) == ("RUNNING", "ok", 0)
            now[0] += 6.0  # nothing more from it
            tile = (await _floor_message(ws))["tiles"][0]
            assert (tile["status"], tile["heard_s"]) == ("STALE", 6)
            watcher.handle("retrotread/tm-07/availability", b"offline")  # its last will
            assert (await _floor_message(ws))["tiles"][0]["status"] == "OFFLINE"
    finally:
        await server.stop()
