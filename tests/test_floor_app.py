"""``retrotread floor`` through Pilot: the tiles (snapshots at a fixed size, from fixed
states), the large view, and a STOP ALL that only the typed words confirm."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

from retrotread.floor.app import ConsoleScreen, FloorApp, StopAllScreen, TileView
from retrotread.floor.broker import Broker
from retrotread.floor.topics import encode
from retrotread.floor.watch import FloorWatcher

SnapCompare = Callable[..., bool]
NOW = 1000.0


def state(console_id: str, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "v": 1,
        "console": console_id,
        "t": 0.0,
        "device": "simulator",
        "program": "first-week",
        "client": None,
        "engine": "running",
        "belt": "running",
        "block": {"title": "Retro walk", "kind": "retro", "label": "RETRO", "index": 3, "of": 9},
        "countdown": None,
        "block_remaining_s": 42.0,
        "program_elapsed_s": 190.0,
        "program_remaining_s": 650.0,
        "target_speed_mph": 2.8,
        "target_incline_pct": 2.0,
        "actual_speed_mph": 2.7,
        "actual_incline_pct": 2.0,
        "link_up": True,
        "hold": None,
        "hold_kind": None,
        "stop_requested": False,
        "fault": None,
        "ended": None,
        "remote": None,
    }
    return {**base, **changes}


def fed_floor() -> FloorApp:
    """Six consoles in six situations, as of a fixed moment."""
    clock = [NOW]
    watcher = FloorWatcher(Broker.from_url("mqtt://floor.example:1883"), sender="desk")
    watcher.monotonic = lambda: clock[0]
    feeds: list[tuple[str, dict[str, Any], bool]] = [
        ("tm-01", state("tm-01", client="J.D."), False),
        ("tm-02", state("tm-02", countdown=3, block_remaining_s=3.0, client="Ann Lee"), False),
        (
            "tm-03",
            state(
                "tm-03",
                engine="paused",
                link_up=False,
                hold="the link to the treadmill was lost",
                hold_kind="link-lost",
                fault={"kind": "link-lost", "message": "no answer", "fatal": False},
            ),
            False,
        ),
        ("tm-04", state("tm-04", program="uphill", target_speed_mph=1.5), True),  # kept only
        (
            "tm-05",
            state(
                "tm-05",
                engine="stopped",
                block=None,
                target_speed_mph=None,
                ended={"outcome": "stopped", "detail": "STOP", "belt_stopped": True},
                remote="stop by desk",
            ),
            False,
        ),
        ("tm-06", state("tm-06"), False),
    ]
    for console_id, payload, retained in feeds:
        watcher.handle(f"retrotread/{console_id}/availability", b"online")
        watcher.handle(f"retrotread/{console_id}/state", encode(payload), retained=retained)
    watcher.handle("retrotread/tm-06/availability", b"offline")
    return FloorApp(watcher, stale_after_s=5.0, listen=False)


async def settle(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, FloorApp)
    await app.refresh_tiles()
    await pilot.pause()


def test_the_floor(snap_compare: SnapCompare) -> None:
    assert snap_compare(fed_floor(), terminal_size=(120, 40), run_before=settle)


def test_one_console_large(snap_compare: SnapCompare) -> None:
    async def open_third(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("right", "right", "enter")
        await pilot.pause()

    assert snap_compare(fed_floor(), terminal_size=(120, 40), run_before=open_third)


def test_the_stop_all_question(snap_compare: SnapCompare) -> None:
    async def ask(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("A")
        await pilot.pause()

    assert snap_compare(fed_floor(), terminal_size=(120, 40), run_before=ask)


async def test_tiles_say_what_each_console_is_doing() -> None:
    app = fed_floor()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        tiles = {w.console_id: str(w.render()) for w in app.query(TileView)}
        assert list(tiles) == [f"tm-0{n}" for n in range(1, 7)]
        assert "J.D." in tiles["tm-01"] and "2.8" in tiles["tm-01"]
        assert "3..." in tiles["tm-02"]
        assert "HOLD link-lost" in tiles["tm-03"] and "LINK LOST" in tiles["tm-03"]
        assert "STALE" in tiles["tm-04"]  # the broker kept it; the console has not spoken
        assert "ENDED" in tiles["tm-05"] and "stop by desk" in tiles["tm-05"]
        assert "OFFLINE" in tiles["tm-06"]
        assert app.query_one("#tile-tm-03").has_class("-fault")
        # time passes without a word from tm-01: its tile goes stale
        app.watcher.monotonic = lambda: NOW + 6
        await settle(pilot)
        assert app.query_one("#tile-tm-01").has_class("-stale")


async def test_stop_all_needs_the_words_typed() -> None:
    app = fed_floor()
    answers: list[bool | None] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("A")
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, StopAllScreen)
        modal.dismiss = lambda result=None: answers.append(result)  # type: ignore[method-assign,assignment,misc]
        await pilot.press("enter")  # Enter alone
        await pilot.press("A", "enter")  # the key again, then Enter
        await pilot.press(*"STOP", "enter")
        await pilot.press(*"stop all", "enter")
        assert answers == []
        assert "not confirmed" in str(modal.query_one("#hint").render())
        modal.query_one("#words", Input).value = ""
        await pilot.press(*"STOP ALL", "enter")
        assert answers == [True]


async def test_escape_cancels_stop_all_and_leaves_the_large_view() -> None:
    app = fed_floor()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("A")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert len(app.screen_stack) == 1
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConsoleScreen) and app.screen.console_id == "tm-01"
        await pilot.press("escape")
        await pilot.pause()
        assert len(app.screen_stack) == 1


async def test_a_stop_with_no_broker_says_it_was_not_sent() -> None:
    app = fed_floor()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("s")
        for _ in range(20):
            await pilot.pause(0.02)
        await settle(pilot)
        assert "STOP NOT sent" in str(app.query_one("#tile-tm-01", TileView).render())
