"""The served walker view in a real headless Chromium: the big countdown, the cue in the
handrail's colour and a "ready" hint before the go; it counts down once the operator gives the
go and shows the STOP; and whatever the page sends, nothing reaches the belt.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from retrotread import cues
from retrotread.events import StopReason
from tests.tui.served import Served, chromium, seconds_shown, serve, text_of, wait_until

__all__ = ["serve"]

GREEN = "rgb(46, 125, 50)"  # hands free, as on the operator console
YELLOW = "rgb(212, 160, 23)"  # light touch
RED = "rgb(198, 40, 40)"  # both hands (and a STOP)

#: Run in the walker's page: its own socket to the walker endpoint, sending everything an
#: operator would (the token included); resolves with the close code the server gave.
SEND_FROM_THE_PAGE = """
const [token, done] = arguments;
const ws = new WebSocket(`ws://${location.host}/ws/walker`);
ws.onmessage = () => {
  ws.send(JSON.stringify({type: "hello", token}));
  ws.send(JSON.stringify({type: "command", command: "go"}));
};
ws.onclose = (event) => done(event.code);
"""


def _operator(served: Served, command: str) -> None:
    """An operator's view (with the secret) gives one command."""

    async def send() -> None:
        async with (
            aiohttp.ClientSession() as client,
            client.ws_connect(f"{served.ws_base}/ws/operator", origin=served.base) as ws,
        ):
            await ws.send_json({"type": "hello", "token": served.token})
            await ws.send_json({"type": "command", "command": command, "id": 1})
            async for message in ws:
                data = message.json()
                if data.get("type") == "answer":
                    assert data["done"], data
                    return

    asyncio.run(send())


def _background(browser: Any, element_id: str) -> str:
    colour: str = browser.execute_script(
        "return getComputedStyle(document.getElementById(arguments[0])).backgroundColor;",
        element_id,
    )
    return colour


@pytest.mark.realtime
def test_the_served_walker_view_shows_the_countdown_and_the_cue(serve: Any, tmp_path: Path) -> None:
    served = serve()
    with chromium(tmp_path / "profile") as browser:
        browser.get(served.walker_url)
        wait_until(lambda: "READY" in text_of(browser, "hint"), "the ready hint before the go")
        assert seconds_shown(text_of(browser, "countdown")) == 30  # the warm-up's full time
        assert text_of(browser, "headline") == cues.handrail("hands-free").upper()
        assert _background(browser, "cue") == GREEN
        size = browser.execute_script(
            "return [parseFloat(getComputedStyle(document.getElementById('countdown')).fontSize),"
            " window.innerHeight];"
        )
        assert size[0] >= size[1] / 3  # very large: a third of the screen or more
        # Nothing on the walker's page could control anything, and no operator's form.
        assert browser.find_elements(By.CSS_SELECTOR, "button, input, form, select, textarea") == []
        assert "How did it go" not in browser.page_source

        # Keys on the walker's page do nothing; a socket opened from the page and sending the
        # operator's secret and the go is closed as read-only.
        ActionChains(browser).send_keys(Keys.ENTER, "s", " ", "n", "+").perform()
        code = browser.execute_async_script(SEND_FROM_THE_PAGE, served.token)
        assert code == 4403
        assert "READY" in text_of(browser, "hint")
        assert "start" not in served.link_commands()

        # The operator's go: the walker's countdown runs.
        _operator(served, "go")
        wait_until(
            lambda: seconds_shown(text_of(browser, "countdown")) <= 28, "the countdown running"
        )
        assert text_of(browser, "hint") == ""  # no hint while the program runs
        assert served.link_commands().count("start") == 1

        # STOP from the operator: the walker reads what the voice says, on red.
        _operator(served, "stop")
        stop_words = cues.stopped(StopReason.OPERATOR) or ""
        wait_until(lambda: stop_words in text_of(browser, "call"), "the STOP")
        assert _background(browser, "cue") == RED
        wait_until(lambda: text_of(browser, "hint") == "Session over", "the session over")
        assert "How did it go" not in browser.page_source
    entries = served.entries()
    assert entries[-1]["event"] == "closed" and entries[-1]["stopped"] is True


@pytest.mark.realtime
def test_the_walker_view_shows_the_light_touch_colour_in_a_retro_block(
    serve: Any, tmp_path: Path
) -> None:
    program = """\
name = "retro-first"
description = "a turn-around, then light touch"
[[blocks]]
kind = "turn-around"
duration = "5s"
[[blocks]]
kind = "retro"
duration = "20s"
speed = 3.0
handrail = "light-touch"
"""
    served = serve(program=program)
    with chromium(tmp_path / "profile") as browser:
        browser.get(served.walker_url)
        wait_until(lambda: "READY" in text_of(browser, "hint"), "the ready hint")
        assert text_of(browser, "headline") == cues.turn_instruction("rear").upper()
        _operator(served, "go")
        wait_until(lambda: text_of(browser, "hint") == "", "the program running")
        # The turn's 3-2-1 fills the big digits, as on the console (issue 19).
        wait_until(lambda: text_of(browser, "countdown") in ("3", "2", "1"), "the 3-2-1")
        counting = "return document.getElementById('countdown').classList.contains('counting');"
        assert browser.execute_script(counting)
        _operator(served, "skip")  # on to the retro block without waiting out the turn
        wait_until(
            lambda: text_of(browser, "headline") == cues.handrail("light-touch").upper(),
            "the retro block's cue",
        )
        assert _background(browser, "cue") == YELLOW
        _operator(served, "stop")
        wait_until(lambda: text_of(browser, "hint") == "Session over", "the session over")
