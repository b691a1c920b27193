"""The clocks' timers and the one-future sleep that a deadline or a flag ends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from retrotread.clock import LoopClock, ManualClock, Timer, Wakeup, run, sleep_until_raised


def test_a_deadline_ends_the_sleep_exactly_on_time() -> None:
    async def main() -> tuple[bool, float]:
        clock = LoopClock()
        came = await sleep_until_raised(clock, 12.5, Wakeup())
        return came, clock.now()

    assert run(main(), virtual=True) == (True, 12.5)


def test_a_raised_flag_ends_the_sleep_before_the_deadline() -> None:
    async def main() -> tuple[bool, float]:
        clock, flag = LoopClock(), Wakeup()
        asyncio.get_running_loop().call_at(3.0, flag.set)
        came = await sleep_until_raised(clock, 60.0, flag)
        return came, clock.now()

    assert run(main(), virtual=True) == (False, 3.0)


def test_a_flag_already_raised_ends_the_sleep_at_once_and_stays_raised() -> None:
    async def main() -> tuple[bool, float, bool]:
        clock, flag = LoopClock(), Wakeup()
        flag.set()
        came = await sleep_until_raised(clock, 60.0, flag)
        return came, clock.now(), flag.is_set()

    assert run(main(), virtual=True) == (False, 0.0, True)


def test_any_of_several_flags_ends_the_sleep_and_no_waiter_is_left_behind() -> None:
    async def main() -> tuple[bool, float, bool]:
        clock, first, second = LoopClock(), Wakeup(), Wakeup()
        asyncio.get_running_loop().call_at(2.0, second.set)
        came = await sleep_until_raised(clock, 60.0, first, second)
        first.set()  # nobody waits any more: raising it must touch no finished sleep
        return came, clock.now(), first.is_set()

    assert run(main(), virtual=True) == (False, 2.0, True)


class CountingClock(LoopClock):
    """The loop's clock, counting the timers it arms and the ones disarmed again."""

    def __init__(self) -> None:
        self.armed = 0
        self.disarmed = 0

    def call_at(self, deadline: float, callback: Callable[[], object]) -> Timer:
        timer = super().call_at(deadline, callback)
        self.armed += 1
        outer = self

        class Counted:
            def cancel(self) -> None:
                outer.disarmed += 1
                timer.cancel()

        return Counted()


def test_a_cancelled_or_woken_sleep_disarms_its_timer() -> None:
    async def main() -> tuple[int, int]:
        clock, flag = CountingClock(), Wakeup()
        sleeper = asyncio.create_task(sleep_until_raised(clock, 3600.0, flag))
        await LoopClock().sleep_until(1.0)
        sleeper.cancel()
        await asyncio.gather(sleeper, return_exceptions=True)
        asyncio.get_running_loop().call_at(2.0, flag.set)
        await sleep_until_raised(clock, 3600.0, flag)
        return clock.armed, clock.disarmed

    assert run(main(), virtual=True) == (2, 2)


def test_manual_timers_fire_in_deadline_order_on_the_next_turn_and_cancel_cleanly() -> None:
    async def main() -> tuple[list[str], list[str]]:
        clock, fired = ManualClock(), []
        clock.call_at(2.0, lambda: fired.append("two"))
        clock.call_at(1.0, lambda: fired.append("one"))
        clock.call_at(1.5, lambda: fired.append("never")).cancel()
        clock.advance(2.0)
        before_turn = list(fired)
        await asyncio.sleep(0)
        return before_turn, fired

    assert asyncio.run(main()) == ([], ["one", "two"])


def test_a_manual_clock_running_freely_jumps_each_sleep_to_its_deadline() -> None:
    async def main() -> float:
        clock = ManualClock()
        sleeper = asyncio.create_task(clock.sleep_until(30.0))
        await asyncio.sleep(0)
        clock.run_freely()
        await sleeper
        await clock.sleep_until(45.0)
        return clock.now()

    assert asyncio.run(main()) == 45.0
