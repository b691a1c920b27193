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

This module is the driver (connection, identity, lifecycle, reconnecting, commands); its
parts live in :mod:`retrotread.drivers.ftms`, one job each: ``bluetooth`` (availability,
scan), ``client`` (pyftms, extended by subclassing: an explicit Request Control, a hook on
Machine Status ``FF``, pairing; ``tests/test_ble_seam.py`` fails loudly if one moves),
``units``, ``procedures`` (the control point), ``telemetry`` (reports) and ``quirks``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import ClassVar, Self

from bleak.exc import BleakBluetoothNotAvailableError, BleakError
from pyftms import ResultCode

from retrotread.clock import Clock
from retrotread.drivers.base import BeltStatus, Capabilities, MachineEvent, MachineEventKind, Range
from retrotread.drivers.ble_trace import wire_tracing
from retrotread.drivers.ftms.bluetooth import (
    BLUETOOTH_ERRORS,
    FTMS_SERVICE,
    SCAN_TIMEOUT_S,
    Sighting,
    bluetooth_unavailable,
    scan,
)
from retrotread.drivers.ftms.client import ControlWatch, FtmsClient, request_control
from retrotread.drivers.ftms.core import (
    ECHO_WINDOW_S,
    FTMS_PROCEDURE_TIMEOUT_S,
    REJECTIONS,
    REREAD_WAIT_S,
    log,
)
from retrotread.drivers.ftms.procedures import start_procedure
from retrotread.drivers.ftms.quirk_link import QuirkHandling
from retrotread.drivers.ftms.quirks import capabilities, incline_wire
from retrotread.drivers.ftms.units import (
    INCLINE_RESOLUTION,
    SPEED_RESOLUTION,
    SPEED_RESOLUTION_MPH,
    exact,
    pyftms_value,
)
from retrotread.drivers.ftms.unlock import every_service_discovered
from retrotread.drivers.url import DeviceUrl
from retrotread.errors import (
    CommandRejected,
    DeviceError,
    DeviceUnavailable,
    DeviceUrlError,
    Rejection,
    Unavailable,
)
from retrotread.profiles import Profile, get_profile, profile_for_device
from retrotread.units import Increment, Quantity, Unit, percent

#: The names this module has always offered (tests and the seam canary import them here).
_ControlWatch = ControlWatch
_PyftmsTreadmill = FtmsClient

RECONNECT_FIRST_DELAY_S = 0.5
RECONNECT_MAX_DELAY_S = 8.0

#: Makes ``BleakClient``/``BleakScanner`` reach some other radio while the driver is open
#: (the simulator's); ``None`` uses the platform's Bluetooth.
BleakRouting = Callable[[], AbstractContextManager[object]]

_QUIRK_FLAGS = ("request_control_each_command", "start_before_speed", "speed_field_mph")


# -- the driver ----------------------------------------------------------------------------------


