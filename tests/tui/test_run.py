"""The run screen through Pilot, on the in-process simulator, with program time moved by hand."""

from __future__ import annotations

import pytest
from textual.widgets import Button

from retrotread.program.model import BlockKind
from retrotread.scheduler import EngineState
from retrotread.session import Outcome
from retrotread.tui.screens.error import ErrorModal
from retrotread.tui.screens.summary import SummaryScreen
from retrotread.tui.widgets.countdown import BigCountdown
from retrotread.tui.widgets.link import LinkState, LinkStatus
from retrotread.tui.widgets.pace import PacePanel
from retrotread.units import Unit
from tests.tui.console import (
    advance,
    console,
    cue,
    go,
    machine,
    next_up,
    run_screen,
    settle,
    text_of,
    until,
)

SIZE = (80, 24)


def link_commands(app: object, name: str) -> list[float | None]:
    return [c.value for c in machine(app).commands if c.source == "link" and c.name == name]  # type: ignore[arg-type]


def target_mph(app: object) -> float:
    return machine(app).target_speed_kmh / 1.609344  # type: ignore[arg-type]


async def test_nothing_moves_before_the_go() -> None:
    app = console()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: run_screen(app).waiting_for_go, "ready")
        assert "press enter to start the belt" in text_of(app, "#run-status")
        await advance(pilot, 5)
        assert link_commands(app, "start") == []
        assert machine(app).belt_stopped
        await go(pilot)
        await until(pilot, lambda: link_commands(app, "start") != [], "the belt started")


async def test_the_cue_changes_at_each_boundary() -> None:
    app = console()
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        expected = [
            ("HANDS FREE", "Easy pace, relax the shoulders", 2.5),
            ("HOLD BOTH HANDRAILS, TURN TO FACE THE REAR", "", 1.0),
            ("HOLD BOTH HANDRAILS", "Look over your shoulder now and then", 2.8),
            ("HOLD BOTH HANDRAILS, TURN TO FACE THE FRONT", "", 1.0),
            ("LIGHT TOUCH ON THE HANDRAILS", "Upright, slight forward lean", 2.5),
        ]
        steps = app.session.program.steps  # type: ignore[union-attr]
        for index, (step, (headline, detail, speed)) in enumerate(
            zip(steps, expected, strict=True)
        ):
            # Before a turn-around the belt slows over the 3-2-1: the turn speed by then.
            following = steps[index + 1] if index + 1 < len(steps) else None
            turning = following is not None and following.kind is BlockKind.TURN_AROUND
            at_the_end = 1.0 if turning else speed
            assert cue(app) == (headline, detail)
            assert run_screen(app).query_one(BigCountdown).seconds == step.duration_s
            assert step.kind.label in text_of(app, "#block-title")
            desired = app.session.state.target_speed  # type: ignore[union-attr]
            assert desired is not None and desired.mph == pytest.approx(speed, abs=0.006)
            await advance(pilot, step.duration_s - 1)
            assert cue(app) == (headline, detail)  # still this block one second before the end
            assert target_mph(app) == pytest.approx(at_the_end, abs=0.006)  # the belt was told
            assert run_screen(app).query_one(BigCountdown).seconds == 1
            await advance(pilot, 1)
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")
        assert isinstance(app.screen, SummaryScreen)
        assert app.screen.summary.outcome is Outcome.COMPLETED
        assert machine(app).belt_stopped


async def test_countdown_shows_and_rings_before_every_change_unless_muted() -> None:
    app = console()
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        await advance(pilot, 7)  # 3 s left in the warm-up
        assert next_up(app).startswith(" 3 ") and "TURN" in next_up(app)
        assert run_screen(app).query_one(BigCountdown).has_class("-counting")
        await advance(pilot, 2)
        assert next_up(app).startswith(" 1 ")
        assert app.bells == 3
        await pilot.press("m")
        assert "MUTED" in text_of(app, "#mute-state")
        await advance(pilot, 5)  # the turn-around's own 3-2-1 before the retro block
        assert next_up(app).startswith(" 1 ") and "RETRO" in next_up(app)
        assert app.bells == 3
        await pilot.press("m")
        await advance(pilot, 10)  # the retro block's 3-2-1
        assert app.bells == 6


