"""A real Mosquitto broker for a test: its own config on a free loopback port in the test's
temporary folder, stopped (or killed) by the test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from retrotread.clock import LoopTimer

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Mosquitto:
    """One broker process; :meth:`start` again after :meth:`kill` reuses its port."""

    folder: Path
    port: int = field(default_factory=free_port)
    password_file: Path | None = None
    acl_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def config(self) -> Path:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            f"log_dest file {self.folder / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "max_queued_messages 1000",
        ]
        if self.password_file is not None:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        path = self.folder / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config())],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # ready when it accepts a connection
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited: {err}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.02)
        raise RuntimeError("mosquitto did not start listening")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def pause(self) -> None:
        """A stalled broker: the connection stays open and nothing is answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def unpause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@contextlib.contextmanager
def running_broker(folder: Path, **settings: Any) -> Iterator[Mosquitto]:
    broker = Mosquitto(folder, **settings)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        if broker.process is not None and broker.process.stderr is not None:
            broker.process.stderr.close()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    if not Path(MOSQUITTO).exists():
        pytest.fail("mosquitto is not installed (Debian package mosquitto; `make system`)")
    with running_broker(tmp_path / "broker") as broker:
        yield broker


class ScaledClock:
    """Program time running ``scale`` times faster than the loop's real time.

    The sessions and simulators run on it while the broker runs on real time: a two-minute
    program plays in a few real seconds, and messages still cross a real socket.
    """

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def now(self) -> float:
        return asyncio.get_running_loop().time() * self.scale

    async def sleep_until(self, deadline: float) -> None:
        while (delay := deadline - self.now()) > 0:  # noqa: ASYNC110 - a deadline, not a flag
            await asyncio.sleep(delay / self.scale)

    def call_at(self, deadline: float, callback: Callable[[], object]) -> LoopTimer:
        return LoopTimer(asyncio.get_running_loop(), deadline / self.scale, callback)


async def within[T](seconds: float, awaitable: Coroutine[Any, Any, T]) -> T:
    return await asyncio.wait_for(awaitable, seconds)


@dataclass
class Seen:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> dict[str, Any]:
        import json

        value: dict[str, Any] = json.loads(self.payload)
        return value


class Spy:
    """A plain MQTT client watching topics, for a test to wait on what arrives."""

    def __init__(self, url: str, *topics: str) -> None:
        from retrotread.floor.broker import Broker

        self.broker = Broker.from_url(url)
        self.topics = topics
        self.seen: list[Seen] = []
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.client: Any = None

    async def __aenter__(self) -> Spy:
        self._task = asyncio.create_task(self._run())
        await within(10, self._ready.wait())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        async with self.broker.client(f"spy-{id(self)}") as client:
            self.client = client
            for topic in self.topics:
                await client.subscribe(topic, qos=1)
            self._ready.set()
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                self.seen.append(Seen(str(message.topic), payload, message.retain))
                self._arrived.set()

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        await self.client.publish(topic, payload, qos=1, retain=retain)

    async def wait_for(self, predicate: Any, seconds: float = 10.0) -> Seen:
        """The first message (already seen or still to come) that ``predicate`` accepts."""

        async def look() -> Seen:
            checked = 0
            while True:
                for item in self.seen[checked:]:
                    if predicate(item):
                        return item
                checked = len(self.seen)
                self._arrived.clear()
                await self._arrived.wait()

        return await within(seconds, look())
