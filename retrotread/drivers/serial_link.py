"""Serial treadmills: pyserial URLs, a reader thread, and what the CSAFE and Trackmaster
drivers share (one exchange at a time, retries within a budget, polling, reconnecting).

Grammar::

    serial:///dev/ttyUSB0?protocol=csafe|trackmaster[&baud=N][&profile=NAME][&poll=S]
                                                   [&reconnect=BOOL][&address=N]
    socket://HOST:PORT?protocol=...   a serial-to-TCP bridge, or `retrotread-sim serve --tcp`
    rfc2217://HOST:PORT?protocol=...  an RFC 2217 terminal server
    loop://?protocol=...              pyserial's loopback (for testing the transport)

Every port is opened with :func:`serial.serial_for_url`. pyserial is blocking, so a daemon
thread reads the port and hands bytes to the event loop (``call_soon_threadsafe``), and writes
go through :func:`asyncio.to_thread`: this works the same for every URL handler pyserial has
(``loop://`` and ``rfc2217://`` have no file descriptor an event loop could watch).

The machine is asked one thing at a time. Each request gets at most ``REPLY_WITHIN_S`` (the
CSAFE 1 s rule) and is retried up to ``ATTEMPTS`` times inside the profile's
``confirm.command_timeout_s``; what is still unanswered is a
:class:`~retrotread.errors.CommandTimeout`. When the port disappears (a USB adapter pulled out)
the driver reports ``LINK_LOST`` and reopens the same URL until it is back; telemetry older
than ``confirm.telemetry_stale_s`` is reported the same way.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import errno
import importlib
import logging
import threading
from collections.abc import Callable
from typing import Any, ClassVar, Self, cast

import serial

from retrotread.clock import Clock
from retrotread.drivers.base import (
    Capabilities,
    MachineEvent,
    MachineEventKind,
    Range,
    Telemetry,
    Treadmill,
)
from retrotread.drivers.url import DeviceUrl
from retrotread.errors import (
    CommandRejected,
    CommandTimeout,
    DeviceError,
    DeviceUnavailable,
    DeviceUrlError,
    LinkLost,
    ProtocolError,
    Rejection,
    Unavailable,
)
from retrotread.profiles import Profile, get_profile
from retrotread.units import Quantity

log = logging.getLogger(__name__)

REPLY_WITHIN_S = 1.0  # CSAFE: an answer is expected within 1 s
ATTEMPTS = 3
BUDGET_SHARE = 0.9  # finish retrying before the session's own command timeout fires
RETRY_PAUSE_S = 0.05
READ_POLL_S = 0.05  # how often the reader thread looks up to see if it should stop
WRITE_TIMEOUT_S = 2.0
RECONNECT_EVERY_S = 0.25
POLL_DEFAULT_S = 0.5

PROTOCOL_DRIVERS = {
    "csafe": ("retrotread.drivers.csafe", "CsafeDriver"),
    "trackmaster": ("retrotread.drivers.trackmaster", "TrackmasterDriver"),
}

URL_OPTIONS = {
    "protocol": "csafe or trackmaster (required)",
    "baud": "line rate in baud (CSAFE 9600, Trackmaster 4800)",
    "profile": "bundled device profile (generic-csafe, generic-trackmaster)",
    "poll": f"seconds between telemetry polls, at most 1 ({POLL_DEFAULT_S:g})",
    "reconnect": "reopen the port when it disappears (true)",
    "address": "CSAFE: send extended frames to this address (0-255)",
}

_OPTIONS_GRAMMAR = "protocol=csafe|trackmaster[&baud=N][&profile=NAME][&poll=S][&reconnect=BOOL]"
_LOCATION = {
    "serial": "serial:///dev/ttyUSB0",
    "socket": "socket://HOST:PORT",
    "rfc2217": "rfc2217://HOST:PORT",
    "loop": "loop://",
}


def grammar_for(scheme: str) -> str:
    return f"{_LOCATION[scheme]}?{_OPTIONS_GRAMMAR}[&address=N]"


def pyserial_port(url: DeviceUrl, grammar: str) -> str:
    """What :func:`serial.serial_for_url` is given: a device path, or pyserial's own URL."""
    if url.scheme == "serial":
        if not url.location:
            raise DeviceUrlError(f"{url.text!r}: name the serial port\n  grammar: {grammar}")
        return url.location
    if url.scheme in ("socket", "rfc2217") and ":" not in url.location:
        raise DeviceUrlError(f"{url.text!r}: expected HOST:PORT\n  grammar: {grammar}")
    return f"{url.scheme}://{url.location}"


