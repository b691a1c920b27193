"""Control point procedures: one at a time, their answers, pairing, and their time limit.

* Values arrive quantized by the governor; the integer that goes on the wire is computed
  exactly (:func:`~retrotread.units.wire_integer`) and handed to pyftms as
  ``(n + 0.5) * resolution``, because pyftms converts with ``int(value / res)``, which
  truncates (4.19 km/h would otherwise go out as 418).
* Result codes become :class:`~retrotread.errors.CommandRejected` with a reason. "Control
  not permitted" re-requests control once and retries; a second refusal publishes
  ``CONTROL_LOST`` (the session pauses the program) and fails.
* A machine whose control point needs an encrypted link answers a write with ATT
  "insufficient encryption/authentication"; the driver pairs (bleak ``pair()``) and writes
  once more — the write was refused at the ATT layer, so nothing had happened.
* A procedure has the profile's ``command_timeout_s`` (FTMS: 30 s) from its turn on the
  wire. Unanswered, it has failed and its outcome is unknown: nothing more goes out on that
  link, it is dropped (and reconnected), and the command fails with
  :class:`~retrotread.errors.CommandTimeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from typing import Any

from bleak.exc import BleakError, BleakGATTProtocolError, BleakGATTProtocolErrorCode
from pyftms import ResultCode

from retrotread.drivers.base import BeltStatus, MachineEvent, MachineEventKind, Range
from retrotread.drivers.ftms.client import FtmsClient, request_control
from retrotread.drivers.ftms.core import ECHO_WINDOW_S, REJECTIONS, FtmsCore, log
from retrotread.errors import CommandRejected, CommandTimeout, LinkLost, Rejection
from retrotread.profiles import Quirks
from retrotread.units import Increment, Quantity, Unit, format_number, wire_integer

#: ATT errors that mean "this attribute needs a paired (encrypted) link".
_NEEDS_PAIRING = {
    BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION,
    BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION,
    BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION_KEY_SIZE,
}

Action = Callable[[FtmsClient], Awaitable[ResultCode]]


def preamble(command: str, quirks: Quirks) -> list[tuple[str, Action]]:
    """Procedures some machines need before a command, in order (profile quirks
    ``start_each_command``, ``request_control_each_command``)."""
    if quirks.start_each_command and command in ("set speed", "set incline"):
        return [("request control", request_control), ("start", start_procedure)]
    if quirks.request_control_each_command:
        return [("request control", request_control)]
    return []


async def start_procedure(client: FtmsClient) -> ResultCode:
    result: ResultCode = await client.start_resume()
    return result


class ControlPoint(FtmsCore):
    """Writes to the FTMS control point, one procedure at a time."""

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
        action: Action,
        belt: BeltStatus | None = None,
        detail: Callable[[], str] | None = None,
        *,
        already: Callable[[], bool] | None = None,
    ) -> ResultCode:
        """One command; returns SUCCESS, or FAILED when ``already`` says FTMS's 04 means the
        machine already is where the command would take it."""
        if not self._link_up:  # fail at once, not behind a reconnect attempt holding the wire
            raise LinkLost(f"{command}: the link to {self.name} is down; nothing was sent")
        if belt is not None:
            self._echo_until[command] = math.inf
        try:
            wire = self._wire_gate
            # _wire_turn inlined: every command passes here, and a free gate needs no coroutine
            if not wire.take():
                await wire.wait(first=False)
            try:
                for name, step in preamble(command, self.profile.quirks):
                    answer = await self._send(name, step)
                    if step is request_control and answer is not ResultCode.SUCCESS:
                        self._give_up_control(command)
                result = await self._send(command, action)
                if result is not ResultCode.SUCCESS:
                    result = await self._unsuccessful(command, action, result, detail, already)
            finally:
                wire.release()
            if belt is not None:
                self._belt = belt
            return result
        finally:
            if belt is not None:
                self._echo_until[command] = self.clock.now() + ECHO_WINDOW_S

    async def _unsuccessful(
        self,
        command: str,
        action: Action,
        result: ResultCode,
        detail: Callable[[], str] | None,
        already: Callable[[], bool] | None,
    ) -> ResultCode:
        """A command not answered with success: control requested again, or "already there"
        (returned), or the refusal raised."""
        if result is ResultCode.NOT_PERMITTED:
            # Control lapsed (another client, the console, a machine that forgets it):
            # ask once more and retry once; a second refusal is final.
            log.warning("%s: control not permitted; requesting control again", command)
            granted = await self._send("request control", request_control)
            if granted is ResultCode.SUCCESS:
                result = await self._send(command, action)
            if result is ResultCode.NOT_PERMITTED:
                self._give_up_control(command)
        if result is ResultCode.SUCCESS:
            return result
        if result is ResultCode.FAILED and already is not None and already():
            return result
        reason = REJECTIONS.get(result, Rejection.FAILED)
        text = detail() if detail and reason is Rejection.INVALID_PARAMETER else ""
        raise CommandRejected(command, reason, text)

    def _give_up_control(self, command: str) -> None:
        self.publish(MachineEvent(self.clock.now(), MachineEventKind.CONTROL_LOST))
        raise CommandRejected(
            command,
            Rejection.NOT_PERMITTED,
            f"{self.name} refused control again; the program pauses until a person resumes",
        )

    async def _send(self, command: str, action: Action) -> ResultCode:
        """One control point procedure (holding :attr:`_wire_gate`); the link dropping meanwhile
        fails it at once."""
        client = self._client
        if client is None or not self._link_up:
            raise LinkLost(f"{command}: the link to {self.name} is down; nothing was sent")
        if (gap := self.profile.quirks.min_command_interval_s) is not None:
            # A machine that drops a write too close to the last answer (WalkingPad).
            await self.clock.sleep_until(self._last_answer_at + gap)
            if not self._link_up:
                raise LinkLost(f"{command}: the link to {self.name} dropped; nothing was sent")
        # A disconnect ends the procedure by cancelling this task (_cut_procedure), as an
        # expiring asyncio.timeout would, without a scope's two coroutines on every write.
        task = asyncio.current_task()
        assert task is not None
        in_flight = self._in_flight
        in_flight[task] = task.cancelling()
        try:
            try:
                result = await action(client)
            except BleakGATTProtocolError as err:
                result = await self._write_refused(client, command, action, err)
        except asyncio.CancelledError:
            if task in self._cut:
                self._cut.discard(task)
                if task.uncancel() <= in_flight[task]:  # nobody else wants it cancelled
                    raise LinkLost(
                        f"{command}: the link to {self.name} dropped before the treadmill "
                        f"answered; outcome unknown"
                    ) from None
            # The command's budget ran out with the answer still due (the base turns this
            # into CommandTimeout): FTMS says the procedure failed; nothing more goes out on
            # this link.
            if not self._closing:
                self._condemn_link()
            raise
        except TimeoutError as err:
            # pyftms stopped waiting (a procedure outside a command's budget: connecting,
            # control requested again). Unanswered, it failed; its outcome is unknown.
            self._condemn_link()
            raise CommandTimeout(command, self.command_timeout_s) from err
        except BleakError as err:
            raise LinkLost(f"{command}: {err}") from err
        finally:
            del in_flight[task]
            self._last_answer_at = self.clock.now()
        # pyftms answers success with the member itself; other codes may come as plain ints
        return result if result is ResultCode.SUCCESS else ResultCode(result)

    def _cut_procedures(self) -> None:
        """The link dropped: end every procedure still waiting for its answer, at once."""
        loop = asyncio.get_running_loop()
        for task in self._in_flight:
            # next turn, as an expiring timeout does: an answer that came just before the
            # drop is still taken
            loop.call_soon(self._cut_procedure, task)

    def _cut_procedure(self, task: asyncio.Task[Any]) -> None:
        if task in self._in_flight and task not in self._cut and not task.done():
            self._cut.add(task)
            task.cancel()

    async def _write_refused(
        self,
        client: FtmsClient,
        command: str,
        action: Action,
        refusal: BleakGATTProtocolError,
    ) -> ResultCode:
        """A write refused at the ATT layer; pairs once and writes again if the machine wants
        an encrypted link."""
        paired = False
        while True:
            if refusal.code in _NEEDS_PAIRING and not paired:
                # Refused at the ATT layer, before the machine saw it: pair, write again.
                await self._pair(client, command)
                paired = True
                try:
                    result: ResultCode = await action(client)
                except BleakGATTProtocolError as err:
                    refusal = err
                    continue
                return result
            if refusal.code is BleakGATTProtocolErrorCode.PROCEDURE_ALREADY_IN_PROGRESS:
                raise CommandRejected(
                    command,
                    Rejection.NOT_READY,
                    "the machine says a procedure is already in progress; it discarded this write",
                ) from refusal
            raise CommandRejected(
                command, Rejection.FAILED, f"refused at the ATT layer: {refusal}"
            ) from refusal

    async def _pair(self, client: FtmsClient, command: str) -> None:
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
