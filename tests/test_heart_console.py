"""Heart rate on the operator console and the walker view (Pilot, in-process simulator)."""

from __future__ import annotations

from retrotread.clinic.heart import HeartRateAlert, HeartRateSample
from tests.tui.console import console, go, run_screen, settle

SIZE = (100, 30)


async def test_the_console_and_the_walker_view_show_the_heart_rate_and_the_alert() -> None:
    app = console(walker=True)
    async with app.run_test(size=SIZE) as pilot:
        await go(pilot)
        session = app.session
        assert session is not None
        walker = app.screen
        screen = run_screen(app)
        assert not screen.query_one("#heart-rate").display  # no strap, nothing shown
        now = session.clock.now()
        session.emit(HeartRateSample(now, 118, 130, False))
        await settle(pilot)
        assert screen.query_one("#heart-rate").display
        assert str(screen.query_one("#heart-rate").render()) == "♥ 118 bpm (ceiling 130)"
        assert walker.cue_text.endswith("\n♥ 118 bpm (ceiling 130)")  # type: ignore[attr-defined]
        cue = "Heart rate 133, above 130. Slowing down: keep walking, breathe."
        session.emit(HeartRateAlert(now, cue, 133, 130, True))
        session.emit(HeartRateSample(now, 133, 130, True))
        await settle(pilot)
        assert screen.query_one("#heart-rate").has_class("-over")
        assert "slowed to recover" in str(screen.query_one("#heart-rate").render())
        assert cue in walker.cue_text  # type: ignore[attr-defined]  # the voice's words, shown
