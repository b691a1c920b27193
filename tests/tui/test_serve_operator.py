"""The served operator's view in a real headless Chromium: without the secret a page cannot
control the belt; with it, a second view mirrors the first and both drive the one session.
What reached the belt is read from the simulator's journal.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.tui.served import children, chromium, seconds_shown, serve, text_of, wait_until

__all__ = ["serve"]

PASSWORD = "correct horse battery staple"

#: Run in a page that has no secret: its own socket to the operator's endpoint, trying the go
#: with no hello and then with a made-up token; resolves with the close code and what it got.
FORGE_FROM_THE_PAGE = """
const done = arguments[0];
const ws = new WebSocket(`ws://${location.host}/ws/operator`);
const got = [];
ws.onopen = () => {
  ws.send(JSON.stringify({type: "command", command: "go"}));
  ws.send(JSON.stringify({type: "hello", token: "guessed"}));
  ws.send(JSON.stringify({type: "command", command: "go"}));
};
ws.onmessage = (event) => got.push(JSON.parse(event.data).type);
ws.onclose = (event) => done([event.code, got]);
"""


def _auth(browser: Any) -> str:
    state: str = browser.execute_script("return document.body.dataset.auth;")
    return state


def _press(browser: Any, *keys: str) -> None:
    ActionChains(browser).send_keys(*keys).perform()


@pytest.mark.realtime
def test_a_page_without_the_secret_cannot_control_the_belt(serve: Any, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    served = serve("--password-file", str(password_file))
    with chromium(tmp_path / "profile") as browser:
        browser.get(f"{served.base}/")  # the address without the token
        wait_until(lambda: _auth(browser) == "locked", "the page locked")
        lock = browser.find_element(By.ID, "lock")
        assert lock.is_displayed() and "This console is locked" in lock.text
        assert not browser.find_element(By.ID, "console").is_displayed()
        assert not browser.find_element(By.ID, "stop").is_displayed()
        _press(browser, Keys.ENTER, "g", " ", "n", "e", "+")  # the console's keys

        code, got = browser.execute_async_script(FORGE_FROM_THE_PAGE)
        assert code == 4401 and got == ["denied"]

        field = browser.find_element(By.ID, "password")
        field.send_keys("wrong horse battery staple", Keys.ENTER)
        wait_until(
            lambda: "wrong or missing secret" in text_of(browser, "lock-reason"),
            "the wrong password refused",
        )
        assert _auth(browser) == "denied"
        assert "start" not in served.link_commands()  # nothing reached the belt

        # The right password opens the console: the belt still waits for the go.
        field.clear()
        field.send_keys(PASSWORD, Keys.ENTER)
        wait_until(lambda: _auth(browser) == "granted", "the console unlocked")
        wait_until(lambda: "READY" in text_of(browser, "status"), "ready for the go")
    assert "start" not in served.link_commands()
    assert served.output().count("refused an operator view: wrong or missing secret") == 2


@pytest.mark.realtime
def test_a_second_operator_view_mirrors_the_first_and_starts_no_second_session(
    serve: Any, tmp_path: Path
) -> None:
    served = serve()
    with chromium(tmp_path / "profile") as browser:
        browser.get(served.operator_url)
        wait_until(lambda: "READY" in text_of(browser, "status"), "the first view ready")
        assert "token=" not in browser.current_url  # taken out of the address bar
        first = browser.current_window_handle
        browser.switch_to.new_window("tab")
        browser.get(served.operator_url)
        wait_until(lambda: "READY" in text_of(browser, "status"), "the second view ready")
        second = browser.current_window_handle
        assert served.entries() == []  # two views, and still nothing sent to the belt

        browser.switch_to.window(first)
        _press(browser, Keys.ENTER)  # the go, from the first view's keyboard
        served.wait_for_journal(lambda e: any(x["name"] == "start" for x in e), "the go")

        browser.switch_to.window(second)
        wait_until(lambda: text_of(browser, "status") == "running", "the second view running")
        shown = wait_until(
            lambda: (s := seconds_shown(text_of(browser, "countdown"))) <= 28 and s,
            "the second view counting down",
        )
        assert "Warm-up" in text_of(browser, "block-title")
        assert browser.find_element(By.ID, "go").get_attribute("disabled")  # no second go

        pressed = time.monotonic()
        browser.find_element(By.ID, "stop").click()
        entries = served.wait_for_journal(
            lambda e: bool(e) and e[-1]["event"] == "closed", "the session closed"
        )
        stop_at = next(e["time"] for e in entries if e.get("name") == "stop")

        browser.switch_to.window(first)
        wait_until(lambda: "Session over" in text_of(browser, "summary"), "the first view's end")
        assert "belt stopped" in text_of(browser, "summary")
        assert seconds_shown(text_of(browser, "countdown")) <= shown
    commands = served.link_commands()
    assert commands.count("start") == 1 and commands.index("stop") > commands.index("start")
    assert [e["event"] for e in entries].count("closed") == 1  # one session on the machine
    assert children(served.pid) == []  # no console process per page
    assert served.output().count("operator view connected") == 2
    print(f"\nSTOP clicked in the second view -> stop written: {(stop_at - pressed) * 1000:.1f} ms")
