"""The walker view through Pilot: the big countdown and the cue, the voice's words, the keys."""

from __future__ import annotations

from retrotread import cues
from retrotread.tui.screens.run import RunScreen
from retrotread.tui.screens.walker import WalkerScreen
from retrotread.tui.widgets.countdown import BigCountdown
from tests.tui.console import advance, console, go, settle, until

SIZE = (80, 24)


def walker(app: object) -> WalkerScreen:
    screen = app.screen  # type: ignore[attr-defined]
    assert isinstance(screen, WalkerScreen), screen
    return screen


async def test_the_walker_view_shows_only_the_countdown_and_the_cue() -> None:
    app = console(walker=True)
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        view = walker(app)
        assert [w.id for w in view.children] == ["walker-countdown", "walker-cue"]
        assert view.query_one(BigCountdown).seconds == 10
        assert view.cue_text == "HANDS FREE. EASY PACE, RELAX THE SHOULDERS"
        await advance(pilot, 5)
        assert view.query_one(BigCountdown).seconds == 5
        assert view.cue_text.endswith("\nNext: turn around, both handrails.")  # the voice's words
        await advance(pilot, 2)
        assert view.cue_text.endswith("\nThree.")
        assert view.query_one(BigCountdown).has_class("-counting")
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
        await until(pilot, lambda: not isinstance(app.screen, WalkerScreen), "the summary")


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
