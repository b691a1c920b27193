"""A console on the floor: its session's events out to the broker, STOP and pause in.

The session calls :meth:`FloorLink.__call__` for every event. It never blocks and never
fails: it notes the event and wakes the publisher task, which does the talking. The latest
state waits in one slot (a newer one replaces it); other events wait in a bounded queue that
drops its oldest when full. So a slow or absent broker loses telemetry — counted in
:attr:`FloorLink.dropped` — and never delays the session, its stop, or its end.

Commands arrive on ``retrotread/<id>/command`` and go through :class:`~.auth.Verifier`; an
accepted STOP is the operator's STOP (the same governor and stop path as the console's key),
a pause is the console's pause, and each one — or its refusal — becomes a
:class:`~retrotread.events.Notice` naming the sender, which the recorder keeps as an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retrotread.events import Event, SessionHandle, SessionState, StopReason
from retrotread.floor.auth import Accepted, CommandRefused, RemoteCommand, Verifier, read_secret
from retrotread.floor.broker import Broker
from retrotread.floor.topics import (
    OFFLINE,
    ONLINE,
    Context,
    TopicError,
    availability_topic,
    check_console_id,
    command_topic,
    decode,
    encode,
    event_payload,
    shown_client,
    state_payload,
    state_topic,
)
from retrotread.floor.topics import event_topic as events_topic
from retrotread.options import FloorOptions

if TYPE_CHECKING:
    import aiomqtt

log = logging.getLogger(__name__)

#: events waiting for the broker beyond this many are dropped, oldest first
QUEUE_SIZE = 256
#: how long one publish may wait for the broker before it counts as lost
PUBLISH_TIMEOUT_S = 2.0
RECONNECT_FIRST_S, RECONNECT_MAX_S = 0.5, 5.0


@dataclass(frozen=True)
class Outgoing:
    topic: str
    payload: bytes
    retain: bool = False


class FloorLink:
    """One console's presence on the floor; attach each session it plays."""

    def __init__(
        self,
        options: FloorOptions,
        *,
        client_name: str | None = None,
        wall: Callable[[], float] = time.time,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.console_id = check_console_id(options.console_id)
        self.broker = Broker.from_url(options.broker, options.ca_file)
        secret = read_secret(options.secret_file) if options.secret_file else None
        self.verifier = Verifier(self.console_id, secret, trust_broker=options.trust_broker)
        self.discovery_prefix = options.discovery_prefix.strip("/")
        self.context = Context(
            self.console_id, client=shown_client(client_name, options.client_name)
        )
        self.wall = wall
        self.dropped = 0  # events the broker never got (it was slow or away)
        self.published = 0
        self.connected = asyncio.Event()
        self._outbox: deque[Outgoing] = deque(maxlen=queue_size)
        self._state: SessionState | None = None
        self._state_due: float | None = None  # wall time of the newest unsent state
        self._wake = asyncio.Event()
        self._session: SessionHandle | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # -- the session's side: never blocks -------------------------------------------------------

    def attach(self, session: SessionHandle) -> None:
        """Publish this session's events (the one before it, if any, no longer)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._session = session
        self.context.remote = None
        self._unsubscribe = session.subscribe(self)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"floor-{self.console_id}"
            )

    def also[S: SessionHandle](self, first: Callable[[S], None] | None) -> Callable[[S], None]:
        """A console's session-start hook that runs ``first`` (the recorder's), then attaches."""

        def start(session: S) -> None:
            if first is not None:
                first(session)
            self.attach(session)

        return start

    def __call__(self, event: Event) -> None:
        wall = self.wall()
        if isinstance(event, SessionState):
            self._state = event
        else:
            self.context.note(event)
            payload = event_payload(event, self.context, wall)
            if payload is not None:
                self._put(Outgoing(events_topic(self.console_id), encode(payload)))
        if self._state is not None:
            self._state_due = wall
        self._wake.set()

    def _put(self, message: Outgoing) -> None:
        if len(self._outbox) == self._outbox.maxlen:
            self.dropped += 1  # the deque drops the oldest itself
        self._outbox.append(message)

    # -- commands from the floor ---------------------------------------------------------------

    def on_command(self, raw: bytes, *, retained: bool = False) -> Accepted | None:
        session = self._session
        try:
            accepted = self.verifier.check(decode(raw), retained=retained)
        except (CommandRefused, TopicError) as err:
            log.warning("floor command refused on %s: %s", self.console_id, err)
            if session is not None:
                session.notify(f"a command from the floor was refused: {err}")
            return None
        if session is None:
            return None
        who = accepted.sender
        if accepted.command is RemoteCommand.STOP:
            if not session.state.stop_requested:
                session.stop(StopReason.OPERATOR, f"STOP from the floor ({who})")
            session.notify(f"STOP from the floor, sent by {who}")
        else:
            session.pause()
            session.notify(f"pause from the floor, sent by {who}")
        self.context.remote = f"{accepted.command.value} by {who}"
        return accepted

    # -- the publisher task --------------------------------------------------------------------

    async def close(self, timeout_s: float = 2.0) -> None:
        """Send what is waiting and say ``offline``, for at most ``timeout_s``; then let go."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        task, self._task = self._task, None
        if task is None:
            return
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except (TimeoutError, Exception):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self) -> None:
        import aiomqtt

        pause = RECONNECT_FIRST_S
        while not self._closing:
            identifier = f"retrotread-{self.console_id}-{secrets.token_hex(3)}"
            will = aiomqtt.Will(availability_topic(self.console_id), OFFLINE, qos=1, retain=True)
            try:
                async with self.broker.client(identifier, will=will) as client:
                    pause = RECONNECT_FIRST_S
                    await self._introduce(client)
                    if await self._serve(client):
                        return
            except aiomqtt.MqttError as err:
                log.info("floor broker %s: %s", self.broker, err)
            finally:
                self.connected.clear()
            if self._closing:
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX_S)

    async def _introduce(self, client: aiomqtt.Client) -> None:
        await client.publish(
            availability_topic(self.console_id),
            ONLINE,
            qos=1,
            retain=True,
            timeout=PUBLISH_TIMEOUT_S,
        )
        await client.subscribe(command_topic(self.console_id), qos=1)
        if self.discovery_prefix:
            await client.subscribe(f"{self.discovery_prefix}/status", qos=1)
            await self._discovery(client)
        if self._state is not None and self._state_due is None:
            self._state_due = self.wall()  # the retained state, fresh after a reconnect
        self.connected.set()

    async def _serve(self, client: aiomqtt.Client) -> bool:
        """Publish and listen until the link drops (False) or the console closes (True)."""
        drain = asyncio.create_task(self._drain(client))
        listen = asyncio.create_task(self._listen(client))
        try:
            done, _ = await asyncio.wait({drain, listen}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a lost link raises here
            return drain in done
        finally:
            for task in (drain, listen):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _drain(self, client: aiomqtt.Client) -> None:
        while True:
            message = self._next()
            if message is None:
                if self._closing:
                    await self._publish(
                        client,
                        Outgoing(availability_topic(self.console_id), OFFLINE.encode(), True),
                    )
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._publish(client, message)

    def _next(self) -> Outgoing | None:
        if self._state_due is not None and self._state is not None:
            payload = state_payload(self._state, self.context, self._state_due)
            self._state_due = None
            return Outgoing(state_topic(self.console_id), encode(payload), retain=True)
        if self._outbox:
            return self._outbox.popleft()
        return None

    async def _publish(self, client: aiomqtt.Client, message: Outgoing) -> None:
        import aiomqtt

        try:
            await client.publish(
                message.topic,
                message.payload,
                qos=1,
                retain=message.retain,
                timeout=PUBLISH_TIMEOUT_S,
            )
        except aiomqtt.MqttCodeError as err:
            if err.rc != 15:  # paho's MQTT_ERR_QUEUE_SIZE: full of unsent messages
                raise
            self.dropped += 1
        except aiomqtt.MqttError:  # timed out: the broker is slow; this one is lost
            self.dropped += 1
        else:
            self.published += 1

    async def _listen(self, client: aiomqtt.Client) -> None:
        status = f"{self.discovery_prefix}/status"
        async for message in client.messages:
            raw = message.payload if isinstance(message.payload, bytes | bytearray) else b""
            if message.topic.matches(command_topic(self.console_id)):
                if self.on_command(bytes(raw), retained=message.retain) is not None:
                    self._state_due = self.wall()
                    self._wake.set()
            elif self.discovery_prefix and message.topic.matches(status) and raw == b"online":
                await self._discovery(client)  # Home Assistant restarted: say it all again

    async def _discovery(self, client: aiomqtt.Client) -> None:
        for topic, config in discovery_configs(
            self.discovery_prefix, self.console_id, self._state.device if self._state else ""
        ):
            await client.publish(
                topic, encode(config), qos=1, retain=True, timeout=PUBLISH_TIMEOUT_S
            )


#: Home Assistant entities: object id -> (component, name, template, extra settings)
ENTITIES: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "target_speed": (
        "sensor",
        "Target speed",
        "{{ value_json.target_speed_mph }}",
        {"unit_of_measurement": "mph", "device_class": "speed"},
    ),
    "actual_speed": (
        "sensor",
        "Actual speed",
        "{{ value_json.actual_speed_mph }}",
        {"unit_of_measurement": "mph", "device_class": "speed"},
    ),
    "incline": (
        "sensor",
        "Incline",
        "{{ value_json.actual_incline_pct }}",
        {"unit_of_measurement": "%"},
    ),
    "program": ("sensor", "Program", "{{ value_json.program }}", {}),
    "block": (
        "sensor",
        "Block",
        "{{ value_json.block.title if value_json.block else 'none' }}",
        {},
    ),
    "block_remaining": (
        "sensor",
        "Block remaining",
        "{{ value_json.block_remaining_s | int }}",
        {"unit_of_measurement": "s", "device_class": "duration"},
    ),
    "engine": ("sensor", "Program state", "{{ value_json.engine }}", {}),
    "fault": (
        "sensor",
        "Fault",
        "{{ value_json.fault.kind if value_json.fault else 'none' }}",
        {},
    ),
    "link": (
        "binary_sensor",
        "Treadmill link",
        "{{ 'ON' if value_json.link_up else 'OFF' }}",
        {"device_class": "connectivity"},
    ),
}