async def test_pause_and_resume() -> None:
    app = console()
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        await advance(pilot, 4)
        await pilot.press("space")
        await settle(pilot)
        session = app.session
        assert session is not None
        assert session.state.engine is EngineState.PAUSED
        assert "PAUSED" in text_of(app, "#run-status")
        await advance(pilot, 8)
        assert run_screen(app).remaining_s == 6  # paused time does not count
        assert machine(app).state.value == "paused"
        await pilot.press("space")
        await advance(pilot, 2)
        assert session.state.engine is EngineState.RUNNING
        assert run_screen(app).remaining_s == 4
        assert "running" in text_of(app, "#run-status")


async def test_skip_and_extend() -> None:
    app = console()
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        await advance(pilot, 3)
        await pilot.press("e")
        await settle(pilot)
        assert run_screen(app).query_one(BigCountdown).seconds == 22  # 7 left + 15
        await advance(pilot, 2)
        assert run_screen(app).remaining_s == 20
        await pilot.press("n")
        await settle(pilot)
        assert cue(app)[0] == "HOLD BOTH HANDRAILS, TURN TO FACE THE REAR"
        assert run_screen(app).step.index == 1


async def test_nudge_within_the_band_until_the_next_block() -> None:
    app = console()
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        await advance(pilot, 15)  # into the retro block: 2.8 mph, band 2.6-3.2
        session = app.session
        assert session is not None
        assert session.state.target_speed is not None
        assert session.state.target_speed.mph == pytest.approx(2.8, abs=0.006)
        await pilot.press("plus")
        await advance(pilot, 1)
        assert session.state.target_speed.mph == pytest.approx(2.9, abs=0.006)
        assert target_mph(app) == pytest.approx(2.9, abs=0.006)
        reading = run_screen(app).query_one(PacePanel).reading
        assert reading is not None and reading.target_speed is not None
        assert reading.target_speed.mph == pytest.approx(2.9, abs=0.006)
        for _ in range(5):
            await pilot.press("plus")
        await settle(pilot)
        assert session.state.target_speed.mph == pytest.approx(3.2, abs=0.01)  # the band's top
        await pilot.press("minus")
        await settle(pilot)
        assert session.state.target_speed.mph == pytest.approx(3.1, abs=0.006)
        await advance(pilot, 10)  # the next block (a turn-around) forgets the nudge
        assert session.state.target_speed.to(Unit.MPH).value <= 1


@pytest.mark.parametrize("key", ["s", "escape"])
async def test_stop_stops_the_belt_at_once(key: str) -> None:
    app = console()
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        await advance(pilot, 17)  # mid retro block
        before = len(link_commands(app, "stop"))
        await pilot.press(key)
        assert len(link_commands(app, "stop")) > before  # sent before any program time passed
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")
        assert machine(app).belt_stopped
        summary = app.screen.summary  # type: ignore[attr-defined]
        assert summary.outcome is Outcome.STOPPED
        assert summary.belt_stopped


async def test_stop_button_with_the_mouse() -> None:
    app = console()
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        await advance(pilot, 3)
        await pilot.click("#stop-button")
        assert link_commands(app, "stop") != []
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")
        assert machine(app).belt_stopped


async def test_stop_while_paused() -> None:
    app = console()
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        await advance(pilot, 3)
        await pilot.press("space")
        await advance(pilot, 2)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")
        assert machine(app).belt_stopped


async def test_quit_stops_the_belt_first() -> None:
    app = console()
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        await advance(pilot, 16)
        await pilot.press("q")
        assert link_commands(app, "stop") != []
        await until(pilot, lambda: app.return_value is not None, "the console to quit")
        assert app.return_value is not None
        assert app.return_value.belt_stopped
    assert machine(app).belt_stopped


class Broken(RuntimeError):
    pass


