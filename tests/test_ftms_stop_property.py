"""STOP pressed at random moments against the strict FTMS machine (issue 13).

Each trial plays a program over the whole BLE stack (session, ``ble://`` driver, pyftms,
bleak) against the strict simulated machine on the virtual clock, and presses STOP at a
moment hypothesis picks:

* **pending** — while a speed change waits for an answer the machine sends late (up to 29 s,
  inside FTMS's 30 s);
* **ramp** — anywhere in the start sequence and the ramp from standstill (incline, first
  speed, start, the console's countdown, ramp steps, block changes);
* **reconnect** — right after the link came back from an outage (the strict machine
  stopped its belt when the link dropped; it sends no data for a still belt).

Every trial must end with the belt stopped by the stop path (read from the machine when
the session lets go of the link — the strict machine would also stop it on the disconnect
that follows), no write into a pending procedure (the machine counts its ATT 0xFE answers:
none), and never more than one stop in flight.

Trials: ``TRIALS`` per kind of moment on the strict machine (3 x 200 = 600), and
``OTHER_TRIALS`` (100) at any of them on the pause-first machine, which refuses Stop while
its belt moves. The belt must be stopped (on the pause-first machine, stopped or paused
and still).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrotread.clock import LoopClock, run
from retrotread.drivers.base import MachineEvent, MachineEventKind, Report
from retrotread.events import StopReason
from retrotread.session import Session
from retrotread_sim.belt import BeltState
from tests.ble_rig import BleRig, ble_rig, first_write
from tests.helpers import retro_program

TRIALS = 200
#: Trials on the pause-first machine (any of the three moments).
OTHER_TRIALS = 100
#: Waits for the moment to press STOP (the rig, and an event set when the link is restored).
Press = Callable[[BleRig, asyncio.Event], Coroutine[Any, Any, None]]
PROGRAM = (20, 20)  # two retro blocks at different speeds: a ramp, then a speed change


@dataclass
class Trial:
    """What one trial saw."""

    pressed_at: float | None = None
    stopped_at_release: bool | None = None
    stops_in_flight: int = 0
    most_stops_in_flight: int = 0
    busy_refusals: int = 0
    events: list[str] = field(default_factory=list)


def count_stops(rig: BleRig, trial: Trial) -> None:
    """Count the driver's stop procedures in flight (``_do_stop`` is the one on the wire)."""
    driver = rig.driver
    do_stop = driver._do_stop

    async def counted() -> None:
        trial.stops_in_flight += 1
        trial.most_stops_in_flight = max(trial.most_stops_in_flight, trial.stops_in_flight)
        try:
            await do_stop()
        finally:
            trial.stops_in_flight -= 1

    driver._do_stop = counted  # type: ignore[method-assign]


def read_belt_on_release(rig: BleRig, trial: Trial) -> None:
    """Read the machine's belt when the session closes the link (before the strict machine
    would stop it for the disconnect)."""
    driver = rig.driver
    close = driver.close

    async def closing() -> None:
        if trial.stopped_at_release is None:
            snap = rig.machine.snapshot()
            # Stopped; on the pause-first machine paused and still is as good.
            halted = rig.machine.belt_stopped or (
                rig.server.options.stop_refused_while_moving
                and snap.state is BeltState.PAUSED
                and snap.speed_kmh == 0
            )
            trial.stopped_at_release = halted
        await close()

    driver.close = closing  # type: ignore[method-assign]


