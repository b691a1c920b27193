"""Clocks: the real one, and a virtual one that runs a 60-minute program in a blink.

Everything that waits — the scheduler, the drivers' confirmation timeouts, the simulator's
belt and telemetry — waits on the *event loop's* time. A :class:`Clock` reads that time and
sleeps on it. On a normal loop that is the monotonic clock; on a :class:`VirtualTimeLoop` time
only moves when every task is waiting, and then jumps straight to the next timer. So one
mechanism makes the whole stack virtual at once, including libraries (pyftms, bleak) that use
``asyncio.timeout`` internally.

The virtual loop only skips time while nothing is ready to run, so it suits in-process work;
real I/O to another process (a serial pty, say) runs on the real clock.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, Protocol


class Clock(Protocol):
    """Seconds on one timeline; ``sleep_until`` wakes at or after ``deadline``."""

    def now(self) -> float: ...

    async def sleep_until(self, deadline: float) -> None: ...


class LoopClock:
    """The running event loop's time (monotonic on a real loop, virtual on a virtual one)."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep_until(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        # asyncio.sleep may wake a hair early (timer resolution); never report a boundary early.
        while (delay := deadline - loop.time()) > 0:  # noqa: ASYNC110 - a deadline, not a flag
            await asyncio.sleep(delay)


class _VirtualSelector(selectors.DefaultSelector):
    """A selector that, instead of blocking until the next timer, moves virtual time there."""

    def __init__(self, loop_ref: list[VirtualTimeLoop]) -> None:
        super().__init__()
        self._loop_ref = loop_ref

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events: list[tuple[selectors.SelectorKey, int]] = super().select(0)
        if events or (timeout is not None and timeout <= 0):
            return events
        if timeout is None:  # no timers at all: only I/O can wake us, so wait for it for real
            result: list[tuple[selectors.SelectorKey, int]] = super().select(None)
            return result
        self._loop_ref[0].advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock starts at 0 and jumps ahead whenever all tasks are waiting."""

    def __init__(self) -> None:
        ref: list[VirtualTimeLoop] = []
        super().__init__(selector=_VirtualSelector(ref))
        ref.append(self)
        self._virtual_now = 0.0

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        target = self._virtual_now + seconds
        # Land exactly on the timer that is due (now + (when - now) can be 1 ulp off), so that
        # boundaries computed from the program start stay exact however long a program runs.
        scheduled = getattr(self, "_scheduled", None)
        if scheduled and abs(scheduled[0].when() - target) < 1e-6:
            target = max(self._virtual_now, scheduled[0].when())
        self._virtual_now = target


def run[T](main: Coroutine[Any, Any, T], *, virtual: bool = False) -> T:
    """Run ``main`` on a real loop, or on a virtual-time loop for rehearsals and tests."""
    factory = VirtualTimeLoop if virtual else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


class ManualClock:
    """A clock a test moves by hand with :meth:`advance`; sleepers wake once it passes them.

    The console's tests use it for the session and the simulator while Textual keeps its own
    (real) timers: program time then moves only when the test says, and by exactly as much.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._free = False

    def now(self) -> float:
        return self._now

    async def sleep_until(self, deadline: float) -> None:
        if self._free:
            self._now = max(self._now, deadline)
            await asyncio.sleep(0)
        if deadline <= self._now:
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((deadline, woken))
        try:
            await woken
        finally:
            self._sleepers = [s for s in self._sleepers if s[1] is not woken]

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has now passed."""
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        self._now += seconds
        for deadline, woken in list(self._sleepers):
            if deadline <= self._now and not woken.done():
                woken.set_result(None)

    def run_freely(self) -> None:
        """From now on nobody waits: each sleep jumps the clock to its deadline.

        For a test's way out: whatever still sleeps (a session stopping its belt) finishes
        without someone advancing the clock.
        """
        self._free = True
        for deadline, woken in list(self._sleepers):
            self._now = max(self._now, deadline)
            if not woken.done():
                woken.set_result(None)
