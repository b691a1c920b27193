"""The base driver's procedure machinery: what it costs a command, and what it keeps.

A driver here is the smallest :class:`Treadmill` whose every command waits for an answer the
test gives (the wire), so each test sees exactly the base's own work around a procedure.
"""

from __future__ import annotations

import asyncio

import pytest

from retrotread.clock import LoopClock, run
from retrotread.drivers.base import Capabilities, Range, Treadmill
from retrotread.drivers.url import DeviceUrl
from retrotread.errors import CommandTimeout
from retrotread.profiles import get_profile
from retrotread.units import Increment, Quantity, Unit, mph, percent


class _WireDriver(Treadmill):
    """Every command goes out at once and ends when the test answers it."""

    scheme = "wire-test"
    url_grammar = "wire-test://"
    default_profile = "simulator"

    def __init__(self) -> None:
        super().__init__(DeviceUrl.parse("wire-test://"), get_profile("simulator"), LoopClock())
        self.answers: asyncio.Queue[asyncio.Future[None]] = asyncio.Queue()
        self.sent: list[str] = []

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            Range(mph(0), mph(12), Increment.of("0.1", Unit.MPH)),
            Range(percent(0), percent(15), Increment.of("0.5", Unit.PERCENT)),
        )

    @property
    def connected(self) -> bool:
        return True

    async def connect(self) -> None:
        return None

    async def _do_close(self) -> None:
        return None

    async def _wire(self, what: str) -> None:
        self.sent.append(what)
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.answers.put_nowait(answer)
        await answer

    async def _do_start(self) -> None:
        await self._wire("start")

    async def _do_pause(self) -> None:
        await self._wire("pause")

    async def _do_stop(self) -> None:
        await self._wire("stop")

    async def _do_set_speed(self, speed: Quantity) -> None:
        await self._wire(f"speed {speed}")

    async def _do_set_incline(self, incline: Quantity) -> None:
        await self._wire(f"incline {incline}")


async def _turns_until(done: asyncio.Future[None]) -> int:
    """How many turns of the loop pass until ``done`` is done (a callback counts them)."""
    loop = asyncio.get_running_loop()
    turns = 0

    def tick() -> None:
        nonlocal turns
        if not done.done():
            turns += 1
            loop.call_soon(tick)

    loop.call_soon(tick)
    await done
    return turns


def test_the_caller_has_the_answer_one_loop_turn_after_a_bare_client_would() -> None:
    """Answer -> caller costs a bare client one loop turn; a command through the base may cost
    one more (its procedure runs as a task of its own), not two (asyncio.shield's hop)."""

    async def main() -> tuple[list[str], int, int]:
        driver = _WireDriver()
        command = asyncio.ensure_future(driver.set_speed(mph("2.8")))
        answer = await driver.answers.get()
        loop = asyncio.get_running_loop()
        loop.call_soon(answer.set_result, None)
        through_base = await _turns_until(command)

        bare_answer: asyncio.Future[None] = loop.create_future()

        async def bare_client() -> None:
            await bare_answer

        bare = asyncio.ensure_future(bare_client())
        await asyncio.sleep(0)
        loop.call_soon(bare_answer.set_result, None)
        bare_turns = await _turns_until(bare)
        return driver.sent, through_base, bare_turns

    sent, through_base, bare_turns = run(main(), virtual=True)
    assert sent == ["speed 2.8 mph"]
    assert through_base <= bare_turns + 1, (through_base, bare_turns)


def test_a_cancelled_caller_leaves_its_procedure_on_the_wire_holding_the_gate() -> None:
    async def main() -> list[str]:
        driver = _WireDriver()
        first = asyncio.ensure_future(driver.set_speed(mph("2.8")))
        on_wire = await driver.answers.get()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert driver.busy  # its answer is still due: nothing else may be written
        stop = asyncio.ensure_future(driver.stop())
        for _ in range(5):
            await asyncio.sleep(0)
        assert driver.sent == ["speed 2.8 mph"]
        on_wire.set_result(None)
        (await driver.answers.get()).set_result(None)
        await stop
        assert not driver.busy
        return driver.sent

    assert run(main(), virtual=True) == ["speed 2.8 mph", "stop"]


def test_a_caller_cancelled_before_its_turn_sends_nothing() -> None:
    async def main() -> list[str]:
        driver = _WireDriver()
        first = asyncio.ensure_future(driver.set_speed(mph("2.8")))
        on_wire = await driver.answers.get()
        queued = asyncio.ensure_future(driver.set_incline(percent(2)))
        await asyncio.sleep(0)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        on_wire.set_result(None)
        await first
        for _ in range(5):
            await asyncio.sleep(0)
        assert not driver.busy
        return driver.sent

    assert run(main(), virtual=True) == ["speed 2.8 mph"]


def test_an_unanswered_command_fails_after_the_profile_budget_and_frees_the_gate() -> None:
    async def main() -> tuple[float, bool]:
        driver = _WireDriver()
        began = asyncio.get_running_loop().time()
        with pytest.raises(CommandTimeout):
            await driver.set_speed(mph("2.8"))
        return asyncio.get_running_loop().time() - began, driver.busy

    took, busy = run(main(), virtual=True)
    assert took == pytest.approx(get_profile("simulator").confirm.command_timeout_s)
    assert not busy


def test_an_error_from_the_wire_reaches_the_caller_as_it_is() -> None:
    async def main() -> None:
        driver = _WireDriver()
        command = asyncio.ensure_future(driver.start())
        (await driver.answers.get()).set_exception(OSError("the port went away"))
        with pytest.raises(OSError, match="the port went away"):
            await command

    run(main(), virtual=True)