class FtmsBleDriver(QuirkHandling):
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
        self._capabilities: Capabilities | None = None
        self._exit = contextlib.ExitStack()
        self._reconnecting: asyncio.Task[None] | None = None

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

    @property
    def link_up(self) -> bool:
        return self._link_up  # what the base's reads via ``connected``, in one call

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
            # --trace: every GATT read, write, notification and indication, while connected
            self._exit.enter_context(wire_tracing(str(self.url), self.profile.name, self.clock))
            if self.profile.quirks.unlock_write is not None:
                # its vendor characteristic is outside the services pyftms asks for
                self._exit.enter_context(every_service_discovered())
            client = FtmsClient(
                sighting.device,
                sighting.advertisement,
                timeout=self.command_timeout_s,
                on_ftms_event=self._on_ftms_event,
                on_disconnect=self._on_disconnect,
                on_control_lost=self._on_control_lost,
            )
            self._client = client
            async with self._wire_turn():
                granted = await self._open_link(client)
            if granted is not ResultCode.SUCCESS:
                raise CommandRejected(
                    "request control",
                    REJECTIONS.get(granted, Rejection.FAILED),
                    f"{self.name} did not grant control; is another app connected to it? "
                    f"(Some machines want a vendor unlock first: `unlock_write` in "
                    f"docs/ftms.md.)",
                )
            self.device_info = {k: str(v) for k, v in client.device_info.items()}
            self._capabilities = capabilities(self._read_capabilities(client), self.profile)
            self._start_watch()
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

    async def _open_link(self, client: FtmsClient) -> ResultCode:
        """Connect (pyftms enables every notification and indication), then request control."""
        # The belt's speed is unknown until it reports again; the last distance, time and
        # incline stay as the base of any reading before then (the machine's totals go on).
        self._props.pop("speed_instant", None)
        self._fresh.clear()
        try:
            await client.connect()
        except BLUETOOTH_ERRORS as err:
            if isinstance(err, BleakBluetoothNotAvailableError | PermissionError):
                raise bluetooth_unavailable(err) from err
            raise DeviceUnavailable(Unavailable.CONNECT_FAILED, f"{self.name}: {err}") from err
        except (TimeoutError, AssertionError, ValueError) as err:  # unreadable GATT tables
            raise DeviceUnavailable(Unavailable.CONNECT_FAILED, f"{self.name}: {err!r}") from err
        self._link_up = True
        self._console_only = self.profile.quirks.read_only or not client.has_control_point
        if self._console_only:
            return ResultCode.SUCCESS  # read-only FTMS: nothing to request
        await self._unlock(client)
        return await self._request_control_at_connect(client)

    def _read_capabilities(self, client: FtmsClient) -> Capabilities:
        profile = self.profile
        ranges = client.supported_ranges
        if (speed := ranges.get("target_speed")) is not None:
            step = exact(speed.step, 2) or SPEED_RESOLUTION.size
            speed_range = Range(
                Quantity(exact(speed.min_value, 2), Unit.KMH),
                Quantity(exact(speed.max_value, 2), Unit.KMH),
                Increment(step, Unit.KMH),
            )
        else:
            speed_range = Range(profile.speed.min, profile.speed.max, profile.speed.increment)
        if profile.quirks.speed_field_mph:
            # Targets go out in 0.01 mph, so they must be quantized on that grid.
            speed_range = Range(speed_range.low, speed_range.high, SPEED_RESOLUTION_MPH)
        if (incline := ranges.get("target_inclination")) is not None:
            step = exact(incline.step, 1) or INCLINE_RESOLUTION.size
            incline_range = Range(
                percent(exact(incline.min_value, 1)),
                percent(exact(incline.max_value, 1)),
                Increment(step, Unit.PERCENT),
            )
        else:
            spec = profile.incline
            incline_range = Range(spec.min, spec.max, spec.increment)
        return Capabilities(
            speed_range,
            incline_range,
            can_control="target_speed" in client.supported_settings and client.has_control_point,
        )

    # -- commands -----------------------------------------------------------------------------

    async def _do_start(self) -> None:
        if self._console_only:
            raise self._console_refusal("start", "start the belt on the treadmill console")
        self._handshake.clear()
        # 04 to Start: already started if the machine says it runs, else a refusal (a pulled
        # safety key, a machine not ready).
        await self._control(
            "start",
            start_procedure,
            BeltStatus.RUNNING,
            already=lambda: self._belt is BeltStatus.RUNNING,
        )
        if self.profile.quirks.start_handshake:
            await self._start_with_handshake(start_procedure)

    async def _do_pause(self) -> None:
        if self._console_only:
            raise self._console_refusal("pause", "pause the belt on the treadmill console")
        await self._control(
            "pause", lambda c: c.pause(), BeltStatus.PAUSED, already=self._known_not_running
        )

    async def _do_stop(self) -> None:
        if self._console_only:
            raise self._console_refusal("stop", "STOP the belt on the treadmill console now")
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

    async def _do_set_speed(self, speed: Quantity) -> None:
        if self._console_only:
            raise self._console_refusal("set speed", f"set {speed} on the treadmill console")
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
        if self._console_only:
            raise self._console_refusal(
                "set incline", f"set the incline to {incline} on the console"
            )
        table_wire = incline_wire(incline, self.profile.quirks)
        wire = self._wire("set incline", incline, INCLINE_RESOLUTION)
        if table_wire is not None:
            wire = table_wire  # the machine's own encoding (iConcept, Kettler)
        self._sent_incline = wire
        self._sent_incline_value = incline
        value = pyftms_value(wire, INCLINE_RESOLUTION)
        await self._control(
            "set incline",
            lambda c: c.set_target_inclination(value),
            detail=lambda: self._out_of_range("incline", incline, self.capabilities.incline),
        )

    # -- the link -----------------------------------------------------------------------------

    def _on_disconnect(self, _client: object) -> None:
        self._link_up = False
        self._cut_procedures()
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
                async with self._wire_turn():
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
            async with self._wire_turn():
                granted = await self._send("request control", request_control)
        except DeviceError as err:
            log.warning("could not request control again: %s", err)
            return  # the link is down: reconnecting requests control anyway
        if granted is not ResultCode.SUCCESS:
            self.publish(MachineEvent(self.clock.now(), MachineEventKind.CONTROL_LOST))


__all__ = [
    "ECHO_WINDOW_S",
    "FTMS_PROCEDURE_TIMEOUT_S",
    "FTMS_SERVICE",
    "INCLINE_RESOLUTION",
    "REREAD_WAIT_S",
    "SCAN_TIMEOUT_S",
    "SPEED_RESOLUTION",
    "SPEED_RESOLUTION_MPH",
    "BleakRouting",
    "FtmsBleDriver",
    "Sighting",
    "bluetooth_unavailable",
    "pyftms_value",
    "scan",
]
