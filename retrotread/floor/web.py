"""``retrotread floor --serve``: the floor in web browsers, served like the console.

A page shows a tile per console from a :class:`~retrotread.floor.watch.FloorWatcher`, live
over a websocket. Two sockets, as the served console's two views:

- ``/`` and ``/ws/operator``: once the page has shown the secret (the token in the printed
  link, or ``--password-file``), each tile has STOP and pause, and the page has STOP ALL,
  which the server carries out only when the words STOP ALL come typed out (the Textual
  floor's rule). Every command is the watcher's, signed with the floor's secret, exactly as
  from the Textual floor's keys, so each console's governor and authorisation decide.
- ``/view`` and ``/ws/view``: read-only. Its handler holds no commands at all; a page that
  sends anything is closed.

Closing the server stops nothing: the belts belong to their consoles.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from aiohttp import WSCloseCode, WSMsgType, web

from retrotread.errors import RetrotreadError
from retrotread.floor.auth import RemoteCommand
from retrotread.floor.watch import CONFIRM_WORDS, STALE_AFTER_S, FloorWatcher, Tile, tile_status
from retrotread.web.access import Secrets, new_token, origin_of, public_name
from retrotread.web.server import CLOSE_READ_ONLY, SEND_TIMEOUT_S, Limits, WebServer

if TYPE_CHECKING:
    from retrotread.web.serve import ServeSettings

#: A tile turns stale with time alone, so the floor is looked at again this often.
LOOK_AGAIN_S = 0.5
MIN_SEND_GAP_S = 0.1  # at most ten floor updates a second per page
CLOSING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _mph(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1f}"


def _clock(seconds: Any) -> str:
    whole = int(max(float(seconds or 0), 0))
    return f"{whole // 60}:{whole % 60:02d}"


def tile_payload(tile: Tile, now: float, stale_after_s: float) -> dict[str, Any]:
    """One tile as the page shows it: the Textual floor's lines, as text fields."""
    state = tile.state or {}
    status, kind = tile_status(tile, now, stale_after_s)
    block = state.get("block")
    fault = state.get("fault")
    incline = state.get("actual_incline_pct")
    return {
        "id": tile.console_id,
        "status": status,
        "kind": kind,
        "client": state.get("client") or "",
        "program": state.get("program") or "no program",
        "block": f"{block.get('label')} {block.get('index')}/{block.get('of')} {block.get('title')}"
        if block
        else "no block",
        "left": f"{_clock(state.get('block_remaining_s'))} left" if block else "",
        "countdown": state.get("countdown"),
        "target": _mph(state.get("target_speed_mph")),
        "actual": _mph(state.get("actual_speed_mph")),
        "incline": "—" if incline is None else f"{incline:g}%",
        "link": "link ok" if state.get("link_up", True) else "LINK LOST",
        "fault": f"{fault.get('kind')}: {fault.get('message')}" if fault else "",
        "remote": state.get("remote") or "",
        "sent": tile.sent,
        "last": tile.last_event,
        "running": tile.running,
        "heard_s": None if tile.heard_at is None else int(now - tile.heard_at),
    }


def floor_payload(watcher: FloorWatcher, stale_after_s: float) -> dict[str, Any]:
    now = watcher.monotonic()
    tiles = [tile_payload(watcher.tiles[cid], now, stale_after_s) for cid in sorted(watcher.tiles)]
    return {
        "type": "floor",
        "broker": str(watcher.broker),
        "connected": watcher.connected.is_set(),
        "problem": watcher.problem,
        "tiles": tiles,
        "running": sum(t["kind"] == "ok" and t["running"] for t in tiles),
        "targets": len(watcher.targets()),
        "confirm_words": CONFIRM_WORDS,
    }