def discovery_configs(
    prefix: str, console_id: str, device: str
) -> list[tuple[str, dict[str, Any]]]:
    """Home Assistant MQTT discovery: one retained config per entity, read-only (a STOP from
    Home Assistant would need the floor's secret, so it offers none)."""
    node = f"retrotread_{console_id}"
    configs = []
    for object_id, (component, name, template, extra) in ENTITIES.items():
        config: dict[str, Any] = {
            "name": name,
            "unique_id": f"{node}_{object_id}",
            "object_id": f"{node}_{object_id}",
            "state_topic": state_topic(console_id),
            "value_template": template,
            "availability_topic": availability_topic(console_id),
            "device": {
                "identifiers": [node],
                "name": f"Treadmill {console_id}",
                "manufacturer": "retrotread",
                "model": device or "treadmill",
            },
            "origin": {"name": "retrotread"},
            **extra,
        }
        configs.append((f"{prefix}/{component}/{node}/{object_id}/config", config))
    return configs


def open_link(options: FloorOptions | None, client_name: str | None = None) -> FloorLink | None:
    """The console's floor link when ``--mqtt`` was given (attach sessions to it)."""
    return None if options is None else FloorLink(options, client_name=client_name)


async def closing_link[T](work: Awaitable[T], link: FloorLink | None) -> T:
    """``work``, then the link closed (it says ``offline``; a broker away costs a second)."""
    try:
        return await work
    finally:
        if link is not None:
            await link.close()
