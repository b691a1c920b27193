"""The walker view through Pilot: the big countdown and the cue, the voice's words, the keys."""

from __future__ import annotations

from textual.color import Color
from textual.widgets import Static

from retrotread import cues
from retrotread.tui.app import ConsoleApp
from retrotread.tui.screens.run import RunScreen
from retrotread.tui.screens.summary import SummaryScreen
from retrotread.tui.screens.walker import WalkerScreen
from retrotread.tui.widgets.countdown import BigCountdown
from retrotread.walker import HINTS, WalkerPhase, cue_colour
from tests.tui.console import advance, console, go, run_screen, settle, until

SIZE = (80, 24)


def screen_text(app: ConsoleApp) -> str:
    """Every character on the terminal now, as drawn (what a person sees)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def walker(app: object) -> WalkerScreen:
    screen = app.screen  # type: ignore[attr-defined]
    assert isinstance(screen, WalkerScreen), screen
    return screen


async def test_the_walker_view_shows_only_the_countdown_and_the_cue() -> None:
    app = console(walker=True)
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        view = walker(app)
        assert [w.id for w in view.children] == ["walker-hint", "walker-countdown", "walker-cue"]
        assert view.query_one(BigCountdown).seconds == 10
        assert view.hint == ""  # nothing above the countdown while the program runs
        assert view.cue_text == "HANDS FREE. EASY PACE, RELAX THE SHOULDERS"
        await advance(pilot, 5)
        assert view.query_one(BigCountdown).seconds == 5
        assert view.cue_text.endswith("\nNext: turn around, both handrails.")  # the voice's words
        await advance(pilot, 2)
        assert view.cue_text.endswith("\nThree.")
        assert view.query_one(BigCountdown).has_class("-counting")
        assert view.query_one(BigCountdown).text == "3"  # the 3-2-1 fills the big digits
        await until(pilot, lambda: view.step.index == 1, "the turn-around")
        assert view.cue_text == "HOLD BOTH HANDRAILS, TURN TO FACE THE REAR"
        assert view.query_one("#walker-cue").has_class("-turn")
        await until(pilot, lambda: view.step.index == 2, "the retro block")
        assert view.query_one(BigCountdown).seconds == 10
        await advance(pilot, 3)
        await pilot.press("space")  # pause from the walker view
        await settle(pilot)
        assert view.cue_text.endswith("\n" + cues.PAUSED)
        await pilot.press("space")
        await settle(pilot)
        assert view.cue_text.endswith("\nResuming. Hold both handrails.")
        await pilot.press("s")  # STOP from the walker view
        await settle(pilot)
        assert app.session is not None and app.session.stop_requested
        await until(pilot, lambda: app.last_summary is not None, "the session's end")
        await settle(pilot)
        assert app.screen is view  # the rear screen keeps the walker's view


async def test_w_switches_between_the_operator_and_walker_views() -> None:
    app = console()
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        await advance(pilot, 2)
        assert isinstance(app.screen, RunScreen)
        await pilot.press("w")
        await settle(pilot)
        view = walker(app)
        assert view.query_one(BigCountdown).seconds == 8  # joins the block where it is
        await pilot.press("w")
        await settle(pilot)
        assert isinstance(app.screen, RunScreen)
        await pilot.press("m")  # the mute key reaches the console from either view
        await settle(pilot)
        assert app.muted


async def test_the_mute_key_silences_the_voice(tmp_path: object) -> None:
    from pathlib import Path

    from retrotread.speech import SpeechSettings
    from tests.speech_support import sink_player

    card = Path(str(tmp_path)) / "card"
    app = console(speech=SpeechSettings(player=sink_player(card)))
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        speaker = app.speaker
        assert speaker is not None and not speaker.muted
        await until(pilot, lambda: speaker.queue.speaking is not None, "the warm-up's cue spoken")
        await pilot.press("m")
        await settle(pilot)
        assert app.muted and speaker.muted
        await advance(pilot, 6)  # "Next: turn around", "Three." are not said while muted
        said = [(s.utterance.text, s.outcome.value) for s in speaker.queue.history]
        assert said[0][1] == "interrupted"  # the block start, cut by the mute key
        assert all(outcome != "spoken" for _, outcome in said[1:]), said
        await pilot.press("m")
        await settle(pilot)
        assert not speaker.muted
        await speaker.close(drain_s=0)


async def test_the_walker_view_says_ready_before_the_go() -> None:
    app = console(walker=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: run_screen(app).waiting_for_go, "ready")
        await settle(pilot)
        view = walker(app)
        assert view.hint == HINTS[WalkerPhase.READY]
        hint = view.query_one("#walker-hint", Static)
        assert hint.display and hint.region.height >= 1
        assert "READY" in str(hint.render())
        await go(pilot)
        assert view.hint == "" and not hint.display


async def test_w_before_the_go_opens_a_view_that_says_ready() -> None:
    app = console()
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: run_screen(app).waiting_for_go, "ready")
        await pilot.press("w")
        await settle(pilot)
        assert walker(app).hint == HINTS[WalkerPhase.READY]


async def test_after_stop_the_walker_sees_only_what_is_for_the_walker() -> None:
    """The operator's "How did it go?" form waits under the walker's view until ``w``."""
    app = console(walker=True)
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        await advance(pilot, 3)
        view = walker(app)
        await pilot.press("s")
        await until(pilot, lambda: app.last_summary is not None, "the session's end")
        await settle(pilot)
        assert app.screen is view
        assert view.hint == HINTS[WalkerPhase.ENDED]
        assert view.query_one("#walker-cue").has_class("-stop")
        assert not any(isinstance(screen, SummaryScreen) for screen in app.screen_stack)
        assert "How did it go" not in screen_text(app)
        await pilot.press("w")  # the operator's layout: now the summary and its form
        await until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")


async def test_one_colour_per_handrail_level_on_both_screens() -> None:
    """The run screen's banner and the walker view's cue in the README's colour for each
    level (the short program has them all: hands free, turn, both hands, turn, light touch)."""
    app = console()
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        seen: list[str] = []
        for index in range(5):
            reached = lambda i=index: run_screen(app).step.index == i  # noqa: E731
            await until(pilot, reached, f"block {index}", seconds=12)
            step = run_screen(app).step
            wanted = Color.parse(cue_colour(step).ansi)
            assert run_screen(app).query_one("#cue").styles.background == wanted
            await pilot.press("w")
            await settle(pilot)
            assert walker(app).query_one("#walker-cue").styles.background == wanted
            await pilot.press("w")
            await settle(pilot)
            seen.append(cue_colour(step).name)
        assert seen == ["green", "bright yellow", "red", "bright yellow", "yellow"]
