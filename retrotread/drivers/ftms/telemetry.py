"""What the machine reports: Treadmill Data, Training Status and Machine Status.

* Treadmill Data becomes :class:`~retrotread.drivers.base.Telemetry` (pyftms joins records
  split over several notifications, bit 0 "more data"); Training Status keeps the belt's
  state, and "idle" with no speed known is the zero reading (pyftms drops all-zero records).
* Machine Status becomes :class:`~retrotread.drivers.base.MachineEvent` — ``02`` stopped or
  paused at the console, ``03`` safety key, ``04`` started at the console, target changes made
  at the console — except where the status is the machine announcing what our own procedure
  just did (our set value, or the Start/Stop/Pause we just sent).
* After a stop, a belt that reads still is made to say so with its new state
  (:meth:`Reports._settle_still`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from pyftms import ControlEvent, TrainingStatusCode

from retrotread.drivers.base import BeltStatus, MachineEvent, MachineEventKind, Telemetry
from retrotread.drivers.ftms.core import REREAD_WAIT_S, FtmsCore
from retrotread.drivers.ftms.quirks import incline_reading, speed_reading
from retrotread.units import Quantity, percent

_STOPPED_STATUSES = {
    TrainingStatusCode.IDLE,
    TrainingStatusCode.PRE_WORKOUT,
    TrainingStatusCode.POST_WORKOUT,
}


class Reports(FtmsCore):
    """Turns pyftms's events into telemetry and machine events."""

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

    # -- reports ------------------------------------------------------------------------------

    def _on_ftms_event(self, event: Any) -> None:
        # By event_id, which names each pyftms event type ("setup", "update", ...): every
        # command's answer comes as one, so the most frequent are looked at first.
        kind = event.event_id
        if kind == "setup":
            if event.event_source == "other":
                self._on_target_changed(event.event_data)
        elif kind == "update":
            self._on_update(dict(event.event_data))
        elif isinstance(event, ControlEvent):
            self._on_control_event(kind, event.event_source)

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
        now = self.clock.now()
        if "time_elapsed" in data and data["time_elapsed"] != self._props.get("time_elapsed"):
            self._elapsed_at = now
            self._nobody_on = False  # counting again: someone walks (elapsed_frozen_...)
        if data.get("speed_instant") and not self._props.get("speed_instant"):
            self._moving_at = now  # from still: the machine's elapsed time may start late
        self._data_at = now
        self._props.update(data)
        self._publish_reading()

    def _publish_reading(self, *, confirmed: bool = False) -> None:
        """Publish what the machine reports; ``confirmed``: a zero that is not to be held
        back (the quirk ``zero_speed_debounce_s`` holds a lone zero after a moving reading
        until it lasts that long; Merach)."""
        speed = self._props.get("speed_instant")
        if speed is None:
            return
        quirks = self.profile.quirks
        if self._nobody_on:
            speed = 0.0  # elapsed time frozen: nobody on the belt (Mobvoi TMP)
        reading = Telemetry(
            at=self.clock.now(),
            speed=speed_reading(speed, quirks),
            incline=incline_reading(
                self._props.get("inclination"), self._sent_incline_value, quirks
            ),
            distance_m=float(self._props.get("distance_total") or 0),
            elapsed_s=float(self._props.get("time_elapsed") or 0),
            belt=self._belt,
            # the value set, whenever the machine sends none (incline_reading)
            incline_echoed=quirks.incline_unreported or self._props.get("inclination") is None,
        )
        debounce = quirks.zero_speed_debounce_s
        if reading.speed.value != 0 or confirmed:
            if self._pending_zero is not None:
                self._pending_zero.cancel()
                self._pending_zero = None
        elif debounce and self.latest is not None and self.latest.speed.value != 0:
            if self._pending_zero is None:
                self._pending_zero = self._spawn(self._zero_if_it_lasts(debounce))
            return
        self.publish(reading)
        self._fresh.set()

    async def _zero_if_it_lasts(self, seconds: float) -> None:
        await self.clock.sleep_until(self.clock.now() + seconds)
        self._pending_zero = None
        if self._props.get("speed_instant") == 0:
            self._publish_reading(confirmed=True)

    def _on_control_event(self, what: str, source: str) -> None:
        if source == "callback":
            return  # our own command's success, already accounted for
        now = self.clock.now()
        if (
            what == "stop"
            and source == "user"
            and self.profile.quirks.start_handshake
            and now <= self._echo_until.get("start", -math.inf)
        ):
            # The Toputure TP1 answers our Start with 02 01 and waits for control + Start.
            self._handshake.set()
            return
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

    def _on_target_changed(self, data: Mapping[str, Any]) -> None:
        if (speed := data.get("target_speed")) is not None:
            wire = round(speed * 100)
            if wire != self._sent_speed:
                value = Quantity(Fraction(wire, 100), self._speed_field.unit)
                self.publish(
                    MachineEvent(self.clock.now(), MachineEventKind.TARGET_SPEED_CHANGED, value)
                )
        if (incline := data.get("target_inclination")) is not None:
            wire = round(incline * 10)
            if wire != self._sent_incline:
                value = percent(Fraction(wire, 10))
                self.publish(
                    MachineEvent(self.clock.now(), MachineEventKind.TARGET_INCLINE_CHANGED, value)
                )
