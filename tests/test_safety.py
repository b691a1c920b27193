"""The safety governor: nothing outside the allowed set ever reaches a driver."""

from __future__ import annotations

import asyncio
import dataclasses
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrotread.clock import LoopClock, run
from retrotread.drivers.base import Capabilities, Range
from retrotread.drivers.sim import SimDriver
from retrotread.drivers.url import DeviceUrl
from retrotread.errors import ProfileError, SafetyError
from retrotread.profiles import get_profile, parse_profile
from retrotread.program.model import (
    Band,
    Block,
    BlockKind,
    Defaults,
    Handrail,
    Program,
    Step,
    TurnMode,
)
from retrotread.safety import Governor
from retrotread.session import Session
from retrotread.units import Increment, Quantity, Unit, kmh, mph, percent

SIM = get_profile("simulator")
INCREMENTS = [
    Increment.of("0.01", Unit.KMH),
    Increment.of("0.1", Unit.KMH),
    Increment.of("0.16", Unit.KMH),
    Increment.of("0.1", Unit.MPH),
]


def governor(increment: Increment, cap: str = "8", max_change: str = "1.0") -> Governor:
    profile = dataclasses.replace(
        SIM,
        speed=dataclasses.replace(SIM.speed, max_mph=mph(cap), max_change_mph=mph(max_change)),
    )
    low = mph("0.5").to(increment.unit)
    caps = Capabilities(
        speed=Range(low, mph(12).to(increment.unit), increment),
        incline=Range(percent(0), percent(15), Increment.of("0.5", Unit.PERCENT)),
    )
    return Governor(profile, caps)


def step_with(band: Band, kind: BlockKind = BlockKind.RETRO) -> Step:
    block = Block(kind, 30, band.low, percent(2), Handrail.BOTH_HANDS)
    return Step(0, block, 0, Defaults().start_facing, band)


def on_grid(value: Quantity, increment: Increment) -> bool:
    return (value.to(increment.unit).value / increment.size).denominator == 1


mph_values = st.decimals(min_value="0.3", max_value="10", places=2).map(lambda d: mph(str(d)))


@given(
    requested=mph_values,
    low=mph_values,
    width=st.decimals(min_value="0", max_value="3", places=2),
    cap=st.sampled_from(["3.0", "4.5", "8"]),
    increment=st.sampled_from(INCREMENTS),
)
def test_a_governed_speed_is_inside_band_cap_and_machine(
    requested: Quantity, low: Quantity, width: object, cap: str, increment: Increment
) -> None:
    band = Band(low, mph(low.value + Fraction(str(width))))
    gov = governor(increment, cap)
    try:
        value = gov.speed(step_with(band), requested)
    except SafetyError as err:
        assert "nothing was sent" in str(err)
        return
    v = value.to(Unit.MPH)
    assert band.low <= v <= band.high
    assert v <= mph(cap)
    assert mph("0.5") <= v
    assert on_grid(value, increment)


def test_retro_edges_on_an_ftms_grid() -> None:
    gov = governor(Increment.of("0.01", Unit.KMH))
    retro = step_with(Band(mph("2.6"), mph("3.2")))
    assert gov.speed(retro, mph("2.6")) == kmh("4.19")
    assert gov.speed(retro, mph("3.2")) == kmh("5.14")
    assert gov.speed(retro, mph("9")) == kmh("5.14")  # a nudge past the band stops at its edge
    turn = step_with(Band(mph(0), mph(1)), BlockKind.TURN_AROUND)
    assert gov.speed(turn, mph("2.8")).to(Unit.MPH) <= mph(1)


@given(
    last=mph_values,
    target=mph_values,
    increment=st.sampled_from(INCREMENTS),
    max_change=st.sampled_from(["0.2", "0.5", "1.0"]),
)
def test_ramps_never_jump_more_than_the_profile_allows(
    last: Quantity, target: Quantity, increment: Increment, max_change: str
) -> None:
    if mph(max_change).to(increment.unit).value < increment.size:
        return
    gov = governor(increment, max_change=max_change)
    machine_low = gov.capabilities.speed.low
    grid = increment.size
    snap = lambda q: Quantity(round(q.to(increment.unit).value / grid) * grid, increment.unit)  # noqa: E731
    current, goal = max(snap(last), machine_low), max(snap(target), machine_low)
    for _ in range(200):
        if current == goal:
            break
        nxt = gov.ramp(current, goal)
        assert abs(nxt.to(Unit.MPH).value - current.to(Unit.MPH).value) <= Fraction(max_change)
        lo, hi = sorted([current.to(Unit.MPH), goal.to(Unit.MPH)])
        assert lo <= nxt.to(Unit.MPH) <= hi  # always between where it was and where it goes
        assert on_grid(nxt, increment) or nxt == goal
        current = nxt
    assert current == goal


