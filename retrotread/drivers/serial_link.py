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

One frame in flight, always. A frame is written only when the answer to the previous one has
arrived or its reply window (``REPLY_WITHIN_S``, the CSAFE 1 s rule) has passed — also when the
caller that wrote it gave up or was cancelled — and the first answer that arrives while a
frame is in flight is that frame's answer. Answers are never paired with frames by their
content; a protocol may only say that an answer cannot be this frame's (a stale duplicate,
:attr:`Fit.SKIP`) or may not be (:attr:`Fit.HOLD`: kept unless a fitting one follows within
``HELD_ANSWER_GRACE_S``). A frame nobody answers is written once more
(``UNANSWERED_RESENDS``), then the command is a :class:`~retrotread.errors.CommandTimeout`; the
base class bounds the whole command by the profile's ``confirm.command_timeout_s``.

When the port disappears (a USB adapter pulled out) the driver reports ``LINK_LOST`` and
reopens the same URL until it is back; a console that stops answering (``SILENT_FRAMES`` frames
in a row unanswered — a command that goes unanswered is followed by a status frame to tell —
or telemetry older than ``confirm.telemetry_stale_s``) is reported the same way, and a command
caught in the silence ends in :class:`~retrotread.errors.LinkLost`. The first answer after
either reports ``LINK_RESTORED``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import enum
import errno
import importlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self

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
from retrotread.trace import Direction, FrameKind, LinkTap, tap_for

log = logging.getLogger(__name__)

REPLY_WITHIN_S = 1.0  # CSAFE: an answer is expected within 1 s
UNANSWERED_RESENDS = 1  # a frame nobody answered goes out once more
GARBLED_RESENDS = 2  # a frame whose answer could not be read goes out again, up to this
HELD_ANSWER_GRACE_S = 0.2  # how long a doubtful answer waits for a fitting one to follow
RETRY_PAUSE_S = 0.05
SILENT_FRAMES = 2  # frames in a row unanswered (polls, commands) that make a console silent
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


class Fit(enum.Enum):
    """Whether an answer that arrived while a frame is in flight is that frame's answer."""

    TAKE = "take"  # it is
    HOLD = "hold"  # perhaps (kept unless a fitting answer follows within the grace)
    SKIP = "skip"  # it cannot be (a stale duplicate of an earlier answer): keep waiting


class Totals:
    """A console's running counter (distance, work time) as an amount since it was first read.

    A counter that goes back (the console began a new workout) is followed on from zero, so a
    session's distance never starts at the machine's odometer and never goes backward.
    """

    def __init__(self) -> None:
        self.total = 0.0
        self._last: float | None = None

    def update(self, reading: float) -> float:
        if self._last is not None:
            self.total += reading - self._last if reading >= self._last else reading
        self._last = reading
        return self.total


# -- the transport ----------------------------------------------------------------------------


