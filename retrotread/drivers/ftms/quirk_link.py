"""The quirk mechanisms that need the link (options and sources: :mod:`.quirks`)."""

from __future__ import annotations

import asyncio
import contextlib
import math

from bleak.exc import BleakError
from pyftms import ResultCode

from retrotread.drivers.base import BeltStatus
from retrotread.drivers.ftms.client import FtmsClient, request_control
from retrotread.drivers.ftms.core import ECHO_WINDOW_S, log
from retrotread.drivers.ftms.procedures import Action, ControlPoint, start_procedure
from retrotread.drivers.ftms.telemetry import Reports
from retrotread.errors import (
    CommandRejected,
    DeviceError,
    DeviceUnavailable,
    Rejection,
    Unavailable,
)

#: How often the timer quirks look at the clock.
WATCH_INTERVAL_S = 0.25


class QuirkHandling(ControlPoint, Reports):
    """The quirk mechanisms that need the link: at connect, around Start, and on a timer."""

    async def _request_control_at_connect(self, client: FtmsClient) -> ResultCode:
        """Request Control; a machine that loses the first one gets it again after a gap."""
        gap = self.profile.quirks.request_control_again_s
        if gap is not None:
            first_at = self.clock.now()
            # The first request may never be answered (WellFit, FitShow "SW", YPOO): its
            # answer is not waited for beyond the gap, and the second one counts.
            with contextlib.suppress(TimeoutError, BleakError):
                async with asyncio.timeout(gap):
                    await client.request_control()
            await self.clock.sleep_until(first_at + gap)
        return await self._send("request control", request_control)

    async def _unlock(self, client: FtmsClient) -> None:
        """The vendor write a machine wants before it grants control (Merach, YPOO), then
        the pause its maker's app leaves before Request Control."""
        unlock = self.profile.quirks.unlock_write
        if unlock is None:
            return
        try:
            written = await client.write_vendor(unlock.characteristic, unlock.value)
        except (BleakError, TimeoutError) as err:
            raise DeviceUnavailable(
                Unavailable.CONNECT_FAILED,
                f"{self.name}: the unlock write its profile wants ({unlock.value.hex(' ')} to "
                f"{unlock.characteristic}) failed: {err}",
            ) from err
        if not written:
            # qz writes it only where the characteristic exists; so do we, and say so.
            log.warning(
                "%s has no characteristic %s: no unlock written (its profile expects one)",
                self.name,
                unlock.characteristic,
            )
            return
        await self.clock.sleep_until(self.clock.now() + unlock.wait_s)

    async def _start_with_handshake(self, start: Action) -> None:
        """After our Start, a machine that announces it as ``02 01`` (Toputure TP1) moves its
        belt only on Request Control + Start; give it those within the echo window."""
        try:
            async with asyncio.timeout(ECHO_WINDOW_S):
                await self._handshake.wait()
        except TimeoutError:
            return  # no 02 01: the Start itself was enough
        await self._control("request control", request_control)
        await self._control("start", start, BeltStatus.RUNNING)

    def _console_refusal(self, command: str, instruction: str) -> CommandRejected:
        """What a read-only machine (the profile says so, or it has no control point) says to
        a command (``if self._console_only``): what to do at its console. A control point is
        never second-guessed."""
        return CommandRejected(command, Rejection.READ_ONLY, instruction)

    def _start_watch(self) -> None:
        quirks = self.profile.quirks
        if (
            quirks.start_keepalive_s
            or quirks.silence_means_stopped_s
            or quirks.elapsed_frozen_means_stopped_s
        ):
            self._spawn(self._watch())

    async def _watch(self) -> None:
        """Timer quirks: Start as a keep-alive while running (Xterra TRX3500); silence from
        a moving belt read as a stopped belt (Bowflex T216); elapsed time frozen on a moving
        belt read as nobody on it, a stopped belt (Mobvoi TMP)."""
        quirks = self.profile.quirks
        while True:
            await self.clock.sleep_until(self.clock.now() + WATCH_INTERVAL_S)
            now = self.clock.now()
            silence = quirks.silence_means_stopped_s
            latest = self.latest
            if (
                silence
                and self._link_up
                and latest is not None
                and latest.speed.value != 0
                and now - self._data_at >= silence
            ):
                log.info("%s: no data for %g s: the belt reads stopped", self.name, silence)
                self._props["speed_instant"] = 0.0
                self._publish_reading(confirmed=True)
            frozen = quirks.elapsed_frozen_means_stopped_s
            if (
                frozen
                and self._link_up
                and not self._nobody_on
                and self._props.get("speed_instant")
                and now - max(self._elapsed_at, self._moving_at) >= frozen
            ):
                # Read as a stopped belt, not as a stop at the console: the session then
                # stops the belt itself (the Mobvoi's runs on with nobody on it, qz #3404).
                log.info("%s: elapsed time frozen %g s: nobody on the belt", self.name, frozen)
                self._nobody_on = True
                self._publish_reading(confirmed=True)
            keepalive = quirks.start_keepalive_s
            if (
                keepalive
                and self._link_up
                and self._belt is BeltStatus.RUNNING
                and not self._wire_gate.held
                and now - self._last_answer_at >= keepalive
            ):
                await self._keep_alive()

    async def _keep_alive(self) -> None:
        self._echo_until["start"] = math.inf  # its 04 or status is ours, not the console's
        try:
            async with self._wire_turn():
                await self._send("start (keep-alive)", start_procedure)
        except DeviceError as err:
            log.debug("keep-alive start: %s", err)
        finally:
            self._echo_until["start"] = self.clock.now() + ECHO_WINDOW_S
