"""``retrotread floor``: every console on the broker on one screen, STOP any or all.

The only module of :mod:`retrotread.floor` that imports Textual. The tiles come from a
:class:`~retrotread.floor.watch.FloorWatcher` (the broker's messages); each key sends a signed
command through it. STOP ALL asks for the words STOP ALL typed out: Enter alone, a stray key
or a second press of ``A`` never confirms it.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Input, Label, Static

from retrotread.errors import RetrotreadError
from retrotread.floor.auth import RemoteCommand
from retrotread.floor.watch import (
    CONFIRM_WORDS,
    STALE_AFTER_S,
    FloorWatcher,
    Tile,
    tile_status,
)


def _mph(value: Any) -> str:
    return "  —  " if value is None else f"{float(value):.1f}"


def _clock(seconds: Any) -> str:
    whole = int(max(float(seconds or 0), 0))
    return f"{whole // 60}:{whole % 60:02d}"


def tile_text(tile: Tile, now: float, stale_after_s: float, *, large: bool = False) -> Text:
    state = tile.state or {}
    status, _ = tile_status(tile, now, stale_after_s)
    text = Text()
    text.append(tile.console_id, style="bold")
    client = state.get("client")
    text.append(f"  {client}" if client else "", style="italic")
    text.append(f"  {status}\n", style="bold reverse" if status != "RUNNING" else "bold")
    block = state.get("block")
    text.append(f"{state.get('program') or 'no program'}\n")
    if block:
        text.append(f"{block.get('label')} {block.get('index')}/{block.get('of')} ")
        text.append(f"{block.get('title')}\n", style="bold")
    else:
        text.append("no block\n")
    countdown = state.get("countdown")
    if block:
        left = _clock(state.get("block_remaining_s"))
        text.append(f"block {left} left" + (f"   {countdown}..." if countdown else "") + "\n")
    target, actual = state.get("target_speed_mph"), state.get("actual_speed_mph")
    text.append(f"tgt {_mph(target)}  act {_mph(actual)} mph\n")
    incline = state.get("actual_incline_pct")
    link = "link ok" if state.get("link_up", True) else "LINK LOST"
    text.append(f"incline {'—' if incline is None else f'{incline:g}%'}  {link}\n")
    fault = state.get("fault")
    if large:
        remaining = _clock(state.get("program_remaining_s"))
        text.append(f"program {_clock(state.get('program_elapsed_s'))} done, {remaining} to go\n")
        text.append(f"device {state.get('device', '?')}\n")
        if state.get("hold"):
            text.append(f"hold: {state['hold']}\n")
        if fault:
            text.append(f"fault: {fault.get('kind')}: {fault.get('message')}\n")
        if tile.last_event:
            text.append(f"last: {tile.last_event}\n")
    elif fault:
        text.append(f"{fault.get('kind')}\n", style="bold")
    if state.get("remote"):
        text.append(f"floor: {state['remote']}\n")
    if tile.sent:
        text.append(f"{tile.sent}\n", style="bold")
    return text


class TileView(Static, can_focus=True):
    """One console's tile; focus selects it."""

    def __init__(self, console_id: str) -> None:
        super().__init__(id=f"tile-{console_id}", classes="tile")
        self.console_id = console_id