class SerialLink:
    """One open pyserial port: a reader thread feeding the loop, writes off the loop."""

    def __init__(
        self,
        port: str,
        baudrate: int,
        on_data: Callable[[bytes], None],
        on_lost: Callable[[Exception], None],
        tap: LinkTap | None = None,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self._on_data = on_data
        self._on_lost = on_lost
        self._tap = tap
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
            raise DeviceUnavailable(
                _unavailable_reason(err), _port_problem(self.port, err)
            ) from err
        self._serial = port
        if self._tap is not None:
            self._tap.event("opened", baud=self.baudrate)
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
                    loop.call_soon_threadsafe(self._received, data)
        except Exception as err:  # pyserial raises SerialException, OSError, TypeError ...
            if not self._stopping.is_set():
                with contextlib.suppress(RuntimeError):  # the loop is already closed
                    loop.call_soon_threadsafe(self._on_lost, err)

    def _received(self, data: bytes) -> None:
        if self._tap is not None:
            self._tap.frame(Direction.IN, data, FrameKind.SERIAL)
        self._on_data(data)

    async def write(self, data: bytes) -> None:
        port = self._serial
        if port is None or not self.is_open:
            raise LinkLost(f"{self.port}: the port is not open")
        if self._tap is not None:
            self._tap.frame(Direction.OUT, data, FrameKind.SERIAL)
        try:
            await asyncio.to_thread(port.write, data)
        except (serial.SerialException, OSError) as err:
            raise LinkLost(f"{self.port}: write failed: {err}") from err

    async def close(self) -> None:
        self._stopping.set()
        thread, port = self._thread, self._serial
        self._thread = self._serial = None
        if self._tap is not None and port is not None:
            self._tap.event("closed")
        if thread is not None:
            await asyncio.to_thread(thread.join, 1.0)
        if port is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(port.close)


def _range(allowed: Range) -> dict[str, str]:
    return {
        "min": str(allowed.low),
        "max": str(allowed.high),
        "increment": str(allowed.increment),
    }


def _port_problem(port: str, err: Exception) -> str:
    """pyserial's message repeats itself ("[Errno 2] could not open port X: [Errno 2] No such
    file..."): say it once, and where to look."""
    code = getattr(err, "errno", None)
    if isinstance(code, int) and code in errno.errorcode:
        hint = " (`retrotread scan` lists the serial ports here)" if code == errno.ENOENT else ""
        return f"{port}: {os.strerror(code)}{hint}"
    return f"{port}: {err}"


def _unavailable_reason(err: Exception) -> Unavailable:
    code = getattr(err, "errno", None)
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return Unavailable.NOT_FOUND
    if code in (errno.EACCES, errno.EPERM):
        return Unavailable.NOT_PERMITTED
    return Unavailable.CONNECT_FAILED


# -- URL entry points -------------------------------------------------------------------------


class SerialScheme:
    """What a pyserial scheme opens (registered once per scheme): the protocol driver that
    ``?protocol=`` names, :class:`~retrotread.drivers.csafe.CsafeDriver` or
    :class:`~retrotread.drivers.trackmaster.TrackmasterDriver`."""

    def __init__(self, scheme: str) -> None:
        self.scheme = scheme
        self.url_grammar = grammar_for(scheme)
        self.url_options: Mapping[str, str] = URL_OPTIONS

    def from_url(
        self, url: DeviceUrl, *, clock: Clock, profile: Profile | None = None
    ) -> SerialTreadmill[Any]:
        protocol = url.options.get("protocol")
        if protocol not in PROTOCOL_DRIVERS:
            what = "is missing" if protocol is None else f"{protocol!r} is not known"
            raise DeviceUrlError(
                f"{url.text!r}: option protocol {what}; use protocol=csafe or "
                f"protocol=trackmaster\n  grammar: {self.url_grammar}"
            )
        module_name, class_name = PROTOCOL_DRIVERS[protocol]
        driver: type[SerialTreadmill[Any]] = getattr(
            importlib.import_module(module_name), class_name
        )
        return driver.from_url(url, clock=clock, profile=profile)


SERIAL = SerialScheme("serial")
SOCKET = SerialScheme("socket")
RFC2217 = SerialScheme("rfc2217")
LOOP = SerialScheme("loop")


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
        #: loop time until which the last frame written may still be answered (None: answered)
        self._answer_due: float | None = None
        #: frames in a row that went unanswered (any answer, even garbled, starts again)
        self._unanswered = 0
        #: where the wire is traced (``--trace``), for every link this driver opens
        self._tap: LinkTap | None = None

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
        if self._tap is None:
            self._tap = tap_for(self.protocol, str(self.url), self.profile.name, self.clock)
        await self._open_link()
        try:
            await self._handshake()
        except DeviceError as err:
            await self.close()  # also ends a reconnect the handshake's failure may have begun
            raise DeviceUnavailable(
                Unavailable.NOT_A_TREADMILL, f"{self.port}: no {self.protocol} answer ({err})"
            ) from err
        self._connected = True
        if self._tap is not None:
            self._tap.declare(self.declarations())
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

    def declarations(self) -> dict[str, object]:
        """What the machine and its profile say it is, for a trace's header and for probe.

        A serial console declares little over the wire: whether it answers telemetry
        requests, the state it was found in, its speed unit; the ranges are the profile's.
        """
        capabilities = self.capabilities
        declared: dict[str, object] = {
            "protocol": self.protocol,
            "profile": self.profile.name,
            "baud": self.baudrate,
            "reports_belt": self.reports_belt,
            "can_control": capabilities.can_control,
            "speed": _range(capabilities.speed),
            "incline": _range(capabilities.incline),
        }
        for name in ("state", "speed_unit", "grade_unit", "status_query", "sets_in_workout"):
            value = getattr(self, name, None)
            if isinstance(value, bool):
                declared[name] = value
            elif value is not None:  # a CSAFE unit by its resolution, a state by its name
                shown = getattr(value, "resolution", None) or getattr(value, "name", None)
                declared[name] = str(shown or value)
        return declared

    async def _open_link(self) -> None:
        link = SerialLink(self.port, self.baudrate, self._on_data, self._on_lost, self._tap)
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

    def _lost_track(self) -> None:
        """An answer went missing or could not be read (protocols that count frames reset)."""

    async def _settle(self) -> None:
        """Wait out a frame written earlier whose answer is still due (its caller gave up)."""
        due = self._answer_due
        if due is None:
            return
        loop = asyncio.get_running_loop()
        remaining = due - loop.time()
        try:
            async with asyncio.timeout(max(0.0, remaining)):
                late = await self._inbox.get()
            log.info("%s: late answer to an abandoned frame: %r", self.port, late)
            self._unanswered = 0
        except TimeoutError:
            self._unanswered += 1
        self._answer_due = None
        self._lost_track()

    async def _exchange(
        self, request: bytes, fit: Callable[[Message], Fit]
    ) -> tuple[Message, bool]:
        """Write ``request`` and return its answer, and whether it was a held (doubtful) one.

        Raises TimeoutError (no answer within the reply window), ProtocolError (a garbled
        answer) or LinkLost. A cancelled exchange leaves its frame in flight until it is
        answered or its window passes: the next exchange waits for that first.
        """
        async with self._lock:
            await self._settle()
            link = self._link
            if link is None or not self._link_up.is_set():
                raise LinkLost(f"{self.port}: the port is not open")
            self._drain()  # nothing was in flight: whatever came is nobody's answer
            loop = asyncio.get_running_loop()
            self._answer_due = due = loop.time() + REPLY_WITHIN_S
            await link.write(request)
            held: Message | None = None
            until = due
            while True:
                try:
                    async with asyncio.timeout(max(0.0, until - loop.time())):
                        message = await self._inbox.get()
                except TimeoutError:
                    if held is None:
                        self._answer_due = None
                        self._unanswered += 1
                        self._lost_track()
                        raise
                    self._answered()
                    return held, True
                if isinstance(message, LinkLost):
                    raise message
                if isinstance(message, ProtocolError):
                    self._answered()  # it was the answer, garbled
                    self._lost_track()
                    raise message
                verdict = fit(message)
                if verdict is Fit.TAKE:
                    self._answered()
                    return message, False
                if verdict is Fit.HOLD and held is None:
                    held, until = message, min(due, loop.time() + HELD_ANSWER_GRACE_S)
                else:
                    log.info("%s: not an answer to this frame: %r", self.port, message)

    def _answered(self) -> None:
        self._answer_due = None
        self._unanswered = 0
        self._report_restored()

    async def _request(
        self, command: str, request: bytes, fit: Callable[[Message], Fit]
    ) -> tuple[Message, bool]:
        """One frame until it is answered readably: an unanswered frame goes out once more,
        a garbled answer is asked again; then CommandTimeout or ProtocolError."""
        self._commands_waiting += 1  # polls step aside until this is done
        unanswered = garbled = 0
        try:
            while True:
                if not self._link_up.is_set():
                    raise LinkLost(f"{command}: {self.port} is gone; nothing was sent")
                try:
                    return await self._exchange(request, fit)
                except TimeoutError:
                    unanswered += 1
                    log.info("%s: no answer to %s (try %d)", self.port, command, unanswered)
                    if unanswered > UNANSWERED_RESENDS:
                        raise CommandTimeout(command, REPLY_WITHIN_S * unanswered) from None
                    if self._unanswered >= SILENT_FRAMES or not await self._answers():
                        # Nothing at all answers: the console is silent, not this command
                        # unanswered (one meaning per fault: a lost link, as when polls go
                        # unanswered). What it did with the frame is unknown.
                        self._report_lost(f"{self.port}: the console stopped answering")
                        raise LinkLost(
                            f"{command}: the console stopped answering; outcome unknown"
                        ) from None
                except ProtocolError as err:
                    garbled += 1
                    log.info("%s: %s (try %d)", self.port, err, garbled)
                    if garbled > GARBLED_RESENDS:
                        raise ProtocolError(f"{command}: no readable answer ({err})") from err
                    await asyncio.sleep(RETRY_PAUSE_S)
        finally:
            self._commands_waiting -= 1

    def _probe(self) -> tuple[bytes, Callable[[Message], Fit]] | None:
        """A harmless frame that any live console of this protocol answers (None: none)."""
        return None

    async def _answers(self) -> bool:
        """Whether the console answers anything at all now (True when it cannot be asked)."""
        probe = self._probe()
        if probe is None:
            return True
        try:
            await self._exchange(*probe)
        except TimeoutError:
            return False
        except ProtocolError:
            return True  # garbled, but an answer
        return True

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
                except (CommandTimeout, TimeoutError) as err:
                    log.debug("%s: poll unanswered: %r", self.port, err)
                    if self._unanswered >= SILENT_FRAMES:
                        # The port is there but the console answers nothing: as good as gone,
                        # and said so before the telemetry goes stale (one meaning per fault).
                        self._report_lost(f"{self.port}: the console stopped answering")
                except DeviceError as err:
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
