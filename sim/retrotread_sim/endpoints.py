"""Where the simulator's bytes come and go: a pty (a serial port) or a TCP port (a
serial-to-Ethernet bridge), each able to be unplugged and plugged back in."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Protocol


class Endpoint(Protocol):
    async def open(self, on_data: Callable[[bytes], None]) -> str: ...

    def send(self, data: bytes) -> None: ...

    async def unplug(self, seconds: float) -> str: ...

    def close(self) -> None: ...


class PtyEndpoint:
    """A pseudo-terminal: the client opens its slave side like any serial port.

    The simulator keeps its own handle on the slave side so the pty stays usable while no
    client has it open. ``link`` names a symlink that always points at the current pty, the way
    udev's ``/dev/serial/by-id`` names survive a USB adapter being replugged.
    """

    def __init__(self, link: Path | None) -> None:
        self.link = link
        self._path = ""
        self._fds: tuple[int, int] | None = None
        self._on_data: Callable[[bytes], None] = lambda _: None

    async def open(self, on_data: Callable[[bytes], None]) -> str:
        self._on_data = on_data
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing: the bytes as sent
        os.set_blocking(master, False)
        self._fds = (master, slave)
        asyncio.get_running_loop().add_reader(master, self._readable)
        path = os.ttyname(slave)
        self._path = path
        if self.link is not None:
            temporary = self.link.with_name(self.link.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            temporary.symlink_to(path)
            temporary.replace(self.link)
            return str(self.link)
        return path

    def _readable(self) -> None:
        assert self._fds is not None
        try:
            data = os.read(self._fds[0], 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # no client side any more (EIO): nothing to read
            return
        if data:
            self._on_data(data)

    def send(self, data: bytes) -> None:
        if self._fds is None:
            return
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fds[0], view)
            except BlockingIOError:
                return  # the client is not reading and its buffer is full: the bytes are lost
            except OSError:
                return
            view = view[written:]

    async def unplug(self, seconds: float) -> str:
        self.close()
        await asyncio.sleep(seconds)
        return await self.open(self._on_data)

    def close(self) -> None:
        if self._fds is None:
            return
        master, slave = self._fds
        self._fds = None
        # The name goes with the device, as udev's does: a name left pointing at a closed pty
        # would lead a client that reopens it to whatever pty the system hands out next under
        # that number (another program's).
        if self.link is not None:
            with contextlib.suppress(OSError):
                if os.readlink(self.link) == self._path:
                    self.link.unlink()
        with contextlib.suppress(ValueError, RuntimeError):
            asyncio.get_running_loop().remove_reader(master)
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class TcpEndpoint:
    """A TCP port, like a serial-to-Ethernet bridge: one client at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._on_data: Callable[[bytes], None] = lambda _: None
        self.on_connect: Callable[[str], None] = lambda _: None

    async def open(self, on_data: Callable[[bytes], None]) -> str:
        self._on_data = on_data
        self._server = await asyncio.start_server(
            self._client, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return f"{self.host}:{self.port}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._writer is not None:  # a new cable replaces the old one
            self._writer.close()
        self._writer = writer
        self.on_connect("connected")
        try:
            while data := await reader.read(4096):
                self._on_data(data)
        except OSError:
            pass
        finally:
            if self._writer is writer:
                self._writer = None
                self.on_connect("disconnected")
            writer.close()

    def send(self, data: bytes) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)

    async def unplug(self, seconds: float) -> str:
        self.close()
        await asyncio.sleep(seconds)
        return await self.open(self._on_data)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._server is not None:
            self._server.close()
            self._server = None
