"""The floor's view of the broker: one :class:`Tile` per console, and STOP or pause sent to it.

A tile is as fresh as its last state message. Retained state (what the broker kept from a
console's last word) shows at once but counts as stale until the console speaks again; a
console whose availability says ``offline`` (its last will, or a clean close) is shown so.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from retrotread.errors import RetrotreadError
from retrotread.floor.auth import RemoteCommand, sign
from retrotread.floor.broker import Broker
from retrotread.floor.topics import (
    FLOOR_SUBSCRIPTIONS,
    OFFLINE,
    ONLINE,
    TopicError,
    command_topic,
    decode,
    encode,
    split_topic,
)

if TYPE_CHECKING:
    import aiomqtt

log = logging.getLogger(__name__)

#: a tile with no state for this long is marked stale (a console publishes at least each second)
STALE_AFTER_S = 5.0
SEND_TIMEOUT_S = 2.0
#: what STOP ALL asks to be typed out (the Textual floor and the served one)
CONFIRM_WORDS = "STOP ALL"


@dataclass
class Tile:
    console_id: str
    state: dict[str, Any] | None = None
    online: bool | None = None  # None: never said
    heard_at: float | None = None  # monotonic time of the last live state
    last_event: str = ""
    sent: str = ""  # the last command this floor sent, and whether it went

    def stale(self, now: float, after_s: float) -> bool:
        return self.heard_at is None or now - self.heard_at > after_s

    @property
    def running(self) -> bool:
        state = self.state or {}
        return state.get("engine") in ("running", "paused") and not state.get("ended")


@dataclass
class FloorWatcher:
    """Keeps the tiles from the broker's messages; :meth:`run` until cancelled."""

    broker: Broker
    sender: str
    secret: bytes | None = None
    on_change: Callable[[str], None] | None = None
    #: each live state as it arrives, with the wall time it arrived (the benchmark's probe)
    on_state: Callable[[str, dict[str, Any], float], None] | None = None
    monotonic: Callable[[], float] = time.monotonic
    tiles: dict[str, Tile] = field(default_factory=dict)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    problem: str = ""  # why the broker is not reachable, when it is not
    _client: aiomqtt.Client | None = None

    def tile(self, console_id: str) -> Tile:
        if console_id not in self.tiles:
            self.tiles[console_id] = Tile(console_id)
        return self.tiles[console_id]

    def handle(self, topic: str, payload: bytes, *, retained: bool = False) -> None:
        where = split_topic(topic)
        if where is None:
            return
        console_id, leaf = where
        if leaf == "availability":
            if not payload and console_id not in self.tiles:
                return
            self.tile(console_id).online = {ONLINE: True, OFFLINE: False}.get(payload.decode())
        elif leaf in ("state", "event"):
            if not payload:  # a cleared retained message: the console left the floor
                if leaf == "state":
                    self.tiles.pop(console_id, None)
                    self._changed(console_id)
                return
            try:
                message = decode(payload)
            except TopicError as err:
                log.info("floor: %s from %s ignored: %s", leaf, console_id, err)
                return
            tile = self.tile(console_id)
            if leaf == "state":
                tile.state = message
                if not retained:
                    tile.heard_at = self.monotonic()
                    if self.on_state is not None:
                        self.on_state(console_id, message, time.time())
            else:
                tile.last_event = describe_event(message)
        else:
            return
        self._changed(console_id)

    def _changed(self, console_id: str) -> None:
        if self.on_change is not None:
            self.on_change(console_id)

    async def run(self) -> None:
        import aiomqtt

        pause = 0.5
        while True:
            identifier = f"retrotread-floor-{secrets.token_hex(4)}"
            try:
                async with self.broker.client(identifier) as client:
                    for topic in FLOOR_SUBSCRIPTIONS:
                        await client.subscribe(topic, qos=1)
                    self._client, self.problem, pause = client, "", 0.5
                    self.connected.set()
                    self._changed("")
                    async for message in client.messages:
                        raw = message.payload
                        payload = bytes(raw) if isinstance(raw, bytes | bytearray) else b""
                        self.handle(str(message.topic), payload, retained=message.retain)
            except aiomqtt.MqttError as err:
                self.problem = f"broker {self.broker}: {err}"
            finally:
                self._client = None
                self.connected.clear()
            self._changed("")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)

    async def send(self, console_id: str, command: RemoteCommand) -> None:
        """Sign and send ``command`` to one console; raises if the broker did not take it."""
        import aiomqtt

        client = self._client
        tile = self.tile(console_id)
        if client is None:
            tile.sent = f"{command.value.upper()} NOT sent: no broker"
            self._changed(console_id)
            raise RetrotreadError(
                f"{command.value} not sent to {console_id}: {self.problem or 'no broker'}"
            )
        message = sign(command, console_id, self.sender, self.secret)
        try:
            await client.publish(
                command_topic(console_id), encode(message), qos=1, timeout=SEND_TIMEOUT_S
            )
        except aiomqtt.MqttError as err:
            tile.sent = f"{command.value.upper()} NOT sent: {err}"
            self._changed(console_id)
            raise RetrotreadError(f"{command.value} not sent to {console_id}: {err}") from err
        tile.sent = f"{command.value.upper()} sent"
        self._changed(console_id)

    def targets(self) -> list[str]:
        """The consoles STOP ALL reaches: running or paused, and not known to be offline."""
        return [t.console_id for t in self.tiles.values() if t.running and t.online is not False]

    async def send_all(self, command: RemoteCommand) -> list[str]:
        """``command`` to every console that is running; the ids it could not reach."""
        targets = self.targets()
        failed = []
        results = await asyncio.gather(
            *(self.send(target, command) for target in targets), return_exceptions=True
        )
        for target, result in zip(targets, results, strict=True):
            if isinstance(result, BaseException):
                failed.append(target)
        return failed


def tile_status(tile: Tile, now: float, stale_after_s: float) -> tuple[str, str]:
    """The tile's one-word status and its style class, most urgent first."""
    state = tile.state or {}
    fault = state.get("fault")
    if tile.online is False:
        return "OFFLINE", "offline"
    if tile.stale(now, stale_after_s):
        return "STALE", "stale"
    ended = state.get("ended")
    if ended:
        stopped = ended.get("belt_stopped")
        return (
            "ENDED" if stopped else "BELT NOT CONFIRMED STOPPED"
        ), "ended" if stopped else "fault"
    if fault and fault.get("fatal"):
        return f"FAULT {fault.get('kind')}", "fault"
    if state.get("hold"):
        return f"HOLD {state.get('hold_kind') or ''}".strip(), "fault"
    if not state.get("link_up", True):
        return "LINK LOST", "fault"
    if state.get("stop_requested"):
        return "STOPPING", "fault"
    return str(state.get("engine", "waiting")).upper(), "ok"


def describe_event(message: dict[str, Any]) -> str:
    kind = message.get("type")
    if kind == "fault":
        return f"FAULT {message.get('kind')}: {message.get('message')}"
    if kind == "stop":
        return str(message.get("message", ""))
    if kind == "ended":
        return f"ended: {message.get('outcome')}"
    if kind == "block":
        return f"block: {message.get('title')}"
    if kind == "notice":
        return str(message.get("message", ""))
    if kind == "countdown":
        return f"{message.get('count')}..."
    return str(kind)