# -- the transport ----------------------------------------------------------------------------


class SerialLink:
    """One open pyserial port: a reader thread feeding the loop, writes off the loop."""

    def __init__(
        self,
        port: str,
        baudrate: int,
        on_data: Callable[[bytes], None],
        on_lost: Callable[[Exception], None],
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self._on_data = on_data
        self._on_lost = on_lost
        self._serial: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def is_open(self) -> bool:
        return self._serial is not None and self._thread is not None and self._thread.is_alive()

    async def open(self) -> None:
        try:
            port = await asyncio.to_thread(
                serial.serial_for_url,
                self.port,
                baudrate=self.baudrate,
                timeout=READ_POLL_S,
                write_timeout=WRITE_TIMEOUT_S,
            )
        except ValueError as err:
            raise DeviceUrlError(f"{self.port}: {err}") from err
        except (serial.SerialException, OSError) as err:
            raise DeviceUnavailable(_unavailable_reason(err), f"{self.port}: {err}") from err
        self._serial = port
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._read_loop, args=(port, loop), name=f"serial {self.port}", daemon=True
        )
        self._thread.start()

    def _read_loop(self, port: Any, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while not self._stopping.is_set():
                data = port.read(max(1, port.in_waiting))
                if data:
                    loop.call_soon_threadsafe(self._on_data, data)
        except Exception as err:  # pyserial raises SerialException, OSError, TypeError ...
            if not self._stopping.is_set():
                with contextlib.suppress(RuntimeError):  # the loop is already closed
                    loop.call_soon_threadsafe(self._on_lost, err)

    async def write(self, data: bytes) -> None:
        port = self._serial
        if port is None or not self.is_open:
            raise LinkLost(f"{self.port}: the port is not open")
        try:
            await asyncio.to_thread(port.write, data)
        except (serial.SerialException, OSError) as err:
            raise LinkLost(f"{self.port}: write failed: {err}") from err

    async def close(self) -> None:
        self._stopping.set()
        thread, port = self._thread, self._serial
        self._thread = self._serial = None
        if thread is not None:
            await asyncio.to_thread(thread.join, 1.0)
        if port is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(port.close)


def _unavailable_reason(err: Exception) -> Unavailable:
    code = getattr(err, "errno", None)
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return Unavailable.NOT_FOUND
    if code in (errno.EACCES, errno.EPERM):
        return Unavailable.NOT_PERMITTED
    return Unavailable.CONNECT_FAILED


# -- URL entry points -------------------------------------------------------------------------


class _SerialEntry(Treadmill):
    """Registered per pyserial scheme; ``from_url`` builds the driver ``?protocol=`` names."""

    url_options: ClassVar[dict[str, str]] = URL_OPTIONS
    default_profile: ClassVar[str] = "generic-csafe"
    supports_pause: ClassVar[bool] = False

    @classmethod
    def from_url(cls, url: DeviceUrl, *, clock: Clock, profile: Profile | None = None) -> Self:
        protocol = url.options.get("protocol")
        if protocol not in PROTOCOL_DRIVERS:
            what = "is missing" if protocol is None else f"{protocol!r} is not known"
            raise DeviceUrlError(
                f"{url.text!r}: option protocol {what}; use protocol=csafe or "
                f"protocol=trackmaster\n  grammar: {cls.url_grammar}"
            )
        module_name, class_name = PROTOCOL_DRIVERS[protocol]
        driver = getattr(importlib.import_module(module_name), class_name)
        # The entry point stands for every protocol driver behind this scheme; callers use the
        # Treadmill interface only, which the returned driver implements.
        return cast(Self, driver.from_url(url, clock=clock, profile=profile))

    def __init__(self, url: DeviceUrl, profile: Profile, clock: Clock) -> None:
        raise TypeError(f"{type(self).__name__} is a URL entry point: use from_url()")

    # Never reached (no instance exists); they complete the interface for the type checker.
    @property
    def capabilities(self) -> Capabilities:
        raise TypeError("not a driver")

    @property
    def connected(self) -> bool:
        return False

    async def connect(self) -> None:
        raise TypeError("not a driver")

    async def _do_close(self) -> None:
        raise TypeError("not a driver")

    async def _do_start(self) -> None:
        raise TypeError("not a driver")

    async def _do_pause(self) -> None:
        raise TypeError("not a driver")

    async def _do_stop(self) -> None:
        raise TypeError("not a driver")

    async def _do_set_speed(self, speed: Quantity) -> None:
        raise TypeError("not a driver")

    async def _do_set_incline(self, incline: Quantity) -> None:
        raise TypeError("not a driver")


class SerialPortDevice(_SerialEntry):
    scheme: ClassVar[str] = "serial"
    url_grammar: ClassVar[str] = grammar_for("serial")


class SocketDevice(_SerialEntry):
    scheme: ClassVar[str] = "socket"
    url_grammar: ClassVar[str] = grammar_for("socket")


class Rfc2217Device(_SerialEntry):
    scheme: ClassVar[str] = "rfc2217"
    url_grammar: ClassVar[str] = grammar_for("rfc2217")


class LoopDevice(_SerialEntry):
    scheme: ClassVar[str] = "loop"
    url_grammar: ClassVar[str] = grammar_for("loop")


# -- what the protocol drivers share ----------------------------------------------------------


class SerialTreadmill[Message](Treadmill):
    """A treadmill on a serial line that answers one request at a time.

    Subclasses say how bytes become messages (:meth:`_decode`), what to ask on connecting
    (:meth:`_handshake`) and how to read telemetry (:meth:`_poll`).
    """

    url_options: ClassVar[dict[str, str]] = URL_OPTIONS
    supports_pause: ClassVar[bool] = False  # neither protocol has a pause command
    protocol: ClassVar[str]
    default_baud: ClassVar[int]
    #: rejected requests are asked again (CSAFE's rule), or reported at once (Trackmaster)
    retry_rejections: ClassVar[bool] = True

    def __init__(self, url: DeviceUrl, profile: Profile, clock: Clock) -> None:
        super().__init__(url, profile, clock)
        grammar = grammar_for(url.scheme)
        if profile.protocol != self.protocol:
            raise DeviceUrlError(
                f"{url.text!r}: profile {profile.name!r} is for {profile.protocol}, "
                f"not {self.protocol}\n  grammar: {grammar}"
            )
        self.port = pyserial_port(url, grammar)
        baud = url.number("baud", grammar, self.default_baud)
        if baud <= 0 or baud != int(baud):
            raise DeviceUrlError(f"{url.text!r}: baud must be a whole positive number")
        self.baudrate = int(baud)
        self.poll_interval = url.number("poll", grammar, POLL_DEFAULT_S)
        if not 0 < self.poll_interval <= 1.0:
            raise DeviceUrlError(
                f"{url.text!r}: poll={self.poll_interval:g} must be above 0 and at most 1 s "
                f"(telemetry at least once a second)\n  grammar: {grammar}"
            )
        self.reconnect = url.flag("reconnect", grammar, True)
        self.name = f"{self.protocol} treadmill on {self.port}"
        self._link: SerialLink | None = None
        self._inbox: asyncio.Queue[Message | ProtocolError | LinkLost] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._link_up = asyncio.Event()
        self._connected = False
        self._closing = False
        self._poller: asyncio.Task[None] | None = None
        self._reconnector: asyncio.Task[None] | None = None
        self._last_telemetry_at: float | None = None
        self._link_reported_lost = False
        self._commands_waiting = 0

    @classmethod
    def from_url(cls, url: DeviceUrl, *, clock: Clock, profile: Profile | None = None) -> Self:
        if profile is None:
            profile = get_profile(url.options.get("profile", cls.default_profile))
        return cls(url, profile, clock)

    # -- what subclasses provide --------------------------------------------------------------

    @abc.abstractmethod
    def _decode(self, data: bytes) -> list[Message | ProtocolError]:
        """Bytes off the wire -> complete messages (or errors of broken ones). Never raises."""

    @abc.abstractmethod
    async def _handshake(self) -> None:
        """Make sure a machine of this protocol answers; raise DeviceError if not."""

    @property
    @abc.abstractmethod
    def polls(self) -> bool:
        """Whether this machine can be asked for telemetry."""

    @abc.abstractmethod
    async def _poll(self) -> Telemetry:
        """Ask the machine for telemetry once (only called when :attr:`polls`)."""

    # -- capabilities -------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        speed, incline = self.profile.speed, self.profile.incline
        return Capabilities(
            speed=Range(speed.min, speed.max, speed.increment),
            incline=Range(incline.min, incline.max, incline.increment),
            can_control=not self.profile.quirks.read_only,
        )

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def reports_belt(self) -> bool:
        return self.polls

    @property
    def link_up(self) -> bool:
        return self._link_up.is_set()

    async def connect(self) -> None:
        self._closing = False
        await self._open_link()
        try:
            await self._handshake()
        except DeviceError as err:
            await self.close()  # also ends a reconnect the handshake's failure may have begun
            raise DeviceUnavailable(
                Unavailable.NOT_A_TREADMILL, f"{self.port}: no {self.protocol} answer ({err})"
            ) from err
        self._connected = True
        if self.polls:
            self._poller = asyncio.create_task(self._poll_loop(), name=f"{self.protocol}-poll")

    async def _do_close(self) -> None:
        self._closing = True
        self._connected = False
        for task in (self._poller, self._reconnector):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._poller = self._reconnector = None
        await self._close_link()

    async def _open_link(self) -> None:
        link = SerialLink(self.port, self.baudrate, self._on_data, self._on_lost)
        await link.open()
        self._link = link
        self._drain()
        self._link_up.set()

    async def _close_link(self) -> None:
        self._link_up.clear()
        link, self._link = self._link, None
        if link is not None:
            await link.close()

    def _on_data(self, data: bytes) -> None:
        for message in self._decode(data):
            if isinstance(message, ProtocolError):
                log.info("%s: %s", self.port, message)
            self._inbox.put_nowait(message)

    def _on_lost(self, err: Exception) -> None:
        if self._closing or not self._link_up.is_set():
            return
        self._link_up.clear()
        lost = LinkLost(f"{self.port}: the port went away ({err})")
        self._inbox.put_nowait(lost)
        self._report_lost(str(lost))
        if self.reconnect and (self._reconnector is None or self._reconnector.done()):
            self._reconnector = asyncio.create_task(self._reconnect(), name="serial-reconnect")

    async def _reconnect(self) -> None:
        await self._close_link()
        while not self._closing:
            await asyncio.sleep(RECONNECT_EVERY_S)
            try:
                await self._open_link()
            except DeviceError as err:
                log.debug("%s: still gone (%s)", self.port, err)
                continue
            log.info("%s: port is back", self.port)
            if not self.polls:  # nothing else will show the machine is back
                self._report_restored()
            return

    def _report_lost(self, why: str) -> None:
        if not self._link_reported_lost:
            self._link_reported_lost = True
            log.warning("%s", why)
            self.publish(MachineEvent(self.clock.now(), MachineEventKind.LINK_LOST))

    def _report_restored(self) -> None:
        if self._link_reported_lost:
            self._link_reported_lost = False
            log.info("%s: link restored", self.port)
            self.publish(MachineEvent(self.clock.now(), MachineEventKind.LINK_RESTORED))

    # -- asking the machine -------------------------------------------------------------------

    def _drain(self) -> None:
        while not self._inbox.empty():
            stale = self._inbox.get_nowait()
            log.debug("%s: discarding %r", self.port, stale)

    async def _exchange(
        self, request: bytes, matches: Callable[[Message], bool], within_s: float
    ) -> Message:
        """Send ``request``; the first message ``matches`` accepts, within ``within_s``.

        The wait for an exchange already under way is not counted (callers bound it).
        Raises TimeoutError, ProtocolError (a garbled answer) or LinkLost.
        """
        async with self._lock:
            link = self._link
            if link is None or not self._link_up.is_set():
                raise LinkLost(f"{self.port}: the port is not open")
            self._drain()  # answers to earlier, abandoned requests
            async with asyncio.timeout(within_s):
                await link.write(request)
                while True:
                    message = await self._inbox.get()
                    if isinstance(message, LinkLost | ProtocolError):
                        raise message
                    if matches(message):
                        return message
                    log.info("%s: ignoring unexpected answer %r", self.port, message)

    @property
    def command_budget_s(self) -> float:
        """How long one command may take, retries included (inside the session's timeout)."""
        return self.profile.confirm.command_timeout_s * BUDGET_SHARE

    @property
    def reply_timeout(self) -> float:
        """How long one answer may take: the 1 s rule, or less to leave room for retries."""
        return min(REPLY_WITHIN_S, self.command_budget_s / ATTEMPTS)

    async def _request(
        self,
        command: str,
        request: bytes,
        matches: Callable[[Message], bool],
        verdict: Callable[[Message], CommandRejected | None],
    ) -> Message:
        """Ask until answered and accepted, within the profile's command timeout."""
        budget = self.command_budget_s
        failure: DeviceError | None = None
        self._commands_waiting += 1  # polls step aside until this is done
        try:
            async with asyncio.timeout(budget):
                for attempt in range(1, ATTEMPTS + 1):
                    if not self._link_up.is_set():
                        failure = LinkLost(f"{command}: {self.port} is gone")
                        await self._link_up.wait()
                    try:
                        answer = await self._exchange(request, matches, self.reply_timeout)
                    except TimeoutError:
                        failure = CommandTimeout(command, budget)
                        log.info("%s: no answer to %s (try %d)", self.port, command, attempt)
                        continue
                    except (ProtocolError, LinkLost) as err:
                        failure = err
                        log.info("%s: %s (try %d)", self.port, err, attempt)
                        continue
                    rejection = verdict(answer)
                    if rejection is None:
                        return answer
                    log.info("%s: %s (try %d)", self.port, rejection, attempt)
                    if not self.retry_rejections:
                        raise rejection
                    failure = rejection
                    await asyncio.sleep(RETRY_PAUSE_S)
        except TimeoutError:
            failure = failure or CommandTimeout(command, budget)
        finally:
            self._commands_waiting -= 1
        if isinstance(failure, ProtocolError):
            raise ProtocolError(f"{command}: no readable answer ({failure})") from failure
        raise failure or CommandTimeout(command, budget)

    def _refuse_read_only(self, command: str, instruction: str) -> None:
        if self.profile.quirks.read_only:
            raise CommandRejected(command, Rejection.READ_ONLY, instruction)

    # -- telemetry ----------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        stale_after = self.profile.confirm.telemetry_stale_s
        self._last_telemetry_at = self.clock.now()
        next_at = self.clock.now()
        while True:
            if self._link_up.is_set() and not self._commands_waiting:
                try:
                    telemetry = await self._poll()
                except (DeviceError, TimeoutError) as err:
                    log.debug("%s: poll failed: %r", self.port, err)
                else:
                    self._last_telemetry_at = telemetry.at
                    self.publish(telemetry)
                    self._report_restored()
            silent_s = self.clock.now() - self._last_telemetry_at
            if silent_s > stale_after:
                self._report_lost(
                    f"{self.port}: no telemetry for {silent_s:.1f} s "
                    f"(stale after {stale_after:g} s)"
                )
            next_at = max(next_at + self.poll_interval, self.clock.now())
            await self.clock.sleep_until(next_at)