def trial(press: Press, kind: str = "strict") -> Trial:
    """Play the program on the ``kind`` machine, with ``press`` pressing STOP."""
    seen = Trial()

    async def main() -> None:
        rig = ble_rig(kind=kind)
        count_stops(rig, seen)
        read_belt_on_release(rig, seen)
        session = Session(retro_program(list(PROGRAM)), rig.driver, LoopClock(), unattended=True)
        restored = asyncio.Event()

        def on_report(report: Report) -> None:
            if isinstance(report, MachineEvent) and report.kind is MachineEventKind.LINK_RESTORED:
                restored.set()

        rig.driver.subscribe(on_report)

        async def operator() -> None:
            await press(rig, restored)
            seen.pressed_at = asyncio.get_running_loop().time()
            session.stop(StopReason.OPERATOR)

        helper = asyncio.create_task(operator())
        summary = await session.run()
        helper.cancel()
        seen.busy_refusals = rig.server.busy_refusals
        seen.events = [f"{w.time:.2f} {w.hex} {w.result} {w.att_error}" for w in rig.server.writes]
        assert summary.belt_stopped, seen.events
        rig.server.close()

    run(main(), virtual=True)
    return seen


def check(seen: Trial) -> None:
    assert seen.stopped_at_release is True, seen.events
    assert seen.busy_refusals == 0, seen.events
    assert seen.most_stops_in_flight == 1, seen.events


_SETTINGS = settings(
    max_examples=TRIALS,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def pending(late: float, share: float, which: int) -> Press:
    """STOP ``share`` of the way into the ``which``-th speed change, answered ``late``."""

    async def press(rig: BleRig, restored: asyncio.Event) -> None:
        rig.server.delay_answers(0x02, late, times=100)  # every speed change answered late
        sent = 0.0
        for _ in range(which):  # the n-th speed change of the program (ramp steps, blocks)
            sent = await first_write(rig.server, "02", after=sent)
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, sent + share * late - loop.time()))

    return press


def during_ramp(at: float) -> Press:
    """STOP ``at`` seconds into the session: start sequence, countdown, ramp, blocks."""

    async def press(rig: BleRig, restored: asyncio.Event) -> None:
        await asyncio.sleep(at)

    return press


def after_reconnect(drop_at: float, outage: float, after: float) -> Press:
    """The link drops at ``drop_at`` for ``outage`` s; STOP ``after`` s once it is back."""

    async def press(rig: BleRig, restored: asyncio.Event) -> None:
        await asyncio.sleep(drop_at)
        rig.peripheral.in_range = False
        rig.server.disconnect()
        await asyncio.sleep(outage)
        rig.peripheral.in_range = True
        await restored.wait()
        await asyncio.sleep(after)

    return press


LATE = st.floats(min_value=0.5, max_value=29.0)
SHARE = st.floats(min_value=0.0, max_value=0.99)
WHICH = st.integers(min_value=1, max_value=4)
AT = st.floats(min_value=0.0, max_value=45.0)
DROP_AT = st.floats(min_value=2.0, max_value=35.0)
OUTAGE = st.floats(min_value=0.1, max_value=15.0)
AFTER = st.floats(min_value=0.0, max_value=3.0)


@_SETTINGS
@given(late=LATE, share=SHARE, which=WHICH)
def test_stop_during_a_pending_command_with_a_late_answer(
    late: float, share: float, which: int
) -> None:
    check(trial(pending(late, share, which)))


@_SETTINGS
@given(at=AT)
def test_stop_during_the_start_and_the_ramp(at: float) -> None:
    check(trial(during_ramp(at)))


@_SETTINGS
@given(drop_at=DROP_AT, outage=OUTAGE, after=AFTER)
def test_stop_right_after_a_reconnect(drop_at: float, outage: float, after: float) -> None:
    check(trial(after_reconnect(drop_at, outage, after)))


@settings(_SETTINGS, max_examples=OTHER_TRIALS)
@given(
    press=st.one_of(
        st.builds(pending, LATE, SHARE, WHICH),
        st.builds(during_ramp, AT),
        st.builds(after_reconnect, DROP_AT, OUTAGE, AFTER),
    )
)
def test_stop_at_any_moment_on_a_machine_that_must_be_paused_first(press: Press) -> None:
    """The pause-first machine (KingSmith R3) refuses Stop while its belt moves: the belt
    ends still (paused, or stopped), with the same guarantees."""
    check(trial(press, kind="pause-first"))