def test_a_profile_whose_ramp_step_is_below_one_increment_is_refused() -> None:
    import tomllib
    from importlib import resources

    text = resources.files("retrotread.devices").joinpath("generic-csafe.toml").read_text()
    data = tomllib.loads(text)
    data["speed"]["max_change_mph"] = 0.05
    with pytest.raises(ProfileError, match="smaller than one increment"):
        parse_profile(data, "csafe.toml")


# -- the whole path: random programs and operator actions against the simulator ----------------


class RecordingSim(SimDriver):
    """The in-process simulator link, checking every command as it arrives."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.session: Session | None = None
        self.violations: list[str] = []
        self.last_sent: Quantity | None = None
        self.sent: list[Quantity] = []

    async def set_speed(self, speed: Quantity) -> None:
        assert self.session is not None and self.session._governor is not None
        step = self.session.state.step
        caps = self.capabilities
        cap = self.profile.speed.max_mph
        v = speed.to(Unit.MPH)
        last = (self.last_sent or caps.speed.low).to(Unit.MPH)
        if not on_grid(speed, caps.speed.increment):
            self.violations.append(f"{v} off the machine grid")
        if v > cap or speed.to(Unit.KMH) < caps.speed.low.to(Unit.KMH):
            self.violations.append(f"{v} outside machine range or cap")
        if abs(v.value - last.value) > self.profile.speed.max_change_mph.value:
            self.violations.append(f"jump {last} -> {v}")
        if step is not None and v > step.band.high and v > last:
            self.violations.append(f"{v} rises above band {step.band} of {step.title}")
        self.last_sent = speed
        self.sent.append(speed)
        await super().set_speed(speed)

    async def stop(self) -> None:
        self.last_sent = None
        await super().stop()

    async def pause(self) -> None:
        self.last_sent = None
        await super().pause()


walk_kinds = st.sampled_from(
    [BlockKind.WARM_UP, BlockKind.FORWARD, BlockKind.RECOVERY, BlockKind.COOL_DOWN]
)


@st.composite
def programs(draw: st.DrawFn) -> Program:
    defaults = Defaults(turn=draw(st.sampled_from(list(TurnMode))))
    items: list[Block] = []
    for _ in range(draw(st.integers(1, 4))):
        seconds = draw(st.integers(6, 40))
        if draw(st.booleans()):
            speed = mph(str(draw(st.decimals("0.5", "4.5", places=1))))
            items.append(Block(draw(walk_kinds), seconds, speed, percent(1), Handrail.HANDS_FREE))
        else:
            retro_speed = mph(str(draw(st.decimals("2.6", "3.2", places=2))))
            turn_speed = None if defaults.turn is TurnMode.PAUSE else defaults.turn_speed
            turn = Block(BlockKind.TURN_AROUND, 5, turn_speed, percent(2), Handrail.BOTH_HANDS)
            retro = Block(BlockKind.RETRO, seconds, retro_speed, percent(2), Handrail.BOTH_HANDS)
            items += [turn, retro, turn]
    return Program("random", "", tuple(items), defaults)


actions = st.lists(
    st.tuples(
        st.integers(0, 150),
        st.sampled_from(["faster", "slower", "skip", "extend", "pause", "resume"]),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(program=programs(), script=actions, increment=st.sampled_from(["0.01", "0.1", "0.16"]))
def test_whatever_is_asked_nothing_outside_the_allowed_set_reaches_the_driver(
    program: Program, script: list[tuple[int, str]], increment: str
) -> None:
    async def main() -> RecordingSim:
        clock = LoopClock()
        url = DeviceUrl.parse("sim://")
        profile = dataclasses.replace(
            SIM,
            speed=dataclasses.replace(SIM.speed, increment=Increment.of(increment, Unit.KMH)),
        )
        driver = RecordingSim(url, profile, clock)
        session = Session(program, driver, clock, unattended=True)
        driver.session = session
        task = asyncio.create_task(session.run())
        for when, action in sorted(script):
            await clock.sleep_until(float(when))
            if task.done():
                break
            {
                "faster": lambda: session.nudge_speed(0.1 * 5),
                "slower": lambda: session.nudge_speed(-0.1 * 5),
                "skip": session.skip,
                "extend": session.extend,
                "pause": session.pause,
                "resume": session.resume,
            }[action]()
        await clock.sleep_until(clock.now() + 400)  # long enough to finish any paused program
        if not task.done():
            session.stop()
        summary = await task
        assert summary.belt_stopped
        return driver

    driver = run(main(), virtual=True)
    assert driver.violations == []
    assert driver.machine is not None
    assert [c.name for c in driver.machine.commands if c.source == "link"][-1] == "stop"


# -- issue 13, finding 6: nothing is changed silently -----------------------------------------


def fast_backward(speed: str, band: tuple[str, str] = ("2.6", "12")) -> Program:
    defaults = Defaults(retro_band=Band(mph(band[0]), mph(band[1])))
    warm = Block(BlockKind.WARM_UP, 30, mph("2.5"), percent(2), Handrail.HANDS_FREE)
    turn = Block(BlockKind.TURN_AROUND, 5, defaults.turn_speed, percent(2), Handrail.BOTH_HANDS)
    retro = Block(BlockKind.RETRO, 30, mph(speed), percent(2), Handrail.BOTH_HANDS)
    return Program("fast", "", (warm, turn, retro), defaults)


def test_a_backward_target_above_the_ceiling_is_refused_before_the_belt_moves() -> None:
    """A program that widens the retro band to 12 mph and asks 10 mph used to get 8 mph
    (the profile's cap) without a word; now nothing is sent and the reason is named."""

    async def main() -> tuple[str, list[str]]:
        clock = LoopClock()
        driver = SimDriver(DeviceUrl.parse("sim://"), SIM, clock)
        summary = await Session(fast_backward("10"), driver, clock, unattended=True).run()
        assert driver.machine is not None
        return summary.detail, [c.name for c in driver.machine.commands if c.source == "link"]

    detail, sent = run(main(), virtual=True)
    assert "10 mph is above the ceiling for walking backward (5 mph)" in detail
    assert "stop" in sent and "start" not in sent and "set-speed" not in sent


def test_a_target_the_machine_cannot_reach_names_the_limit() -> None:
    slow_machine = governor(Increment.of("0.1", Unit.MPH), cap="3.0")
    problems = slow_machine.check(fast_backward("3.2", band=("2.6", "3.2")).steps)
    assert problems == [
        "block 'Retro': 3.2 mph is above this profile's cap 3 mph (3 mph); it would run at 3 mph"
    ]


def test_quantization_alone_is_not_a_change() -> None:
    ftms = governor(Increment.of("0.01", Unit.KMH))
    assert ftms.check(fast_backward("2.6", band=("2.6", "3.2")).steps) == []
    assert ftms.check(fast_backward("3.2", band=("2.6", "3.2")).steps) == []


def test_a_profile_can_raise_the_backward_ceiling_explicitly() -> None:
    coach = dataclasses.replace(SIM, speed=dataclasses.replace(SIM.speed, max_backward_mph=mph(6)))
    caps = governor(Increment.of("0.1", Unit.MPH)).capabilities
    assert Governor(coach, caps).check(fast_backward("5.5").steps) == []
    assert Governor(SIM, caps).check(fast_backward("5.5").steps) != []


@given(
    turn_kmh=st.decimals(min_value="0.8", max_value="3.2", places=1),
    block_mph=st.decimals(min_value="0.5", max_value="2.0", places=1),
)
def test_a_turn_speed_in_kmh_bounds_turn_arounds_in_kmh(
    turn_kmh: object, block_mph: object
) -> None:
    """Finding 16: ``turn_speed = "3.2 km/h"`` was compared as 3.2 mph."""
    from retrotread.program.loader import ProgramError, parse_program

    text = (
        f'name = "t"\ndescription = "d"\n[defaults]\nturn_speed = "{turn_kmh} km/h"\n'
        '[[blocks]]\nkind = "warm-up"\nduration = "30s"\nspeed = 2.5\n'
        f'[[blocks]]\nkind = "turn-around"\nspeed = {block_mph}\n'
        '[[blocks]]\nkind = "retro"\nduration = "30s"\nspeed = 2.8\n'
    )
    allowed = mph(str(block_mph)) <= kmh(str(turn_kmh)).to(Unit.MPH)
    try:
        program = parse_program(text, "t.toml")
    except ProgramError as err:
        assert not allowed, err
        assert "above the turn speed" in str(err)
    else:
        assert allowed
        turn = program.steps[1]
        assert turn.band.high == kmh(str(turn_kmh)).to(Unit.MPH)
