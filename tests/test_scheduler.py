"""The interval engine on the virtual clock: exact boundaries and every control."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from retrotread.clock import LoopClock, ManualClock, run
from retrotread.events import (
    BlockExtended,
    BlockSkipped,
    BlockStarted,
    Countdown,
    CueDue,
    Event,
    Paused,
    ProgramFinished,
    ProgramStarted,
    ProgramStopped,
    Resumed,
    StopReason,
    Tick,
)
from retrotread.scheduler import EngineState, Scheduler
from tests.helpers import retro_program


def play(
    durations: list[int],
    script: Callable[[Scheduler], Coroutine[Any, Any, None]] | None = None,
) -> tuple[Scheduler, list[Event]]:
    """Run a program of retro blocks on the virtual clock, with an optional control script."""
    events: list[Event] = []

    async def main() -> Scheduler:
        scheduler = Scheduler(retro_program(durations), LoopClock())
        scheduler.subscribe(events.append)
        tasks = [asyncio.create_task(scheduler.run())]
        if script:
            tasks.append(asyncio.create_task(script(scheduler)))
        await asyncio.gather(*tasks)
        return scheduler

    return run(main(), virtual=True), events


def starts(events: list[Event]) -> list[float]:
    return [e.at for e in events if isinstance(e, BlockStarted)]


async def at(seconds: float) -> None:
    """Sleep until absolute virtual time ``seconds``."""
    await LoopClock().sleep_until(seconds)


def test_boundaries_are_exact_after_ten_thousand_blocks() -> None:
    durations = [1 + (i % 7) for i in range(10_000)]
    scheduler, events = play(durations)
    expected, offset = [], 0
    for d in durations:
        expected.append(float(offset))
        offset += d
    assert starts(events) == expected  # exact equality: no drift at all
    finished = events[-1]
    assert isinstance(finished, ProgramFinished)
    assert finished.at == float(sum(durations))
    assert scheduler.state is EngineState.FINISHED


def test_ticks_cue_and_countdown_before_each_change() -> None:
    _, events = play([10, 4])
    first = [e for e in events if e.at < 10]
    ticks = [e.remaining_s for e in first if isinstance(e, Tick)]
    assert ticks == [9, 8, 7, 6, 5, 4, 3, 2, 1]
    cue = [e for e in first if isinstance(e, CueDue)]
    assert len(cue) == 1 and cue[0].at == 5.0 and cue[0].step.index == 1
    counts = [(e.at, e.count) for e in first if isinstance(e, Countdown)]
    assert counts == [(7.0, 3), (8.0, 2), (9.0, 1)]
    last = [e for e in events if isinstance(e, Countdown) and e.at >= 10]
    assert [e.count for e in last] == [3, 2, 1] and last[0].step is None
    assert isinstance(events[0], ProgramStarted)


def test_pause_stops_time_and_resume_continues() -> None:
    async def script(s: Scheduler) -> None:
        await at(4)
        s.pause()
        await at(34)  # paused for 30 s
        s.resume()

    scheduler, events = play([10, 10], script)
    assert starts(events) == [0.0, 40.0]
    assert [e.at for e in events if isinstance(e, Paused | Resumed)] == [4.0, 34.0]
    assert events[-1].at == 50.0
    assert scheduler.program_elapsed() == 20.0
    # no ticks while paused
    assert not [e for e in events if isinstance(e, Tick) and 4 < e.at < 34]


def test_skip_moves_to_the_next_block_now() -> None:
    async def script(s: Scheduler) -> None:
        await at(3)
        s.skip()

    _, events = play([10, 10, 10], script)
    assert starts(events) == [0.0, 3.0, 13.0]
    skipped = [e for e in events if isinstance(e, BlockSkipped)]
    assert skipped[0].step.index == 0


def test_extend_adds_fifteen_seconds_to_the_current_block() -> None:
    async def script(s: Scheduler) -> None:
        await at(8.5)
        s.extend()

    _, events = play([10, 10], script)
    assert starts(events) == [0.0, 25.0]
    extended = [e for e in events if isinstance(e, BlockExtended)]
    assert extended[0].ends_at == 25.0 and extended[0].seconds == 15
    counts = [e.at for e in events if isinstance(e, Countdown) and 8.5 < e.at < 25]
    assert counts == [22.0, 23.0, 24.0]  # the countdown re-aims at the new end


def test_stop_ends_the_program_with_a_reason() -> None:
    async def script(s: Scheduler) -> None:
        await at(12)
        s.stop(StopReason.OPERATOR, "client tired")

    scheduler, events = play([10, 10, 10], script)
    assert scheduler.state is EngineState.STOPPED
    stopped = events[-1]
    assert isinstance(stopped, ProgramStopped)
    assert (stopped.at, stopped.reason, stopped.detail, stopped.blocks_done) == (
        12.0,
        StopReason.OPERATOR,
        "client tired",
        1,
    )
    assert not [e for e in events if isinstance(e, ProgramFinished)]


def test_a_failing_listener_does_not_stop_the_program() -> None:
    async def main() -> EngineState:
        scheduler = Scheduler(retro_program([3, 3]), LoopClock())

        def broken(event: Event) -> None:
            raise RuntimeError("front end bug")

        scheduler.subscribe(broken)
        return await scheduler.run()

    assert run(main(), virtual=True) is EngineState.FINISHED


def test_virtual_clock_runs_an_hour_in_well_under_a_second() -> None:
    import time

    began = time.perf_counter()
    _, events = play([30] * 120)  # 60 minutes
    assert events[-1].at == 3600.0
    assert time.perf_counter() - began < 2.0  # generous: the benchmark measures the real figure


def test_a_pause_in_the_same_instant_as_a_tick_wins_over_the_tick() -> None:
    """The deadline has come but the engine has not run yet when the operator pauses: the
    paused engine must not then report that second's tick (a frozen screen would show a
    second that never played)."""
    events: list[Event] = []

    async def main() -> None:
        clock = ManualClock()
        scheduler = Scheduler(retro_program([30]), clock)
        scheduler.subscribe(events.append)
        engine = asyncio.create_task(scheduler.run())
        for _ in range(3):
            await asyncio.sleep(0)
        clock.advance(1.0)
        await asyncio.sleep(0)  # the clock's timer ran: the engine's wake-up is queued
        scheduler.pause()
        for _ in range(3):
            await asyncio.sleep(0)
        scheduler.stop()
        await engine

    asyncio.run(main())
    paused_at = next(i for i, e in enumerate(events) if isinstance(e, Paused))
    assert [e for e in events[paused_at:] if isinstance(e, Tick)] == []
