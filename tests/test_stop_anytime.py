"""STOP (or a signal) at any moment ends with the belt stopped: the in-process link.

Issue 13 asks for the stop path to be proved adversarially: STOP pressed and signals sent at
random moments — during a command answered late, during a ramp, while the link is down, right
after it returns, while a command goes unanswered — and in every trial the belt ends stopped,
no command goes out while another is on the wire, and never more than one stop at once.
Hypothesis picks the moment, the fault and the way out; on the virtual clock a trial takes
milliseconds, so this runs 500 of them. (The BLE link has its own, against the strict FTMS
machine: ``test_ftms_stop_property.py``; serial runs in ``bench/stop_trials.py``.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrotread.clock import LoopClock, run
from retrotread.drivers.registry import open_treadmill
from retrotread.drivers.sim import SimDriver
from retrotread.events import StopReason
from retrotread.session import Session
from retrotread.units import Quantity
from tests.helpers import retro_program

TRIALS = 500

#: faults around the moment of the STOP (seconds on the simulator's clock)
FAULTS = st.sampled_from(
    [
        "",
        "late:set-speed=3@{at}",  # the answer to a speed change comes 3 s late
        "late:any=2@{at}",  # every answer late, the stop's too
        "drop@{at}+4",  # the link is down for 4 s
        "drop@{at}+40",  # ...for longer than the rest of the program
        "ignore:set-speed@{at}",  # a speed change never answered
        "silent@{at}+6",  # nothing answered, nothing done, for 6 s
        "console-pause@{at}",
        "slow-ramp=0.3",
    ]
)
WAYS_OUT = st.sampled_from(
    [StopReason.OPERATOR, StopReason.SIGNAL_INT, StopReason.SIGNAL_TERM, StopReason.SIGNAL_HUP]
)


@dataclass
class Watch:
    """Every procedure the session puts on the in-process wire, and how many overlap."""

    on_wire: int = 0
    most_on_wire: int = 0
    stops_on_wire: int = 0
    most_stops: int = 0
    names: list[str] = field(default_factory=list)


class WatchedSim(SimDriver):
    watch: Watch

    async def _watched(self, name: str, action: Callable[[], Awaitable[None]]) -> None:
        w = self.watch
        w.on_wire += 1
        w.most_on_wire = max(w.most_on_wire, w.on_wire)
        w.stops_on_wire += name == "stop"
        w.most_stops = max(w.most_stops, w.stops_on_wire)
        w.names.append(name)
        try:
            await action()
        finally:
            w.on_wire -= 1
            w.stops_on_wire -= name == "stop"

    async def _do_stop(self) -> None:
        await self._watched("stop", super()._do_stop)

    async def _do_start(self) -> None:
        await self._watched("start", super()._do_start)

    async def _do_pause(self) -> None:
        await self._watched("pause", super()._do_pause)

    async def _do_set_speed(self, speed: Quantity) -> None:
        await self._watched("set speed", lambda: super(WatchedSim, self)._do_set_speed(speed))

    async def _do_set_incline(self, incline: Quantity) -> None:
        await self._watched("set incline", lambda: super(WatchedSim, self)._do_set_incline(incline))


@dataclass
class Trial:
    stopped_at_release: bool
    watch: Watch


def play(plan: str, stop_at: float, way_out: StopReason, second_press: bool) -> Trial:
    async def main() -> Trial:
        clock = LoopClock()
        plain = open_treadmill(f"sim://?faults={plan}" if plan else "sim://", clock=clock)
        driver = WatchedSim(plain.url, plain.profile, clock)
        driver.watch = Watch()
        # Longer than any outage the faults below make (two 40 s drops back to back): a link
        # down for longer than the hold limit is one no software can stop a belt through.
        session = Session(retro_program([20, 20]), driver, clock, unattended=True, hold_limit_s=120)
        released: list[bool] = []
        close = driver.close

        async def read_then_close() -> None:
            assert driver.machine is not None
            released.append(driver.machine.belt_stopped)
            await close()

        driver.close = read_then_close  # type: ignore[method-assign]
        playing = asyncio.create_task(session.run())
        await clock.sleep_until(stop_at)
        session.stop(way_out)
        if second_press:  # a second Ctrl-C a moment later must not cut the stop short
            await clock.sleep_until(stop_at + 0.05)
            session.stop(way_out)
        await playing
        return Trial(released[0], driver.watch)

    return run(main(), virtual=True)


@settings(
    max_examples=TRIALS,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    fault=FAULTS,
    fault_at=st.integers(min_value=1, max_value=30),
    then=FAULTS,  # a second fault on top: a hold, then a lost link, say
    then_at=st.integers(min_value=1, max_value=40),
    stop_at=st.floats(min_value=0.0, max_value=45.0, allow_nan=False),
    way_out=WAYS_OUT,
    second_press=st.booleans(),
)
def test_stop_at_any_moment_leaves_the_belt_stopped(
    fault: str,
    fault_at: int,
    then: str,
    then_at: int,
    stop_at: float,
    way_out: StopReason,
    second_press: bool,
) -> None:
    plan = ",".join(p for p in (fault.format(at=fault_at), then.format(at=then_at)) if p)
    trial = play(plan, stop_at, way_out, second_press)
    assert trial.stopped_at_release, trial.watch.names
    assert trial.watch.most_on_wire <= 1, trial.watch.names  # nothing written into a procedure
    assert trial.watch.most_stops <= 1
    assert trial.watch.names[-1] == "stop", trial.watch.names
