"""Building and driving the console in tests: the simulator and the session on a clock the test
moves by hand, while Textual runs on its own real timers."""

from __future__ import annotations

import asyncio
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Static

from retrotread.clock import ManualClock
from retrotread.drivers.sim import SimDriver
from retrotread.program import Program, parse_program
from retrotread.scheduler import EngineState
from retrotread.tui.app import ConsoleApp
from retrotread.tui.screens.run import RunScreen
from retrotread.tui.widgets.cue import CueBanner
from retrotread.tui.widgets.next_up import NextUp
from retrotread_sim import SimTreadmill

#: 0-10 warm-up, 10-15 turn, 15-25 retro, 25-30 turn, 30-40 recovery: every kind of cue.
SHORT_PROGRAM = """
name = "console-test"
description = "Every cue the console shows, in forty seconds."

[defaults]
incline = 2.0

[[blocks]]
kind = "warm-up"
name = "Easy forward walk"
duration = 10
speed = 2.5
handrail = "hands-free"
cue = "easy pace, relax the shoulders"

[[blocks]]
kind = "turn-around"

[[blocks]]
kind = "retro"
name = "Retro walk"
duration = 10
speed = 2.8
handrail = "both-hands"
cue = "look over your shoulder now and then"

[[blocks]]
kind = "turn-around"

[[blocks]]
kind = "recovery"
name = "Forward recovery"
duration = 10
speed = 2.5
handrail = "light-touch"
cue = "upright, slight forward lean"
"""


def short_program() -> Program:
    return parse_program(SHORT_PROGRAM, "<console-test>")


class ConsoleUnderTest(ConsoleApp):
    """The console on a :class:`ManualClock`; on the way out the clock runs freely, so a
    session still stopping its belt finishes without the test moving time."""

    def __init__(self, **options: Any) -> None:
        self.manual_clock = ManualClock()
        options.setdefault("programs", [short_program()])
        options.setdefault("scanner", None)
        super().__init__(clock=self.manual_clock, **options)

    async def on_unmount(self) -> None:
        self.manual_clock.run_freely()


def console(
    program: Program | None = None, device: str = "sim://", **options: Any
) -> ConsoleUnderTest:
    """The console opened ready on ``program`` (the short test program by default)."""
    return ConsoleUnderTest(
        program=program or short_program(), device=device, go_straight_to_run=True, **options
    )


async def settle(pilot: Pilot[Any]) -> None:
    """Let the engine's tasks run, their events reach the screen, and the screen redraw."""
    for _ in range(5):
        await asyncio.sleep(0)
    await pilot.pause()


async def advance(pilot: Pilot[Any], seconds: float, step: float = 1.0) -> None:
    """Move program time on by ``seconds``, ``step`` at a time, letting the console catch up."""
    app = pilot.app
    assert isinstance(app, ConsoleUnderTest)
    left = seconds
    while left > 1e-9:
        dt = min(step, left)
        app.manual_clock.advance(dt)
        left -= dt
        await settle(pilot)


async def go(pilot: Pilot[Any]) -> None:
    """Wait for the ready state, then give the go (enter) and let the first block start."""
    app = pilot.app
    assert isinstance(app, ConsoleUnderTest)
    for _ in range(50):
        if run_screen(app).waiting_for_go:
            break
        await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)
    assert app.session is not None
    assert app.session.state.engine is EngineState.RUNNING


async def until(pilot: Pilot[Any], condition: Any, what: str, seconds: float = 10.0) -> None:
    """Advance program time until ``condition()`` holds (bounded), a quarter second a step."""
    for _ in range(round(seconds * 4)):
        if condition():
            return
        await advance(pilot, 0.25, 0.25)
    raise AssertionError(f"not reached within {seconds} s of program time: {what}")


def run_screen(app: ConsoleApp) -> RunScreen:
    assert app.run_screen is not None
    return app.run_screen


def machine(app: ConsoleApp) -> SimTreadmill:
    assert app.session is not None
    driver = app.session.treadmill
    assert isinstance(driver, SimDriver)
    assert driver.machine is not None
    return driver.machine


def cue(app: ConsoleApp) -> tuple[str, str]:
    banner = run_screen(app).query_one(CueBanner)
    return banner.headline, banner.detail


def next_up(app: ConsoleApp) -> str:
    return str(run_screen(app).query_one(NextUp).render())


def text_of(app: ConsoleApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())
