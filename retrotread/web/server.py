"""The web server: two small pages and two websockets onto the one session.

- ``/`` and ``/ws/operator``: the operator's view. The socket says nothing until the page has
  sent the console's token or password; then it carries the state and takes commands, each
  a :class:`~retrotread.web.control.Controls` call (so the governor's, as from the keyboard).
- ``/walker`` and ``/ws/walker``: the walker's view. Its handler holds no controls at all; a
  walker page that sends anything is closed.

Every websocket must come from an allowed ``Origin``; every request must name an allowed
``Host``. Views are limited in number (refused with 503 beyond), and so are TCP connections
(closed at once beyond), so a flood of connections costs neither processes nor memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar

from aiohttp import WSCloseCode, WSMsgType, web

from retrotread.errors import RetrotreadError
from retrotread.web.access import Origins, Secrets
from retrotread.web.control import Command, Controls
from retrotread.web.view import SessionView

log = logging.getLogger(__name__)

#: The pages and what they load; nothing else is served.
STATIC = {
    "operator.js": "text/javascript",
    "walker.js": "text/javascript",
    "view.js": "text/javascript",
    "style.css": "text/css",
}
PAGES = {"/": "operator.html", "/walker": "walker.html"}

HELLO_TIMEOUT_S = 10.0  # an operator page must present its secret this soon
DENIED_DELAY_S = 1.0  # a wrong secret is answered this late (slows guessing)
SEND_TIMEOUT_S = 10.0  # a page that does not read its socket this long is dropped
MIN_SEND_GAP_S = 0.02  # at most 50 state updates a second per page
MAX_MESSAGE_BYTES = 4096
COMMANDS_PER_SECOND = 20
KEEPALIVE_S = 15.0  # idle HTTP connections (and ones that never send a request) close
#: Close codes in the private range: the page shows why and does not retry.
CLOSE_DENIED = 4401
CLOSE_READ_ONLY = 4403


@dataclass(frozen=True)
class Limits:
    max_views: int = 8

    @property
    def max_tcp(self) -> int:
        """Open TCP connections: a browser opens a few for a page beside its websocket."""
        return max(32, 4 * self.max_views)


class _Closed(asyncio.Protocol):
    """A connection beyond the limit: closed at once, before a byte is read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class WebServer:
    """What every served page shares: listening (TLS, the connection cap), the ``Host`` and
    ``Origin`` checks, the security headers, the pages and their files, the view limit, and
    the operator's secret (:meth:`_hello`). Subclasses add their websockets in :meth:`routes`."""

    pages: ClassVar[dict[str, str]] = PAGES
    assets: ClassVar[dict[str, str]] = STATIC

    def __init__(
        self,
        secrets: Secrets,
        *,
        host: str,
        port: int,
        tls: ssl.SSLContext | None = None,
        extra_origins: list[str] | None = None,
        limits: Limits | None = None,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        self.secrets = secrets
        self.host = host
        self.port = port
        self.tls = tls
        self.scheme = "https" if tls else "http"
        self.extra_origins = list(extra_origins or [])
        self.limits = limits or Limits()
        self.notice = notice or (lambda message: log.info("%s", message))
        self.origins = Origins(frozenset())
        self.views: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None
        self._static = {name: _read_static(name) for name in [*self.assets, *self.pages.values()]}

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> int:
        """Listen; returns the port (the one chosen when ``port`` is 0)."""
        app = web.Application(middlewares=[self._guard], client_max_size=MAX_MESSAGE_BYTES)
        self.routes(app)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, keepalive_timeout=KEEPALIVE_S
        )
        await runner.setup()
        self._runner = runner
        handlers = runner.server
        assert handlers is not None
        cap = self.limits.max_tcp

        def connection() -> asyncio.BaseProtocol:
            if len(handlers.connections) >= cap:
                return _Closed()
            return handlers()

        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                connection, self.host or None, self.port, ssl=self.tls, reuse_address=True
            )
        except OSError as err:
            await runner.cleanup()
            raise RetrotreadError(
                f"cannot listen on {self.host}:{self.port}: {err.strerror or err}"
            ) from err
        self.port = int(self._server.sockets[0].getsockname()[1])
        self.origins = Origins.build(self.scheme, self.host, self.port, self.extra_origins)
        return self.port

    def routes(self, app: web.Application) -> None:
        """The pages and their files; a subclass adds its websockets."""
        for path in self.pages:
            app.router.add_get(path, self._page)
        app.router.add_get("/static/{name}", self._asset)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for ws in list(self.views):
            with contextlib.suppress(Exception):
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"the console closed")
        if self._runner is not None:
            await self._runner.cleanup()
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
        self._server = self._runner = None

    # -- every request ------------------------------------------------------------------------

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not self.origins.host_allowed(request.headers.get("Host"), self.scheme):
            self.notice(f"refused a request for host {request.headers.get('Host')!r}")
            return web.Response(status=421, text="this console is not served under that name\n")
        response = await handler(request)
        self._secure_headers(request, response)
        return response

    def _secure_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        if response.prepared:
            return  # a websocket: its headers went out with the upgrade
        socket_scheme = "wss" if self.tls else "ws"
        headers = response.headers
        headers["Content-Security-Policy"] = (
            "default-src 'none'; script-src 'self'; style-src 'self'; "
            f"connect-src 'self' {socket_scheme}://{request.host}; img-src 'self' data:; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
        headers["X-Frame-Options"] = "DENY"
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["Server"] = "retrotread"  # no library versions for a scanner to match
        headers["Cache-Control"] = "no-store"
        if self.tls:
            headers["Strict-Transport-Security"] = "max-age=31536000"

    async def _page(self, request: web.Request) -> web.Response:
        name = self.pages[request.path]
        return web.Response(body=self._static[name], content_type="text/html", charset="utf-8")

    async def _asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.assets:
            raise web.HTTPNotFound()
        return web.Response(
            body=self._static[name], content_type=self.assets[name], charset="utf-8"
        )

    # -- websockets ---------------------------------------------------------------------------

    async def _open(self, request: web.Request, kind: str) -> web.WebSocketResponse | None:
        """Check the origin and the limit, then upgrade; None (after refusing) if not let in."""
        origin = request.headers.get("Origin")
        if not self.origins.origin_allowed(origin):
            self.notice(f"refused a view ({kind}) from origin {origin!r} ({request.remote})")
            raise web.HTTPForbidden(text="origin not allowed\n")
        if len(self.views) >= self.limits.max_views:
            self.notice(f"refused a view ({kind}): {self.limits.max_views} views already open")
            raise web.HTTPServiceUnavailable(text="too many views open\n")
        ws = web.WebSocketResponse(
            heartbeat=20.0, max_msg_size=MAX_MESSAGE_BYTES, autoping=True, compress=False
        )
        self.views.add(ws)
        try:
            await ws.prepare(request)
        except BaseException:
            self.views.discard(ws)
            raise
        return ws

    async def _hello(self, ws: web.WebSocketResponse, request: web.Request) -> bool:
        """The page's first message must carry the token or the password."""
        try:
            message = await ws.receive(timeout=HELLO_TIMEOUT_S)
        except TimeoutError:
            await ws.close(code=CLOSE_DENIED, message=b"no secret given")
            return False
        if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            return False  # the page left before saying anything
        hello = _json(message.data) if message.type is WSMsgType.TEXT else None
        token = hello.get("token") if hello else None
        password = hello.get("password") if hello else None
        granted = (isinstance(token, str) and self.secrets.token_ok(token)) or (
            isinstance(password, str) and self.secrets.password_ok(password)
        )
        if not granted:
            self.notice(f"refused an operator view: wrong or missing secret ({request.remote})")
            await asyncio.sleep(DENIED_DELAY_S)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_json({"type": "denied", "text": "wrong or missing secret"})
            await ws.close(code=CLOSE_DENIED, message=b"wrong or missing secret")
            return False
        self.notice(f"operator view connected ({request.remote}; views open: {len(self.views)})")
        await ws.send_json({"type": "welcome", "password": self.secrets.password is not None})
        return True


class ViewServer(WebServer):
    """The console's two views onto its one session."""

    def __init__(
        self,
        view: SessionView,
        controls: Controls,
        secrets: Secrets,
        *,
        host: str,
        port: int,
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
        self.view = view
        self.controls = controls

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_get("/ws/operator", self._operator_socket)
        app.router.add_get("/ws/walker", self._walker_socket)

    async def _walker_socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = await self._open(request, "walker")
        assert ws is not None
        lock = asyncio.Lock()
        feed = asyncio.create_task(self._feed(ws, lock, self.view.walker_state))
        try:
            async for _message in ws:
                # Read-only by construction: there is nothing here a message could reach.
                await ws.close(code=CLOSE_READ_ONLY, message=b"the walker view is read-only")
                break
        finally:
            feed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feed
            self.views.discard(ws)
        return ws

    async def _operator_socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = await self._open(request, "operator")
        assert ws is not None
        lock = asyncio.Lock()
        feed: asyncio.Task[None] | None = None
        try:
            if not await self._hello(ws, request):
                return ws
            feed = asyncio.create_task(self._feed(ws, lock, self.view.operator_state))
            await self._take_commands(ws, lock)
        finally:
            if feed is not None:
                feed.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feed
            self.views.discard(ws)
        return ws

    async def _take_commands(self, ws: web.WebSocketResponse, lock: asyncio.Lock) -> None:
        sent: list[float] = []
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            request = _json(message.data)
            name = request.get("command") if request else None
            now = time.monotonic()
            sent = [at for at in sent if now - at < 1.0]
            if len(sent) >= COMMANDS_PER_SECOND and name != Command.STOP:
                answer = {"done": False, "text": "too many commands: slow down"}
            else:
                sent.append(now)
                try:
                    command = Command(str(name))
                except ValueError:
                    answer = {"done": False, "text": f"no such command: {name!r}"}
                else:
                    result = self.controls(command)
                    answer = {"done": result.done, "text": result.text}
            reply = {"type": "answer", "id": request.get("id") if request else None, **answer}
            async with lock:
                await asyncio.wait_for(ws.send_json(reply), SEND_TIMEOUT_S)

    async def _feed(
        self, ws: web.WebSocketResponse, lock: asyncio.Lock, state: Callable[[], dict[str, Any]]
    ) -> None:
        """The latest state, each time it changes (a slow page skips to the newest)."""
        loop = asyncio.get_running_loop()
        try:
            while not ws.closed:
                snapshot = state()
                async with lock:
                    await asyncio.wait_for(ws.send_str(json.dumps(snapshot)), SEND_TIMEOUT_S)
                sent_at = loop.time()
                await self.view.changed_since(int(snapshot["version"]))
                if self.view.phase.value == snapshot["phase"]:
                    # Routine changes in a burst go out as one (the newest); a new phase
                    # (the go, a pause, the STOP) goes out at once.
                    await asyncio.sleep(max(0.0, sent_at + MIN_SEND_GAP_S - loop.time()))
        except (ConnectionError, RuntimeError, TimeoutError):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"the page stopped reading")


def _json(data: Any) -> dict[str, Any] | None:
    try:
        value = json.loads(data)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _read_static(name: str) -> bytes:
    return resources.files("retrotread.web").joinpath("static", name).read_bytes()
