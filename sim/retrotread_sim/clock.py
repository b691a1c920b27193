"""Time for the simulated treadmill.

The simulator is its own machine, so it has its own notion of a clock: anything with
``now() -> float`` (seconds) and ``async sleep_until(deadline)``. The controller under test can
hand in its own clock object of the same shape, so belt physics and the program run on one
timeline — real or virtual — without the simulator importing the controller.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class SimClock(Protocol):
    def now(self) -> float: ...

    async def sleep_until(self, deadline: float) -> None: ...


class LoopClock:
    """The running event loop's time: real on a normal loop, virtual on a virtual-time loop."""

    def now(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return time.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - self.now()
        await asyncio.sleep(max(0.0, delay))


class ManualClock:
    """A clock a test moves by hand (``advance``); sleepers wake when their deadline passes."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((deadline, future))
        await future

    def advance(self, seconds: float) -> None:
        self._now += seconds
        due = [w for w in self._waiters if w[0] <= self._now]
        self._waiters = [w for w in self._waiters if w[0] > self._now]
        for _, future in due:
            if not future.done():
                future.set_result(None)