class ConsoleScreen(Screen[None]):
    """One console, large."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("s", "stop_one", "STOP"),
        Binding("p", "pause_one", "Pause"),
    ]

    def __init__(self, console_id: str) -> None:
        super().__init__()
        self.console_id = console_id

    def compose(self) -> ComposeResult:
        yield Static(id="large")
        yield Static("s STOP   p pause   escape back to the floor", id="keys")

    def on_mount(self) -> None:
        self.refresh_tile()

    def refresh_tile(self) -> None:
        app = self.app
        assert isinstance(app, FloorApp)
        tile = app.watcher.tiles.get(self.console_id)
        if tile is None:
            return
        now = app.watcher.monotonic()
        _, kind = tile_status(tile, now, app.stale_after_s)
        large = self.query_one("#large", Static)
        large.update(tile_text(tile, now, app.stale_after_s, large=True))
        large.set_classes(f"-{kind}")

    def action_stop_one(self) -> None:
        app = self.app
        assert isinstance(app, FloorApp)
        app.send(self.console_id, RemoteCommand.STOP)

    def action_pause_one(self) -> None:
        app = self.app
        assert isinstance(app, FloorApp)
        app.send(self.console_id, RemoteCommand.PAUSE)


class StopAllScreen(ModalScreen[bool]):
    """STOP ALL: only the words typed out confirm it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, running: int) -> None:
        super().__init__()
        self.running = running

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Label(f"STOP ALL: stop every running belt on this floor ({self.running}).")
            yield Label(f"Type {CONFIRM_WORDS} and press Enter. Escape cancels.")
            yield Input(placeholder="type it here", id="words")
            yield Label("", id="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() == CONFIRM_WORDS:
            self.dismiss(True)
        else:
            self.query_one("#hint", Label).update(f"not confirmed: type {CONFIRM_WORDS} exactly")

    def action_cancel(self) -> None:
        self.dismiss(False)


class FloorApp(App[None]):
    TITLE = "retrotread floor"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    #floor-title { height: 1; background: $primary; color: $text; padding: 0 1; }
    #tiles { grid-size: 4; grid-rows: 11; grid-gutter: 0 1; height: 1fr; padding: 0 1; }
    .tile { height: 11; border: round $secondary; padding: 0 1; }
    .tile:focus { border: double $accent; }
    .tile.-stale, .tile.-offline { color: $text-muted; border: dashed $warning; }
    .tile.-fault { border: heavy $error; }
    .tile.-ended { border: round $success; }
    #floor-keys, #keys { height: 1; dock: bottom; padding: 0 1; }
    #large { height: 1fr; border: double $accent; padding: 1 2; }
    #large.-fault { border: heavy $error; }
    #confirm { width: 64; height: auto; border: heavy $error; background: $surface;
               padding: 1 2; }
    StopAllScreen { align: center middle; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "stop_selected", "STOP"),
        Binding("p", "pause_selected", "Pause"),
        Binding("A", "stop_all", "STOP ALL"),
        Binding("enter", "open_selected", "Large"),
        Binding("right,down", "app.focus_next", "Next", show=False),
        Binding("left,up", "app.focus_previous", "Previous", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self, watcher: FloorWatcher, *, stale_after_s: float = STALE_AFTER_S, listen: bool = True
    ) -> None:
        super().__init__()
        self.watcher = watcher
        self.stale_after_s = stale_after_s
        self.listen = listen  # False: a test feeds the watcher itself
        self._watch_task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def compose(self) -> ComposeResult:
        yield Static(id="floor-title")
        yield Grid(id="tiles")
        yield Static(
            "arrows select  enter large  s STOP  p pause  A STOP ALL  q quit", id="floor-keys"
        )

    async def on_mount(self) -> None:
        if self.listen:
            self._watch_task = asyncio.create_task(self.watcher.run(), name="floor-watcher")
        await self.refresh_tiles()
        self.set_interval(0.25, self.refresh_tiles)

    async def on_unmount(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()

    async def refresh_tiles(self) -> None:
        watcher = self.watcher
        grid = self.query_one("#tiles", Grid)
        shown = {w.console_id: w for w in grid.query(TileView)}
        new = [TileView(cid) for cid in sorted(watcher.tiles) if cid not in shown]
        for gone in set(shown) - set(watcher.tiles):
            await shown.pop(gone).remove()
        if new:
            await grid.mount_all(new)
            ordered = sorted(grid.query(TileView), key=lambda w: w.console_id)
            for index, widget in enumerate(ordered[1:], 1):
                grid.move_child(widget, after=ordered[index - 1])
        now = watcher.monotonic()
        running = 0
        for widget in grid.query(TileView):
            tile = watcher.tiles[widget.console_id]
            _, kind = tile_status(tile, now, self.stale_after_s)
            running += kind == "ok" and tile.running
            widget.update(tile_text(tile, now, self.stale_after_s))
            widget.set_classes(f"tile -{kind}")
        where = "connected" if watcher.connected.is_set() else (watcher.problem or "connecting")
        self.query_one("#floor-title", Static).update(
            f"retrotread floor — {watcher.broker} ({where}) — {len(watcher.tiles)} consoles, "
            f"{running} running"
        )
        if isinstance(self.screen, ConsoleScreen):
            self.screen.refresh_tile()
        if self.focused is None and len(self.screen_stack) == 1:  # the floor itself
            first = next(iter(grid.query(TileView)), None)
            if first is not None:
                first.focus()

    def selected(self) -> str | None:
        return self.focused.console_id if isinstance(self.focused, TileView) else None

    def send(self, console_id: str, command: RemoteCommand) -> None:
        task = asyncio.create_task(self._send(console_id, command))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, console_id: str, command: RemoteCommand) -> None:
        try:
            await self.watcher.send(console_id, command)
        except RetrotreadError as err:
            self.notify(str(err), severity="error", timeout=10)
        else:
            self.notify(f"{command.value.upper()} sent to {console_id}")
        await self.refresh_tiles()

    def action_stop_selected(self) -> None:
        if (console_id := self.selected()) is not None:
            self.send(console_id, RemoteCommand.STOP)

    def action_pause_selected(self) -> None:
        if (console_id := self.selected()) is not None:
            self.send(console_id, RemoteCommand.PAUSE)

    def action_open_selected(self) -> None:
        if (console_id := self.selected()) is not None:
            self.push_screen(ConsoleScreen(console_id))

    def action_stop_all(self) -> None:
        self.push_screen(StopAllScreen(len(self.watcher.targets())), self._stop_all_answered)

    def _stop_all_answered(self, confirmed: bool | None) -> None:
        if confirmed:
            task = asyncio.create_task(self._stop_all())
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _stop_all(self) -> None:
        failed = await self.watcher.send_all(RemoteCommand.STOP)
        if failed:
            self.notify(f"STOP NOT sent to {', '.join(failed)}", severity="error", timeout=30)
        else:
            self.notify("STOP sent to every running console")
        await self.refresh_tiles()