class FloorServer(WebServer):
    pages: ClassVar[dict[str, str]] = {"/": "floor.html", "/view": "floor.html"}
    assets: ClassVar[dict[str, str]] = {
        "floor.js": "text/javascript",
        "view.js": "text/javascript",
        "style.css": "text/css",
        "floor.css": "text/css",
    }

    def __init__(
        self,
        watcher: FloorWatcher,
        secrets: Secrets,
        *,
        host: str,
        port: int,
        stale_after_s: float = STALE_AFTER_S,
        tls: ssl.SSLContext | None = None,
        extra_origins: list[str] | None = None,
        limits: Limits | None = None,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(
            secrets,
            host=host,
            port=port,
            tls=tls,
            extra_origins=extra_origins,
            limits=limits,
            notice=notice,
        )
        self.watcher = watcher
        self.stale_after_s = stale_after_s
        self._wake = asyncio.Event()
        watcher.on_change = self._changed

    def _changed(self, _console_id: str) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_get("/ws/operator", self._operator_socket)
        app.router.add_get("/ws/view", self._view_socket)

    async def _view_socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = await self._open(request, "floor, read-only")
        assert ws is not None
        feed = asyncio.create_task(self._feed(ws, asyncio.Lock()))
        try:
            async for _message in ws:
                # Read-only by construction: there is nothing here a message could reach.
                await ws.close(code=CLOSE_READ_ONLY, message=b"this floor view is read-only")
                break
        finally:
            await _finish(feed)
            self.views.discard(ws)
        return ws

    async def _operator_socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = await self._open(request, "floor operator")
        assert ws is not None
        lock = asyncio.Lock()
        feed: asyncio.Task[None] | None = None
        try:
            if not await self._hello(ws, request):
                return ws
            feed = asyncio.create_task(self._feed(ws, lock))
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                asked = _json(message.data)
                done, text = await self._command(asked, str(request.remote))
                reply = {"type": "answer", "id": asked.get("id"), "done": done, "text": text}
                async with lock:
                    await asyncio.wait_for(ws.send_json(reply), SEND_TIMEOUT_S)
        finally:
            if feed is not None:
                await _finish(feed)
            self.views.discard(ws)
        return ws

    async def _command(self, asked: dict[str, Any], remote: str) -> tuple[bool, str]:
        """One command from an operator's page, through the watcher; (done, what to say)."""
        name = asked.get("command")
        if name == "stop-all":
            if str(asked.get("words", "")).strip() != CONFIRM_WORDS:
                return False, f"STOP ALL not confirmed: type {CONFIRM_WORDS} exactly"
            targets = self.watcher.targets()
            if not targets:
                return False, "no console is running"
            failed = await self.watcher.send_all(RemoteCommand.STOP)
            self.notice(f"STOP ALL from a page ({remote}): {len(targets)} consoles")
            if failed:
                return False, f"STOP NOT sent to {', '.join(failed)}"
            return True, f"STOP sent to every running console ({len(targets)})"
        try:
            command = RemoteCommand(str(name))
        except ValueError:
            return False, f"no such command: {name!r}"
        console_id = asked.get("console")
        if not isinstance(console_id, str) or console_id not in self.watcher.tiles:
            return False, f"no console {console_id!r} on this floor"
        try:
            await self.watcher.send(console_id, command)
        except RetrotreadError as err:
            return False, str(err)
        self.notice(f"{command.value.upper()} sent to {console_id} from a page ({remote})")
        return True, f"{command.value.upper()} sent to {console_id}"

    async def _feed(self, ws: web.WebSocketResponse, lock: asyncio.Lock) -> None:
        """The floor each time it changes, and as tiles age (a slow page skips to the newest)."""
        last: dict[str, Any] | None = None
        try:
            while not ws.closed:
                wake = self._wake
                snapshot = floor_payload(self.watcher, self.stale_after_s)
                if snapshot != last:
                    async with lock:
                        await asyncio.wait_for(ws.send_str(json.dumps(snapshot)), SEND_TIMEOUT_S)
                    last = snapshot
                    await asyncio.sleep(MIN_SEND_GAP_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), LOOK_AGAIN_S)
        except (ConnectionError, RuntimeError, TimeoutError):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"the page stopped reading")


async def _finish(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _json(data: Any) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


# -- the command ---------------------------------------------------------------------------------


def serve_floor(watcher: FloorWatcher, settings: ServeSettings, *, stale_after_s: float) -> int:
    """Serve the floor until Ctrl-C, SIGTERM or a hang-up."""
    return asyncio.run(_serve(watcher, settings, stale_after_s))


async def _serve(watcher: FloorWatcher, settings: ServeSettings, stale_after_s: float) -> int:
    from retrotread.web.serve import say

    secrets = Secrets(new_token(), settings.password)
    server = FloorServer(
        watcher,
        secrets,
        host=settings.host,
        port=settings.port,
        stale_after_s=stale_after_s,
        tls=settings.tls,
        extra_origins=settings.extra_origins,
        limits=settings.limits,
        notice=lambda message: say(f"retrotread: {message}"),
    )
    await server.start()
    watching = asyncio.create_task(watcher.run(), name="floor-watcher")
    base = origin_of(server.scheme, public_name(settings.host), server.port)
    lines = [
        f"retrotread: serving the floor on {watcher.broker} to browsers",
        f"  operator (STOP from the page; keep this link private): {base}/#token={secrets.token}",
        f"  read-only view (no secret):                            {base}/view",
        f"  pages accepted from: {', '.join(sorted(server.origins.origins))}",
        "Ctrl-C closes the server; the consoles and their belts go on.",
    ]
    if settings.password is not None:
        lines.insert(3, "  the operator's page also opens with the password from --password-file")
    say("\n".join(lines))
    if watcher.secret is None:
        say(
            "retrotread: no --floor-secret: commands go unsigned, and consoles take them only "
            "with --floor-trust-broker",
            err=True,
        )
    if settings.remote:
        say(
            "retrotread: WARNING: listening beyond this machine: anyone on the network can "
            "watch the floor, and anyone with the link or the password can stop its belts"
            + ("" if settings.tls else "; without TLS the secret crosses the network in clear"),
            err=True,
        )
    if settings.password_warning:
        say(f"retrotread: WARNING: {settings.password_warning}", err=True)
    closing = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in CLOSING_SIGNALS:
        loop.add_signal_handler(signum, closing.set)
    try:
        await closing.wait()
    finally:
        for signum in CLOSING_SIGNALS:
            loop.remove_signal_handler(signum)
        await _finish(watching)
        await server.stop()
    say("retrotread: the floor server closed")
    return 0
