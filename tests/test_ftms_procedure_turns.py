"""One control point procedure at a time on the ``ble://`` driver, whoever starts it.

Commands take turns at the base's gate; the driver's own procedures (regaining control,
reconnecting) and its commands share a second gate of its own (``_wire_gate``), which replaced
an ``asyncio.Lock``; a dropped link ends a procedure by cancelling its task, which replaced
an ``asyncio.timeout`` scope; and one budget timer, left armed from command to command,
replaced a timer per command. These tests hold each guarantee over the real stack — pyftms,
bleak and the simulator's FTMS server — reading the wire as the machine saw it: a write that
came while another procedure was pending would have been refused (ATT 0xFE).
"""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest

from retrotread.drivers.base import MachineEventKind
from retrotread.errors import CommandTimeout, LinkLost
from retrotread.units import percent
from tests.ble_rig import BleRig, first_write, play, retro


def assert_one_at_a_time(rig: BleRig) -> None:
    """Every write reached the machine after the answer to the one before it."""
    writes = rig.server.writes
    assert rig.server.busy_refusals == 0, rig.writes
    for before, after in itertools.pairwise(writes):
        assert before.answered_at is not None, (before, rig.writes)
        assert after.time >= before.answered_at, (before, after)


def test_overlapping_commands_from_several_tasks_take_turns_on_the_wire() -> None:
    async def scenario(rig: BleRig) -> None:
        rig.server.delay_answers(0x02, 0.5, times=4)
        rig.server.delay_answers(0x03, 0.5, times=4)
        driver = rig.driver
        speeds = [retro(rig, s) for s in ("2.6", "2.8", "3.0", "3.2")]
        await asyncio.gather(
            *(driver.set_speed(s) for s in speeds),
            *(driver.set_incline(percent(i)) for i in range(4)),
        )
        assert len(rig.writes) == 1 + 8  # Request Control at connect, then each command
        assert_one_at_a_time(rig)

    play(scenario)


def test_regaining_control_waits_for_the_whole_command() -> None:
    """Machine Status FF while a command's first procedure is pending: the driver's own
    Request Control goes out after the whole command (control, then speed), not between its
    procedures (pyftms's own write lock alone would let it in there)."""

    async def scenario(rig: BleRig) -> None:
        await asyncio.sleep(1)  # after the Request Control of connecting
        rig.server.delay_answers(0x00, 2.0)
        command = asyncio.ensure_future(rig.driver.set_speed(retro(rig, "2.8")))
        sent = await first_write(rig.server, "00", after=0.5)
        rig.server.revoke_control()  # FF: the driver requests control again
        await command
        await first_write(rig.server, "00", after=sent)
        # connecting; the command: control, speed refused (control was taken meanwhile),
        # control again, speed; then the driver's own request
        assert [w[:2] for w in rig.writes] == ["00", "00", "02", "00", "02", "00"]
        assert MachineEventKind.CONTROL_LOST not in rig.events  # granted again
        assert_one_at_a_time(rig)

    play(scenario, "request_control_each_command=1")


def test_a_caller_cancelled_mid_procedure_does_not_let_the_next_write_overlap() -> None:
    async def scenario(rig: BleRig) -> None:
        rig.server.delay_answers(0x02, 5.0)
        command = asyncio.ensure_future(rig.driver.set_speed(retro(rig, "2.8")))
        sent = await first_write(rig.server, "02", after=-math.inf)
        command.cancel()
        with pytest.raises(asyncio.CancelledError):
            await command
        assert rig.driver.busy  # its answer is still due
        await rig.driver.stop()  # waits for that answer, then goes out
        stop = await first_write(rig.server, "08", after=sent)
        assert stop >= sent + 5.0
        assert rig.driver.connected and MachineEventKind.LINK_LOST not in rig.events
        assert_one_at_a_time(rig)

    play(scenario)


def test_a_dropped_link_ends_the_procedure_at_once_and_the_queued_command_sends_nothing() -> None:
    async def scenario(rig: BleRig) -> None:
        rig.server.force_result(0x02, None)  # never answered
        loop = asyncio.get_running_loop()
        began = loop.time()
        command = asyncio.ensure_future(rig.driver.set_speed(retro(rig, "2.8")))
        queued = asyncio.ensure_future(rig.driver.set_incline(percent(2)))
        await first_write(rig.server, "02", after=-math.inf)
        rig.peripheral.in_range = False  # gone for good: no reconnecting under the test
        loop.call_later(1.0, rig.server.disconnect)
        with pytest.raises(LinkLost, match="outcome unknown"):
            await command
        assert loop.time() - began == pytest.approx(1.0)
        with pytest.raises(LinkLost, match="nothing was sent"):
            await queued
        assert [w[:2] for w in rig.writes] == ["00", "02"]  # nothing after the speed
        assert not rig.driver.busy

    play(scenario)


def test_each_command_has_its_whole_budget_after_earlier_ones() -> None:
    """The budget timer stays armed from an earlier command: a later command still gets its
    full 30 s, counted from its own turn (two 20 s procedures here: control, then speed)."""

    async def scenario(rig: BleRig) -> None:
        driver = rig.driver
        loop = asyncio.get_running_loop()
        await driver.set_speed(retro(rig, "2.6"))
        await asyncio.sleep(20)
        rig.server.delay_answers(0x00, 20.0)
        rig.server.delay_answers(0x02, 20.0)
        began = loop.time()
        with pytest.raises(CommandTimeout):
            await driver.set_speed(retro(rig, "3.0"))
        assert loop.time() - began == pytest.approx(driver.command_timeout_s)
        assert not driver.busy

    play(scenario, "request_control_each_command=1")