async def test_an_exception_in_the_ui_still_stops_the_belt() -> None:
    app = console()

    def explode() -> None:
        raise Broken("a widget failed")

    async def break_mid_block() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await go(pilot)
            await advance(pilot, 17)
            assert not machine(app).belt_stopped
            run_screen(app).query_one("#block-title").render = explode  # type: ignore[method-assign]
            run_screen(app).query_one("#block-title").refresh()
            await pilot.pause()

    with pytest.raises(Broken):
        await break_mid_block()
    assert link_commands(app, "stop") != []
    assert machine(app).belt_stopped
    assert app.last_summary is not None and app.last_summary.belt_stopped


async def test_device_lost_mid_block_pauses_the_program() -> None:
    app = console(device="sim://?faults=drop@18+6")  # the link drops 3 s into the retro block
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        await advance(pilot, 18)
        await settle(pilot)
        assert isinstance(app.screen, ErrorModal)
        assert app.screen.problem.title == "Device lost"
        session = app.session
        assert session is not None
        assert session.state.engine is EngineState.PAUSED
        assert run_screen(app).query_one(LinkState).status is LinkStatus.RECONNECTING
        reading = run_screen(app).query_one(PacePanel).reading
        assert reading is not None and not reading.live  # no stale "actual" speed shown
        remaining = run_screen(app).remaining_s
        await advance(pilot, 3)
        assert run_screen(app).remaining_s == remaining  # the program does not run on
        await pilot.press("enter")  # close the message; the program stays paused
        await settle(pilot)
        assert not isinstance(app.screen, ErrorModal)
        assert "PAUSED" in text_of(app, "#run-status")
        await pilot.press("space")  # refused while the link is down
        assert session.state.engine is EngineState.PAUSED
        await advance(pilot, 4)  # the link is back at 24 s
        assert run_screen(app).query_one(LinkState).status is LinkStatus.CONNECTED
        await pilot.press("space")
        await advance(pilot, 2)
        assert session.state.engine is EngineState.RUNNING
        assert run_screen(app).remaining_s == remaining - 2
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")
        assert machine(app).belt_stopped


async def test_stop_from_an_open_error_modal() -> None:
    app = console(device="sim://?faults=safety-key@12")
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        await advance(pilot, 12)
        await settle(pilot)
        assert isinstance(app.screen, ErrorModal)
        assert app.screen.problem.title == "Safety key pulled"
        assert app.session is not None
        assert app.session.state.engine is EngineState.PAUSED
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")
        assert app.screen.summary.outcome is Outcome.STOPPED  # type: ignore[attr-defined]
        assert machine(app).belt_stopped


async def test_resume_from_the_modal_after_a_console_stop() -> None:
    app = console(device="sim://?faults=console-stop@5")
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        await advance(pilot, 5)
        await settle(pilot)
        assert isinstance(app.screen, ErrorModal)
        assert app.screen.problem.title == "Stopped at the treadmill"
        await pilot.press("space")
        await advance(pilot, 3)
        assert not isinstance(app.screen, ErrorModal)
        assert app.session is not None
        assert app.session.state.engine is EngineState.RUNNING
        assert machine(app).state.value == "running"
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")


async def test_a_rejected_command_is_a_modal_and_a_warning() -> None:
    app = console(device="sim://?faults=reject:set-speed=invalid-parameter@12")
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        await advance(pilot, 15)  # the retro block's speed command is refused
        await settle(pilot)
        assert isinstance(app.screen, ErrorModal)
        assert app.screen.problem.title == "Command rejected"
        await pilot.press("enter")
        await settle(pilot)
        assert "not confirmed" in text_of(app, "#warning")
        assert app.session is not None
        assert app.session.state.engine is EngineState.RUNNING
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")


async def test_stop_before_the_go_never_starts_the_belt() -> None:
    app = console()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: run_screen(app).waiting_for_go, "ready")
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")
        assert link_commands(app, "start") == []
        assert app.screen.summary.blocks_done == 0  # type: ignore[attr-defined]


async def test_footer_shows_the_keys() -> None:
    app = console()
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        keys = {key for key, active in app.screen.active_bindings.items() if active.enabled}
        for key in ("space", "s", "n", "e", "plus", "minus", "m", "q"):
            assert key in keys
        assert app.screen.query_one("#stop-button", Button).can_focus is False
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")
