"""``ble://`` — treadmills speaking Bluetooth FTMS (Fitness Machine Service 0x1826).

Grammar::

    ble://ADDRESS[?option=value&...]       e.g. ble://AA:BB:CC:DD:EE:FF
    ble://?name=NAME[&option=value&...]    e.g. ble://?name=WalkingPad*

The FTMS client codec is pyftms's; bleak carries it and bleak-retry-connector makes each
connection (with its own retries and backoff). This driver adds what a treadmill controller
needs on top:

* **Connect**: find the machine by address or name (scan for 0x1826), pick the device profile
  from its name unless the URL names one, connect through pyftms (which reads Device
  Information, the supported ranges, and enables every notification and the control point
  indication before anything is written), then send Request Control and check the answer.
  The machine's speed and incline ranges and increments become :attr:`capabilities`.
* **Commands** map to the control point: set speed ``02``, set incline ``03``, start ``07``,
  pause ``08 02``, stop ``08 01``. Values arrive quantized by the governor; the integer that
  goes on the wire is computed exactly (:func:`~retrotread.units.wire_integer`) and handed to
  pyftms as ``(n + 0.5) * resolution``, because pyftms converts with ``int(value / res)``,
  which truncates (4.19 km/h would otherwise go out as 418).
* **Result codes** become :class:`~retrotread.errors.CommandRejected` with a reason.
  "Control not permitted" re-requests control once and retries; a second refusal publishes
  ``CONTROL_LOST`` (the session pauses the program) and fails. "Operation failed" (``04``)
  is also FTMS's answer to a request that finds the machine already there: Stop when
  stopped is success for stop's purpose — after a Pause, which a machine that refuses to
  stop a moving belt (KingSmith R3) needs and any other answers 04 too; if no fresh reading
  follows and none said the belt moves, it becomes the still belt's zero reading. Pause is
  success likewise when the belt is known not to run, Start when the belt is known to run;
  otherwise ``04`` is a refusal (docs/ftms.md).
* **Encryption**: a machine whose control point needs an encrypted link answers a write
  with ATT "insufficient encryption/authentication"; the driver pairs (bleak ``pair()``)
  and writes once more — the write was refused at the ATT layer, so nothing had happened.
* **Reports**: Treadmill Data becomes :class:`Telemetry` (pyftms joins records split over
  several notifications, bit 0 "more data"); Machine Status becomes :class:`MachineEvent` —
  ``02`` stopped/paused at the console, ``03`` safety key, ``04`` started at the console,
  target changes made at the console — except where the status is the machine announcing
  what our own procedure just did (our set value, or the Start/Stop/Pause we just sent).
  Control Permission Lost (``FF``) is re-requested once; if refused, ``CONTROL_LOST`` is
  published.
* **Time**: a procedure has the profile's ``command_timeout_s`` (FTMS: 30 s) from its turn on
  the wire. Unanswered, it has failed and its outcome is unknown: the driver sends nothing
  more on that link, drops it, reconnects, and the command fails with
  :class:`~retrotread.errors.CommandTimeout` — the same outcome as on every other link.
* **Lost link**: ``LINK_LOST`` is published, commands fail fast with
  :class:`~retrotread.errors.LinkLost`, and the driver reconnects with backoff through
  bleak-retry-connector until closed; after reconnecting it requests control again, waits for
  fresh telemetry (the belt's state, re-read), then publishes ``LINK_RESTORED``. A machine
  that reports only changes may send nothing for a still belt: ``LINK_RESTORED`` then comes
  with :attr:`latest` unknown, and a Stop answered "already stopped" settles it.

Three small extensions of pyftms's public API are used, by subclassing (see
:class:`_PyftmsTreadmill`): an explicit Request Control, a hook on Machine Status ``FF``,
which pyftms handles silently, and pairing over pyftms's own ``BleakClient`` (``_cli``).
``tests/test_ble_seam.py`` and ``tests/test_ble_driver.py`` fail loudly if one moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractContextManager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, Self

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDBusError,
    BleakError,
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)
from bleak.uuids import normalize_uuid_str
from pyftms import (
    ControlEvent,
    MachineType,
    NotFitnessMachineError,
    ResultCode,
    SetupEvent,
    TrainingStatusCode,
    UpdateEvent,
    get_machine_type_from_service_data,
)
from pyftms import Treadmill as PyftmsTreadmill
from pyftms.client.backends import MachineController
from pyftms.models import ControlCode, MachineStatusCode

from retrotread.clock import Clock
from retrotread.drivers.base import (
    BeltStatus,
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
    Rejection,
    Unavailable,
)
from retrotread.profiles import Profile, get_profile, profile_for_device
from retrotread.units import Increment, Quantity, Unit, format_number, percent, wire_integer

log = logging.getLogger(__name__)

FTMS_SERVICE = normalize_uuid_str("1826")
SCAN_TIMEOUT_S = 10.0
RECONNECT_FIRST_DELAY_S = 0.5
RECONNECT_MAX_DELAY_S = 8.0
#: After reconnecting, wait this long at most for a Treadmill Data record (the belt re-read).
REREAD_WAIT_S = 3.0
#: FTMS 1.0: a control point procedure not answered within 30 s has failed. The profile's
#: ``command_timeout_s`` is the budget used; generic FTMS profiles say exactly this.
FTMS_PROCEDURE_TIMEOUT_S = 30.0
#: A machine that announces our own Start/Stop/Pause on Machine Status does so around the
#: answer; a matching status this long after it is that announcement, not the console.
ECHO_WINDOW_S = 2.0

#: What FTMS fields carry: speed in 0.01 km/h, incline in 0.1 %. Machines with the mph quirk
#: read (and echo) the control point's speed field as 0.01 mph, while their Treadmill Data
#: and speed range stay in km/h.
SPEED_RESOLUTION = Increment.of("0.01", Unit.KMH)
SPEED_RESOLUTION_MPH = Increment.of("0.01", Unit.MPH)
INCLINE_RESOLUTION = Increment.of("0.1", Unit.PERCENT)

#: Makes ``BleakClient``/``BleakScanner`` reach some other radio while the driver is open
#: (the simulator's); ``None`` uses the platform's Bluetooth.
BleakRouting = Callable[[], AbstractContextManager[object]]

_REJECTIONS = {
    ResultCode.NOT_SUPPORTED: Rejection.NOT_SUPPORTED,
    ResultCode.INVALID_PARAMETER: Rejection.INVALID_PARAMETER,
    ResultCode.FAILED: Rejection.FAILED,
    ResultCode.NOT_PERMITTED: Rejection.NOT_PERMITTED,
}

#: ATT errors that mean "this attribute needs a paired (encrypted) link".
_NEEDS_PAIRING = {
    BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION,
    BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION,
    BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION_KEY_SIZE,
}

_STOPPED_STATUSES = {
    TrainingStatusCode.IDLE,
    TrainingStatusCode.PRE_WORKOUT,
    TrainingStatusCode.POST_WORKOUT,
}

_QUIRK_FLAGS = ("request_control_each_command", "start_before_speed", "speed_field_mph")


# -- Bluetooth availability ----------------------------------------------------------------------


def bluetooth_unavailable(err: BaseException) -> DeviceUnavailable:
    """A clear error for "Bluetooth is off, missing, or not ours to use"."""
    if isinstance(err, BleakBluetoothNotAvailableError):
        reason = err.reason
        if reason is BleakBluetoothNotAvailableReason.POWERED_OFF:
            return DeviceUnavailable(
                Unavailable.ADAPTER_OFF, "turn Bluetooth on (e.g. `bluetoothctl power on`)"
            )
        if reason in (
            BleakBluetoothNotAvailableReason.DENIED_BY_USER,
            BleakBluetoothNotAvailableReason.DENIED_BY_SYSTEM,
            BleakBluetoothNotAvailableReason.DENIED_BY_UNKNOWN,
        ):
            return DeviceUnavailable(Unavailable.NOT_PERMITTED, _PERMISSION_HINT)
        return DeviceUnavailable(Unavailable.ADAPTER_MISSING, f"no usable Bluetooth LE ({err})")
    if isinstance(err, PermissionError):
        return DeviceUnavailable(Unavailable.NOT_PERMITTED, _PERMISSION_HINT)
    if isinstance(err, FileNotFoundError):
        return DeviceUnavailable(
            Unavailable.ADAPTER_MISSING,
            "no Bluetooth service on this computer (BlueZ/D-Bus not reachable)",
        )
    if isinstance(err, BleakDBusError):
        if err.dbus_error.endswith(".NotReady"):
            return DeviceUnavailable(Unavailable.ADAPTER_OFF, "turn Bluetooth on and try again")
        if err.dbus_error.endswith((".NotPermitted", ".AccessDenied")):
            return DeviceUnavailable(Unavailable.NOT_PERMITTED, _PERMISSION_HINT)
        if err.dbus_error.endswith(".ServiceUnknown"):
            return DeviceUnavailable(
                Unavailable.ADAPTER_MISSING, "the Bluetooth service (bluetoothd) is not running"
            )
    return DeviceUnavailable(Unavailable.ADAPTER_MISSING, f"Bluetooth is not usable: {err}")


_PERMISSION_HINT = (
    "this user may not use Bluetooth (Linux: join the 'bluetooth' group; macOS: allow the "
    "terminal under Privacy & Security > Bluetooth)"
)
_BLUETOOTH_ERRORS = (BleakError, OSError)


# -- scanning ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sighting:
    """One FTMS machine heard while scanning."""

    device: BLEDevice
    advertisement: AdvertisementData
    machine_type: MachineType | None  # None: the advert's FTMS service data is unreadable

    @property
    def address(self) -> str:
        return self.device.address

    @property
    def name(self) -> str:
        return self.advertisement.local_name or self.device.name or self.device.address

    @property
    def rssi(self) -> int:
        return self.advertisement.rssi

    @property
    def is_treadmill(self) -> bool:
        return self.machine_type is not None and MachineType.TREADMILL in self.machine_type

    @property
    def kind(self) -> str:
        if self.machine_type is None:
            return "unknown"
        return " / ".join(
            (t.name or "?").lower().replace("_", " ") for t in MachineType if t in self.machine_type
        )


async def scan(
    seconds: float, *, until: Callable[[Sighting], bool] | None = None
) -> list[Sighting]:
    """Machines advertising FTMS, strongest signal first; stops early once ``until`` matches.

    Raises :class:`~retrotread.errors.DeviceUnavailable` when Bluetooth is off, missing or
    not permitted.
    """
    found: dict[str, Sighting] = {}
    matched = asyncio.Event()

    def heard(device: BLEDevice, advertisement: AdvertisementData) -> None:
        try:
            machine_type: MachineType | None = get_machine_type_from_service_data(advertisement)
        except NotFitnessMachineError:
            machine_type = None
        sighting = Sighting(device, advertisement, machine_type)
        found[device.address] = sighting
        if until is not None and until(sighting):
            matched.set()

    try:
        async with BleakScanner(heard, service_uuids=[FTMS_SERVICE]):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await matched.wait()
    except _BLUETOOTH_ERRORS as err:
        raise bluetooth_unavailable(err) from err
    return sorted(found.values(), key=lambda s: (-s.rssi, s.name))


# -- pyftms, extended where its public API stops -------------------------------------------------


class _ControlWatch(MachineController):  # type: ignore[misc]  # pyftms ships no type hints
    """pyftms's control point handler, telling us when Machine Status reports ``FF``.

    pyftms 0.4.15 cannot handle Control Permission Lost itself: it decodes the op code as a
    u8 whose 0xFF means "no value", and then fails with ``KeyError`` in the notification
    callback. So ``FF`` is taken here, before pyftms sees it.
    """

    def __init__(self, callback: Callable[[Any], None], on_control_lost: Callable[[], None]):
        super().__init__(callback)
        self._on_control_lost = on_control_lost

    def _on_machine_status(self, characteristic: Any, data: bytearray) -> None:
        if data[:1] == bytes([MachineStatusCode.LOST_CONTROL]):
            self._auth = False  # what pyftms means to do: request control before the next write
            self._on_control_lost()
            return
        super()._on_machine_status(characteristic, data)


class _PyftmsTreadmill(PyftmsTreadmill):  # type: ignore[misc]  # pyftms ships no type hints
    """pyftms's treadmill client, plus an explicit Request Control and a control-lost hook."""

    def __init__(
        self,
        device: BLEDevice,
        advertisement: AdvertisementData | None,
        *,
        timeout: float,
        on_ftms_event: Callable[[Any], None],
        on_disconnect: Callable[[Any], None],
        on_control_lost: Callable[[], None],
    ) -> None:
        super().__init__(
            device,
            advertisement,
            timeout=timeout,
            on_ftms_event=on_ftms_event,
            on_disconnect=on_disconnect,
        )
        self._controller = _ControlWatch(self._on_event, on_control_lost)

    async def request_control(self) -> ResultCode:
        result: ResultCode = await self._write_command(ControlCode.REQUEST_CONTROL)
        return result

    async def pair_link(self) -> None:
        """Pair with the machine over the current link (bleak's ``BleakClient.pair``)."""
        await self._cli.pair()


