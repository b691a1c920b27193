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
from collections.abc import Callable, Coroutine
from typing import Any, Protocol


class Timer(Protocol):
    """A callback armed for a moment on a clock; :meth:`cancel` disarms it."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Seconds on one timeline; ``sleep_until`` wakes, and ``call_at`` calls back, at or after
    ``deadline``, never before it."""

    def now(self) -> float: ...

    async def sleep_until(self, deadline: float) -> None: ...

    def call_at(self, deadline: float, callback: Callable[[], object]) -> Timer: ...


class LoopTimer:
    """``loop.call_at`` that never fires early: the loop runs a timer up to its clock's
    resolution before it is due, and a boundary must never be reported early."""

    __slots__ = ("_callback", "_deadline", "_handle", "_loop")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, deadline: float, callback: Callable[[], object]
    ) -> None:
        self._loop, self._deadline, self._callback = loop, deadline, callback
        self._handle = loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        if self._loop.time() < self._deadline:
            self._handle = self._loop.call_at(self._deadline, self._fire)
        else:
            self._callback()

    def cancel(self) -> None:
        self._handle.cancel()


class LoopClock:
    """The running event loop's time (monotonic on a real loop, virtual on a virtual one)."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep_until(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        # asyncio.sleep may wake a hair early (timer resolution); never report a boundary early.
        while (delay := deadline - loop.time()) > 0:  # noqa: ASYNC110 - a deadline, not a flag
            await asyncio.sleep(delay)

    def call_at(self, deadline: float, callback: Callable[[], object]) -> Timer:
        return LoopTimer(asyncio.get_running_loop(), deadline, callback)


class Wakeup:
    """A flag to sleep on, like :class:`asyncio.Event`, that a deadline on a clock can also
    end: :func:`sleep_until_raised` races the two with one future, where racing
    ``sleep_until`` against ``Event.wait`` takes two tasks and an ``asyncio.wait`` (a
    rehearsal sleeps like this every second of its program)."""

    __slots__ = ("_raised", "_waiters")

    def __init__(self) -> None:
        self._raised = False
        self._waiters: list[asyncio.Future[bool]] = []

    def is_set(self) -> bool:
        return self._raised

    def set(self) -> None:
        if self._raised:
            return
        self._raised = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(False)

    def clear(self) -> None:
        self._raised = False

    async def wait(self) -> None:
        """Until the flag is raised (at once if it is)."""
        if not self._raised:
            await _wait(None, None, (self,))


async def sleep_until_raised(clock: Clock, deadline: float, *flags: Wakeup) -> bool:
    """Sleep until ``deadline`` on ``clock`` (True) or until one of ``flags`` is raised
    (False, at once if one already is). Flags are left as they are: the caller clears them."""
    if any(flag.is_set() for flag in flags):
        return False
    if clock.now() >= deadline:
        return True
    return await _wait(clock, deadline, flags)


async def _wait(clock: Clock | None, deadline: float | None, flags: tuple[Wakeup, ...]) -> bool:
    waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def deadline_came() -> None:
        if not waiter.done():
            waiter.set_result(True)

    for flag in flags:
        flag._waiters.append(waiter)
    timer = None if clock is None or deadline is None else clock.call_at(deadline, deadline_came)
    try:
        return await waiter
    finally:
        if timer is not None:
            timer.cancel()
        for flag in flags:
            flag._waiters.remove(waiter)


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


class _ManualTimer:
    __slots__ = ("callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], object]) -> None:
        self.deadline, self.callback, self.cancelled = deadline, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock a test moves by hand with :meth:`advance`; sleepers wake once it passes them.

    The console's tests use it for the session and the simulator while Textual keeps its own
    (real) timers: program time then moves only when the test says, and by exactly as much.
    A timer that comes due runs on the loop's next turn, as a loop timer would.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._timers: list[_ManualTimer] = []
        self._free = False

    def now(self) -> float:
        return self._now

    async def sleep_until(self, deadline: float) -> None:
        if deadline > self._now or self._free:  # running freely, even a past one yields a turn
            await _wait(self, deadline, ())

    def call_at(self, deadline: float, callback: Callable[[], object]) -> Timer:
        timer = _ManualTimer(deadline, callback)
        if self._free:
            self._now = max(self._now, deadline)
            self._fire(timer)
        elif deadline <= self._now:
            self._fire(timer)
        else:
            self._timers.append(timer)
        return timer

    def _fire(self, timer: _ManualTimer) -> None:
        def run() -> None:
            if not timer.cancelled:
                timer.cancelled = True  # once
                timer.callback()

        asyncio.get_running_loop().call_soon(run)

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has now passed."""
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        self._now += seconds
        self._fire_due()

    def _fire_due(self) -> None:
        due = sorted(
            (t for t in self._timers if t.deadline <= self._now or self._free),
            key=lambda t: t.deadline,
        )
        self._timers = [t for t in self._timers if t not in due and not t.cancelled]
        for timer in due:
            if self._free:
                self._now = max(self._now, timer.deadline)
            self._fire(timer)

    def run_freely(self) -> None:
        """From now on nobody waits: each sleep jumps the clock to its deadline.

        For a test's way out: whatever still sleeps (a session stopping its belt) finishes
        without someone advancing the clock.
        """
        self._free = True
        self._fire_due()
