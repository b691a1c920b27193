"""The state the ``ble://`` driver's parts share, and the time limits FTMS sets.

:class:`FtmsCore` holds what the connection, the control point procedures and the telemetry
decoder all read and write: the pyftms client, whether the link is usable, the procedures on
the wire and the gate that keeps them to one at a time, the belt's last known state, our own
last targets (to tell our echo from a change at the console), and background tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from pyftms import ResultCode

from retrotread.clock import Clock
from retrotread.drivers.base import BeltStatus, Gate, Treadmill
from retrotread.drivers.ftms.client import FtmsClient
from retrotread.drivers.ftms.units import SPEED_RESOLUTION, SPEED_RESOLUTION_MPH
from retrotread.drivers.url import DeviceUrl
from retrotread.errors import Rejection
from retrotread.profiles import Profile
from retrotread.units import Increment, Quantity

log = logging.getLogger("retrotread.drivers.ftms_ble")

#: After reconnecting, wait this long at most for a Treadmill Data record (the belt re-read).
REREAD_WAIT_S = 3.0
#: FTMS 1.0: a control point procedure not answered within 30 s has failed. The profile's
#: ``command_timeout_s`` is the budget used; generic FTMS profiles say exactly this.
FTMS_PROCEDURE_TIMEOUT_S = 30.0
#: A machine that announces our own Start/Stop/Pause on Machine Status does so around the
#: answer; a matching status this long after it is that announcement, not the console.
ECHO_WINDOW_S = 2.0

REJECTIONS = {
    ResultCode.NOT_SUPPORTED: Rejection.NOT_SUPPORTED,
    ResultCode.INVALID_PARAMETER: Rejection.INVALID_PARAMETER,
    ResultCode.FAILED: Rejection.FAILED,
    ResultCode.NOT_PERMITTED: Rejection.NOT_PERMITTED,
}


class FtmsCore(Treadmill):
    """Shared state of the FTMS driver (see the module docstring)."""

    def __init__(self, url: DeviceUrl, profile: Profile, clock: Clock) -> None:
        super().__init__(url, profile, clock)
        self._client: FtmsClient | None = None
        self._link_up = False
        self._closing = False
        #: Tasks with a procedure on the wire, and how many cancellations each had pending as
        #: it began: a dropped link cancels them (into ``_cut``) so they end at once.
        self._in_flight: dict[asyncio.Task[Any], int] = {}
        self._cut: set[asyncio.Task[Any]] = set()
        #: Driven at its console only (profile ``read_only``, or no control point); per link.
        self._console_only = profile.quirks.read_only
        #: One control point procedure at a time: commands (which hold the base's gate
        #: already) and the driver's own (connecting, regaining control, keep-alive).
        self._wire_gate = Gate()
        self._fresh = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._props: dict[str, Any] = {}
        self._belt = BeltStatus.UNKNOWN
        self._sent_speed: int | None = None  # wire values of our last targets, to tell our
        self._sent_incline: int | None = None  # own echo from a change made at the console
        #: Start/Stop/Pause sent by us: until when a matching Machine Status is our echo.
        self._echo_until: dict[str, float] = {}
        self._last_answer_at = -math.inf  # when the last control point answer came
        self._data_at = -math.inf  # when the last Treadmill Data field came
        self._sent_incline_value: Quantity | None = None  # echoed by incline_unreported
        self._handshake = asyncio.Event()  # the machine answered our Start with 02 01
        self._pending_zero: asyncio.Task[None] | None = None  # a zero held back (debounce)
        # elapsed_frozen_means_stopped_s: when the elapsed time last changed, when the belt
        # last started to move, and whether it reads stopped because nobody is on it
        self._elapsed_at = -math.inf
        self._moving_at = -math.inf
        self._nobody_on = False

    @property
    def _speed_field(self) -> Increment:
        """The unit and resolution of the control point's speed field on this machine."""
        return SPEED_RESOLUTION_MPH if self.profile.quirks.speed_field_mph else SPEED_RESOLUTION

    @contextlib.asynccontextmanager
    async def _wire_turn(self) -> AsyncIterator[None]:
        """Hold :attr:`_wire_gate` (the driver's own procedures; a command takes it in _control)."""
        wire = self._wire_gate
        if not wire.take():
            await wire.wait(first=False)
        try:
            yield
        finally:
            wire.release()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)
        return task


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("BLE driver task failed", exc_info=error)