# -- units ---------------------------------------------------------------------------------------


def _exact(value: float, places: int) -> Fraction:
    """A decimal pyftms decoded into a float, back to the exact value on the wire."""
    scale = 10**places
    return Fraction(round(value * scale), scale)


def pyftms_value(wire: int, resolution: Increment) -> float:
    """The float to give pyftms so that ``int(value / resolution)`` is exactly ``wire``.

    Half a step away from zero survives both the float division and the truncation toward
    zero, for every 16-bit value, positive or negative.
    """
    return (wire + math.copysign(0.5, wire)) * float(resolution.size)


# -- the driver ----------------------------------------------------------------------------------


class FtmsBleDriver(Treadmill):
    scheme: ClassVar[str] = "ble"
    url_grammar: ClassVar[str] = (
        "ble://ADDRESS | ble://?name=NAME  [&profile=NAME][&scan_timeout=S]"
        "[&request_control_each_command=BOOL][&start_before_speed=BOOL]"
        "[&speed_field_mph=BOOL][&incline_step=PERCENT]"
    )
    url_options: ClassVar[dict[str, str]] = {
        "name": "connect to the FTMS treadmill with this name (glob patterns allowed)",
        "profile": "device profile to use (default: matched from the device name)",
        "scan_timeout": f"seconds to look for the treadmill ({SCAN_TIMEOUT_S:g})",
        "request_control_each_command": "quirk: send Request Control before every command",
        "start_before_speed": "quirk: the machine takes speed only once the belt moves",
        "speed_field_mph": "quirk: the machine reads FTMS speed fields as mph",
        "incline_step": "quirk: the machine takes incline only in these steps (%)",
    }
    default_profile: ClassVar[str] = "generic-ftms"

    def __init__(
        self,
        url: DeviceUrl,
        profile: Profile,
        clock: Clock,
        *,
        routing: BleakRouting | None = None,
        profile_from_name: bool = False,
    ) -> None:
        super().__init__(url, profile, clock)
        self._wanted, self._what = self._parse_target(url)
        self._scan_timeout = url.number("scan_timeout", self.url_grammar, SCAN_TIMEOUT_S)
        self._profile_from_name = profile_from_name
        self._routing = routing
        self.profile = self._with_url_quirks(profile)
        self.device_info: dict[str, str] = {}
        self._address: str | None = None
        self._client: _PyftmsTreadmill | None = None
        self._capabilities: Capabilities | None = None
        self._exit = contextlib.ExitStack()
        self._link_up = False
        self._closing = False
        self._in_flight: set[asyncio.Timeout] = set()  # expired at once when the link drops
        self._fresh = asyncio.Event()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reconnecting: asyncio.Task[None] | None = None
        self._props: dict[str, Any] = {}
        self._belt = BeltStatus.UNKNOWN
        self._sent_speed: int | None = None  # wire values of our last targets, to tell our
        self._sent_incline: int | None = None  # own echo from a change made at the console
        #: Start/Stop/Pause sent by us: until when a matching Machine Status is our echo.
        self._echo_until: dict[str, float] = {}

    @classmethod
    def from_url(
        cls,
        url: DeviceUrl,
        *,
        clock: Clock,
        profile: Profile | None = None,
        routing: BleakRouting | None = None,
    ) -> Self:
        """Without a profile (here or as ``?profile=``), one is matched from the device name."""
        from_name = profile is None and "profile" not in url.options
        if profile is None:
            profile = get_profile(url.options.get("profile", cls.default_profile))
        return cls(url, profile, clock, routing=routing, profile_from_name=from_name)

    def _parse_target(self, url: DeviceUrl) -> tuple[Callable[[Sighting], bool], str]:
        """Which sighting is the treadmill the URL means, and how to say so."""
        name = url.options.get("name")
        address = url.location.strip("/").upper()
        if name and address:
            raise DeviceUrlError(
                f"{url.text!r}: give an address or ?name=..., not both\n"
                f"  grammar: {self.url_grammar}"
            )
        if name:
            pattern = name.casefold()
            return lambda s: fnmatch.fnmatchcase(s.name.casefold(), pattern), f"name {name!r}"
        if address:
            return lambda s: s.address.upper() == address, f"address {address}"
        raise DeviceUrlError(
            f"{url.text!r}: which treadmill? give its address (ble://AA:BB:CC:DD:EE:FF) or "
            f"its name (ble://?name=...); `retrotread scan` lists them\n"
            f"  grammar: {self.url_grammar}"
        )

    def _with_url_quirks(self, profile: Profile) -> Profile:
        url, grammar = self.url, self.url_grammar
        changes: dict[str, object] = {
            name: url.flag(name, grammar) for name in _QUIRK_FLAGS if name in url.options
        }
        if "incline_step" in url.options:
            changes["incline_step"] = url.number("incline_step", grammar, 0.0)
        return profile.with_quirks(**changes) if changes else profile

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        if self._capabilities is None:
            raise DeviceError(f"{self.name}: not connected yet")
        return self._capabilities

    @property
    def identity(self) -> str | None:
        """The Bluetooth address we reconnect to, and the serial number the machine reads out
        (Device Information 0x2A25) where it has one."""
        if self._address is None:
            return None
        client = self._client
        info = {k: str(v) for k, v in client.device_info.items()} if client else self.device_info
        serial = info.get("serial_number", "")
        return f"{self._address} {serial}".strip()

    @property
    def connected(self) -> bool:
        return self._link_up

    async def connect(self) -> None:
        self._closing = False
        try:
            if self._routing is not None:
                self._exit.enter_context(self._routing())
            sighting = await self._find()
            if self._profile_from_name:
                self.profile = self._with_url_quirks(profile_for_device(sighting.name, "ftms"))
            self.name = f"{sighting.name} ({sighting.address})"
            self._address = sighting.address
            client = _PyftmsTreadmill(
                sighting.device,
                sighting.advertisement,
                timeout=self.command_timeout_s,
                on_ftms_event=self._on_ftms_event,
                on_disconnect=self._on_disconnect,
                on_control_lost=self._on_control_lost,
            )
            self._client = client
            async with self._lock:
                granted = await self._open_link(client)
            if granted is not ResultCode.SUCCESS:
                raise CommandRejected(
                    "request control",
                    _REJECTIONS.get(granted, Rejection.FAILED),
                    f"{self.name} did not grant control; is another app connected to it?",
                )
            self.device_info = {k: str(v) for k, v in client.device_info.items()}
            self._capabilities = self._read_capabilities(client)
            log.info("connected to %s %s", self.name, self.device_info)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        # Procedures still on the wire are abandoned by closing, not by a fault: no drop and
        # reconnect for them.
        self._closing = True
        await super().close()

    async def _do_close(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        client = self._client
        if client is not None and client.is_connected:
            with contextlib.suppress(BleakError, OSError, TimeoutError):
                await client.disconnect()
        self._link_up = False
        self._exit.close()

    async def _find(self) -> Sighting:
        wanted = self._wanted
        sightings = [s for s in await scan(self._scan_timeout, until=wanted) if wanted(s)]
        if not sightings:
            raise DeviceUnavailable(
                Unavailable.NOT_FOUND,
                f"no FTMS machine with {self._what} answered within {self._scan_timeout:g} s; "
                f"is it on, in range and not connected to another app? (`retrotread scan` "
                f"lists them)",
            )
        sighting = sightings[0]
        if not sighting.is_treadmill:
            raise DeviceUnavailable(
                Unavailable.NOT_A_TREADMILL,
                f"{sighting.name} ({sighting.address}) is an FTMS {sighting.kind}",
            )
        return sighting

    async def _open_link(self, client: _PyftmsTreadmill) -> ResultCode:
        """Connect (pyftms enables every notification and indication), then request control."""
        # The belt's speed is unknown until it reports again; the last distance, time and
        # incline stay as the base of any reading before then (the machine's totals go on).
        self._props.pop("speed_instant", None)
        self._fresh.clear()
        try:
            await client.connect()
        except _BLUETOOTH_ERRORS as err:
            if isinstance(err, BleakBluetoothNotAvailableError | PermissionError):
                raise bluetooth_unavailable(err) from err
            raise DeviceUnavailable(Unavailable.CONNECT_FAILED, f"{self.name}: {err}") from err
        except (TimeoutError, AssertionError, ValueError) as err:  # unreadable GATT tables
            raise DeviceUnavailable(Unavailable.CONNECT_FAILED, f"{self.name}: {err!r}") from err
        self._link_up = True
        return await self._send("request control", _request_control)

    def _read_capabilities(self, client: _PyftmsTreadmill) -> Capabilities:
        profile = self.profile
        ranges = client.supported_ranges
        if (speed := ranges.get("target_speed")) is not None:
            step = _exact(speed.step, 2) or SPEED_RESOLUTION.size
            speed_range = Range(
                Quantity(_exact(speed.min_value, 2), Unit.KMH),
                Quantity(_exact(speed.max_value, 2), Unit.KMH),
                Increment(step, Unit.KMH),
            )
        else:
            speed_range = Range(profile.speed.min, profile.speed.max, profile.speed.increment)
        if profile.quirks.speed_field_mph:
            # Targets go out in 0.01 mph, so they must be quantized on that grid.
            speed_range = Range(speed_range.low, speed_range.high, SPEED_RESOLUTION_MPH)
        if (incline := ranges.get("target_inclination")) is not None:
            step = _exact(incline.step, 1) or INCLINE_RESOLUTION.size
            incline_range = Range(
                percent(_exact(incline.min_value, 1)),
                percent(_exact(incline.max_value, 1)),
                Increment(step, Unit.PERCENT),
            )
        else:
            spec = profile.incline
            incline_range = Range(spec.min, spec.max, spec.increment)
        return Capabilities(
            speed_range, incline_range, can_control="target_speed" in client.supported_settings
        )

    @property
    def _speed_field(self) -> Increment:
        """The unit and resolution of the control point's speed field on this machine."""
        return SPEED_RESOLUTION_MPH if self.profile.quirks.speed_field_mph else SPEED_RESOLUTION

    # -- commands -----------------------------------------------------------------------------

    async def _do_start(self) -> None:
        # 04 to Start: already started if the machine says it runs, else a refusal (a pulled
        # safety key, a machine not ready).
        await self._control(
            "start",
            lambda c: c.start_resume(),
            BeltStatus.RUNNING,
            already=lambda: self._belt is BeltStatus.RUNNING,
        )

    async def _do_pause(self) -> None:
        await self._control(
            "pause", lambda c: c.pause(), BeltStatus.PAUSED, already=self._known_not_running
        )

    async def _do_stop(self) -> None:
        result = await self._control(
            "stop", lambda c: c.stop(), BeltStatus.STOPPED, already=lambda: True
        )
        if result is ResultCode.FAILED:
            # 04: FTMS's "already stopped" — or a machine that will not stop a belt that
            # moves or counts down to start (the KingSmith R3; docs/ftms.md), which must be
            # paused first. Pause settles which: a machine that is not running answers it 04
            # too, one that runs halts its belt.
            paused = await self._control(
                "pause", lambda c: c.pause(), BeltStatus.PAUSED, already=lambda: True
            )
            if paused is ResultCode.FAILED:
                self._belt = BeltStatus.STOPPED
            else:
                log.warning("%s refused stop while running; its belt was paused", self.name)
        await self._settle_still()

    def _known_not_running(self) -> bool:
        latest = self.latest
        return self._belt in (BeltStatus.PAUSED, BeltStatus.STOPPED) or (
            latest is not None and latest.speed.value == 0
        )

    async def _settle_still(self) -> None:
        """After a stop: make a belt that reads still say so with its new state.

        The machine's answer is its state, not a reading. A belt last seen moving reports
        its way down to zero. A belt last read at zero (or not read since a reconnect) may
        send nothing more — pyftms passes on only changes, and some machines notify only
        changes — so the last reading would keep its "running" state for ever. A fresh
        reading is awaited first (a belt that has just started, or winds down, sends one);
        if none comes, the belt is where the last reading left it, and that zero (or a zero,
        when nothing was read) is published again with the belt's new state.
        """
        latest = self.latest
        if latest is not None and latest.speed.value != 0:
            return  # moving: its readings follow it down
        self._fresh.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(REREAD_WAIT_S, self.command_timeout_s / 2)):
                await self._fresh.wait()
        if self._fresh.is_set():
            return  # the belt reported: telemetry says whether it is still
        latest = self.latest
        if latest is None or latest.speed.value == 0:
            self._props["speed_instant"] = 0.0
            self._publish_reading()

    async def _do_set_speed(self, speed: Quantity) -> None:
        resolution = self._speed_field
        wire = self._wire("set speed", speed, resolution)
        self._sent_speed = wire
        value = pyftms_value(wire, resolution)
        await self._control(
            "set speed",
            lambda c: c.set_target_speed(value),
            detail=lambda: self._out_of_range("speed", speed, self.capabilities.speed),
        )

    async def _do_set_incline(self, incline: Quantity) -> None:
        wire = self._wire("set incline", incline, INCLINE_RESOLUTION)
        self._sent_incline = wire
        value = pyftms_value(wire, INCLINE_RESOLUTION)
        await self._control(
            "set incline",
            lambda c: c.set_target_inclination(value),
            detail=lambda: self._out_of_range("incline", incline, self.capabilities.incline),
        )

    def _wire(self, command: str, value: Quantity, resolution: Increment) -> int:
        try:
            return wire_integer(value.to(resolution.unit), resolution)
        except ValueError as err:
            raise CommandRejected(
                command, Rejection.INVALID_PARAMETER, f"{err}; nothing was sent"
            ) from err

    @staticmethod
    def _out_of_range(what: str, value: Quantity, allowed: Range) -> str:
        def show(q: Quantity) -> str:
            if q.unit is Unit.PERCENT:
                return f"{format_number(q.value, 1)} %"
            text = f"{format_number(q.to(Unit.KMH).value)} km/h"
            return f"{text} ({format_number(q.mph)} mph)"

        return (
            f"{what} {show(value)} is not accepted by the machine: its range is "
            f"{show(allowed.low)} to {show(allowed.high)} in steps of {allowed.increment}"
        )

    async def _control(
        self,
        command: str,
        action: Callable[[_PyftmsTreadmill], Awaitable[ResultCode]],
        belt: BeltStatus | None = None,
        detail: Callable[[], str] | None = None,
        *,
        already: Callable[[], bool] | None = None,
    ) -> ResultCode:
        """One command; returns SUCCESS, or FAILED when ``already`` says FTMS's 04 means the
        machine already is where the command would take it."""
        if not self._link_up:  # fail at once, not behind a reconnect attempt holding the lock
            raise LinkLost(f"{command}: the link to {self.name} is down; nothing was sent")
        echo = command if belt is not None else None
        if echo is not None:
            self._echo_until[echo] = math.inf
        try:
            return await self._control_locked(command, action, belt, detail, already)
        finally:
            if echo is not None:
                self._echo_until[echo] = self.clock.now() + ECHO_WINDOW_S

    async def _control_locked(
        self,
        command: str,
        action: Callable[[_PyftmsTreadmill], Awaitable[ResultCode]],
        belt: BeltStatus | None,
        detail: Callable[[], str] | None,
        already: Callable[[], bool] | None,
    ) -> ResultCode:
        async with self._lock:
            if self.profile.quirks.request_control_each_command:
                granted = await self._send("request control", _request_control)
                if granted is not ResultCode.SUCCESS:
                    self._give_up_control(command)
            result = await self._send(command, action)
            if result is ResultCode.NOT_PERMITTED:
                # Control lapsed (another client, the console, a machine that forgets it):
                # ask once more and retry once; a second refusal is final.
                log.warning("%s: control not permitted; requesting control again", command)
                granted = await self._send("request control", _request_control)
                if granted is ResultCode.SUCCESS:
                    result = await self._send(command, action)
                if result is ResultCode.NOT_PERMITTED:
                    self._give_up_control(command)
            if result is ResultCode.FAILED and already is not None and already():
                if belt is not None:
                    self._belt = belt
                return result
            if result is not ResultCode.SUCCESS:
                reason = _REJECTIONS.get(result, Rejection.FAILED)
                text = detail() if detail and reason is Rejection.INVALID_PARAMETER else ""
                raise CommandRejected(command, reason, text)
            if belt is not None:
                self._belt = belt
            return result

    def _give_up_control(self, command: str) -> None:
        self.publish(MachineEvent(self.clock.now(), MachineEventKind.CONTROL_LOST))
        raise CommandRejected(
            command,
            Rejection.NOT_PERMITTED,
            f"{self.name} refused control again; the program pauses until a person resumes",
        )

    async def _send(
        self, command: str, action: Callable[[_PyftmsTreadmill], Awaitable[ResultCode]]
    ) -> ResultCode:
        """One control point procedure; the link dropping meanwhile fails it at once."""
        client = self._client
        if client is None or not self._link_up:
            raise LinkLost(f"{command}: the link to {self.name} is down; nothing was sent")
        # A disconnect ends the procedure through this scope (see _on_disconnect): it moves the
        # deadline to now. No extra task, so the write costs what a bare pyftms write costs.
        scope = asyncio.timeout(None)
        self._in_flight.add(scope)
        try:
            async with scope:
                return await self._write(client, command, action)
        except TimeoutError as err:
            if scope.expired() and not self._link_up:
                raise LinkLost(
                    f"{command}: the link to {self.name} dropped before the treadmill "
                    f"answered; outcome unknown"
                ) from None
            # pyftms stopped waiting (a procedure outside a command's budget: connecting,
            # control requested again). Unanswered, it failed; its outcome is unknown.
            self._condemn_link()
            raise CommandTimeout(command, self.command_timeout_s) from err
        except asyncio.CancelledError:
            # The command's budget ran out with the answer still due (the base turns this
            # into CommandTimeout): FTMS says the procedure failed; nothing more goes out on
            # this link.
            if not self._closing:
                self._condemn_link()
            raise
        except BleakError as err:
            raise LinkLost(f"{command}: {err}") from err
        finally:
            self._in_flight.discard(scope)

    async def _write(
        self,
        client: _PyftmsTreadmill,
        command: str,
        action: Callable[[_PyftmsTreadmill], Awaitable[ResultCode]],
    ) -> ResultCode:
        """The write and its answer; pairs once if the machine wants an encrypted link."""
        paired = False
        while True:
            try:
                return ResultCode(await action(client))
            except BleakGATTProtocolError as err:
                if err.code in _NEEDS_PAIRING and not paired:
                    # Refused at the ATT layer, before the machine saw it: pair, write again.
                    await self._pair(client, command)
                    paired = True
                    continue
                if err.code is BleakGATTProtocolErrorCode.PROCEDURE_ALREADY_IN_PROGRESS:
                    raise CommandRejected(
                        command,
                        Rejection.NOT_READY,
                        "the machine says a procedure is already in progress; it discarded "
                        "this write",
                    ) from err
                raise CommandRejected(
                    command, Rejection.FAILED, f"refused at the ATT layer: {err}"
                ) from err

    async def _pair(self, client: _PyftmsTreadmill, command: str) -> None:
        log.info("%s wants an encrypted link: pairing", self.name)
        try:
            await client.pair_link()
        except (BleakError, NotImplementedError, OSError) as err:
            raise CommandRejected(
                command,
                Rejection.NOT_PERMITTED,
                f"{self.name} accepts commands only over a paired link, and pairing failed "
                f"({err}); pair it in the system's Bluetooth settings",
            ) from err

    def _condemn_link(self) -> None:
        """A procedure went unanswered: send nothing more on this link; drop and reconnect."""
        if not self._link_up:
            return
        log.warning("%s left a procedure unanswered: dropping the link", self.name)
        self._link_up = False  # at once: the next queued command must not reach this link
        self._spawn(self._drop_link())

    async def _drop_link(self) -> None:
        client = self._client
        if client is not None and client.is_connected:
            with contextlib.suppress(BleakError, OSError):
                await client.disconnect()  # fires _on_disconnect: LINK_LOST, then reconnect

    # -- the link -----------------------------------------------------------------------------

    def _on_disconnect(self, _client: object) -> None:
        self._link_up = False
        now = asyncio.get_running_loop().time()
        for scope in list(self._in_flight):
            scope.reschedule(now)
        if self._closing:
            return
        log.warning("link to %s lost; reconnecting", self.name)
        self.latest = None  # what the belt does now is unknown until it reports again
        self.publish(MachineEvent(self.clock.now(), MachineEventKind.LINK_LOST))
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = self._spawn(self._reconnect())

    async def _reconnect(self) -> None:
        client = self._client
        assert client is not None
        delay = RECONNECT_FIRST_DELAY_S
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._lock:
                    granted = await self._open_link(client)
                break
            except DeviceError as err:
                log.warning("reconnect %d to %s failed: %s", attempt, self.name, err)
            await self.clock.sleep_until(self.clock.now() + delay)
            delay = min(delay * 2, RECONNECT_MAX_DELAY_S)
        log.info("reconnected to %s after %d attempt(s)", self.name, attempt)
        # Re-read the belt: pyftms re-read Training Status on connect; wait for a fresh
        # Treadmill Data record so that the state published with LINK_RESTORED is current.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REREAD_WAIT_S):
                await self._fresh.wait()
        self.publish(MachineEvent(self.clock.now(), MachineEventKind.LINK_RESTORED))
        if granted is not ResultCode.SUCCESS:
            log.warning("%s did not grant control after reconnecting", self.name)
            self.publish(MachineEvent(self.clock.now(), MachineEventKind.CONTROL_LOST))

    def _on_control_lost(self) -> None:
        log.warning("%s reports control permission lost; requesting it again", self.name)
        self._spawn(self._regain_control())

    async def _regain_control(self) -> None:
        try:
            async with self._lock:
                granted = await self._send("request control", _request_control)
        except DeviceError as err:
            log.warning("could not request control again: %s", err)
            return  # the link is down: reconnecting requests control anyway
        if granted is not ResultCode.SUCCESS:
            self.publish(MachineEvent(self.clock.now(), MachineEventKind.CONTROL_LOST))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)
        return task

    # -- reports ------------------------------------------------------------------------------

    def _on_ftms_event(self, event: Any) -> None:
        if isinstance(event, UpdateEvent):
            self._on_update(dict(event.event_data))
        elif isinstance(event, ControlEvent):
            self._on_control_event(event.event_id, event.event_source)
        elif isinstance(event, SetupEvent) and event.event_source == "other":
            self._on_target_changed(dict(event.event_data))

    def _on_update(self, data: dict[str, Any]) -> None:
        status = data.pop("training_status", None)
        if status is not None:
            if status in _STOPPED_STATUSES:
                self._belt = BeltStatus.STOPPED
            elif status is not TrainingStatusCode.OTHER:
                self._belt = BeltStatus.RUNNING
            if status is TrainingStatusCode.IDLE and "speed_instant" not in self._props:
                # pyftms drops all-zero Treadmill Data records, so an idle belt may never
                # report; the machine saying it is idle is the zero reading.
                data["speed_instant"] = 0.0
        data.pop("training_status_string", None)
        data.pop("rssi", None)
        if not data:
            return
        self._props.update(data)
        self._publish_reading()

    def _publish_reading(self) -> None:
        speed = self._props.get("speed_instant")
        if speed is None:
            return
        self.publish(
            Telemetry(
                at=self.clock.now(),
                speed=Quantity(_exact(speed, 2), Unit.KMH),
                incline=percent(_exact(self._props.get("inclination") or 0.0, 1)),
                distance_m=float(self._props.get("distance_total") or 0),
                elapsed_s=float(self._props.get("time_elapsed") or 0),
                belt=self._belt,
            )
        )
        self._fresh.set()

    def _on_control_event(self, what: str, source: str) -> None:
        if source == "callback":
            return  # our own command's success, already accounted for
        now = self.clock.now()
        if source == "user" and now <= self._echo_until.get(what, -math.inf):
            # The machine announcing the Start/Stop/Pause we just sent, not a person.
            del self._echo_until[what]
            return
        if source == "safety":
            self._belt = BeltStatus.STOPPED
            self.publish(MachineEvent(now, MachineEventKind.SAFETY_KEY))
            return
        events = {
            "stop": (MachineEventKind.STOPPED_AT_CONSOLE, BeltStatus.STOPPED),
            "pause": (MachineEventKind.PAUSED_AT_CONSOLE, BeltStatus.PAUSED),
            "start": (MachineEventKind.STARTED_AT_CONSOLE, BeltStatus.RUNNING),
            "reset": (MachineEventKind.RESET, BeltStatus.STOPPED),
        }
        if what in events:
            kind, self._belt = events[what]
            self.publish(MachineEvent(now, kind))

    def _on_target_changed(self, data: dict[str, Any]) -> None:
        now = self.clock.now()
        if (speed := data.get("target_speed")) is not None:
            wire = round(speed * 100)
            if wire != self._sent_speed:
                value = Quantity(Fraction(wire, 100), self._speed_field.unit)
                self.publish(MachineEvent(now, MachineEventKind.TARGET_SPEED_CHANGED, value))
        if (incline := data.get("target_inclination")) is not None:
            wire = round(incline * 10)
            if wire != self._sent_incline:
                value = percent(Fraction(wire, 10))
                self.publish(MachineEvent(now, MachineEventKind.TARGET_INCLINE_CHANGED, value))


async def _request_control(client: _PyftmsTreadmill) -> ResultCode:
    return await client.request_control()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("BLE driver task failed", exc_info=error)
