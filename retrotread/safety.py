"""The safety governor: the one gate every speed and incline command passes.

Whoever asks — the scheduler at a block boundary, the operator nudging speed, a driver
re-sending after reconnect — the governor turns the request into a value the treadmill may
receive, or refuses. The allowed speed for a step is the intersection of

* the step's band (retro 2.6–3.2 mph unless the program widens it; a turn-around is capped at
  the turn speed; walking blocks their walking band),
* the profile's own cap (``speed.max_mph``),
* what the connected machine accepts (its range),

quantized to the machine's increment *inside* that intersection, so no rounding can push a
value out. An empty intersection is a :class:`~retrotread.errors.SafetyError`: nothing is sent.

A client's own limits (:class:`ClientCaps`, set by their clinician) narrow it further: a top
speed for every block, a floor for backward blocks, an incline ceiling; and :meth:`Governor.check`
refuses, before the belt moves, a program whose blocks ask for more than them (a faster or
steeper block, a longer stretch backward without a turn-around, less handrail support, a
retro-run the client may not do yet).

A change larger than the profile's ``max_change_mph`` is *ramped*: :meth:`Governor.ramp` gives
the next value to send, never more than that far from the last one, and always between the
last value and the target (so a ramp up toward a retro block may pass below the retro band,
but never above it, and never above the cap).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from retrotread.drivers.base import Capabilities
from retrotread.errors import SafetyError
from retrotread.profiles import Profile
from retrotread.program.model import Band, BlockKind, Handrail, Step
from retrotread.units import Increment, OutOfBand, Quantity, Unit, format_number, quantize


@dataclass(frozen=True)
class Allowed:
    """The closed range a command may take, in the machine's unit, and its increment."""

    low: Quantity
    high: Quantity
    increment: Increment


#: handrail support, most first: a client's limit allows its own level and the ones before it
HANDRAIL_SUPPORT = (Handrail.BOTH_HANDS, Handrail.LIGHT_TOUCH, Handrail.HANDS_FREE)


@dataclass(frozen=True)
class ClientCaps:
    """A clinician's limits for one client, on top of the program and the profile."""

    who: str
    max_speed: Quantity | None = None  # every block
    backward_min: Quantity | None = None  # backward blocks
    max_incline: Quantity | None = None
    longest_backward_s: int | None = None  # without a turn-around
    handrail: Handrail | None = None  # the least support allowed
    retro_run: bool = True

    def problems(self, steps: Sequence[Step]) -> list[str]:
        """What in ``steps`` asks for more than these limits, besides speed and incline."""
        found: list[str] = []
        limit = self.longest_backward_s
        stretch, start = 0, ""
        for step in [*steps, None]:
            if step is not None and step.kind.is_retro:
                start = start or step.title
                stretch += step.duration_s
                continue
            if limit is not None and stretch > limit:
                found.append(
                    f"from block '{start}': {stretch} s backward without a turn-around, longer "
                    f"than {self.who}'s limit of {limit} s"
                )
            stretch, start = 0, ""
        for step in steps:
            handrail = step.block.handrail
            allowed = self.handrail
            if (
                step.kind.is_retro
                and allowed is not None
                and HANDRAIL_SUPPORT.index(handrail) > HANDRAIL_SUPPORT.index(allowed)
            ):
                found.append(
                    f"block '{step.title}': {handrail.value}, less support than {self.who}'s "
                    f"limit ({allowed.value})"
                )
            if step.kind is BlockKind.RETRO_RUN and not self.retro_run:
                found.append(f"block '{step.title}': retro-running is not allowed for {self.who}")
        return found


def _show(q: Quantity) -> str:
    return f"{format_number(q.mph if q.unit is not Unit.PERCENT else q.value)} " + (
        "mph" if q.unit is not Unit.PERCENT else "%"
    )


class Governor:
    def __init__(
        self, profile: Profile, capabilities: Capabilities, caps: ClientCaps | None = None
    ) -> None:
        self.profile = profile
        self.capabilities = capabilities
        self.caps = caps

    def speed_range(self, band: Band, *, backward: bool = False) -> Allowed:
        """Where a speed for a step with ``band`` may lie (before quantization)."""
        machine = self.capabilities.speed
        low = max(band.low.to(Unit.MPH), machine.low.to(Unit.MPH))
        high = min(band.high.to(Unit.MPH), machine.high.to(Unit.MPH), self.profile.speed.max_mph)
        if backward:
            high = min(high, self.profile.speed.max_backward_mph)
        caps = self.caps
        if caps is not None and caps.max_speed is not None:
            high = min(high, caps.max_speed.to(Unit.MPH))
        if caps is not None and backward and caps.backward_min is not None:
            low = max(low, caps.backward_min.to(Unit.MPH))
        return Allowed(low, high, machine.increment)

    def step_range(self, step: Step) -> Allowed:
        return self.speed_range(step.band, backward=step.kind.is_retro)

    def check(self, steps: Sequence[Step]) -> list[str]:
        """Every block whose speed or incline this machine could only play by changing it
        beyond quantization (the cap, the backward ceiling, the machine's range): each is a
        reason to refuse the program before the belt moves. Empty when it can play as written.
        """
        problems: list[str] = []
        if self.caps is not None:
            problems += self.caps.problems(steps)
        for step in steps:
            block = step.block
            if block.speed is not None:
                problems += self._speed_problem(step, block.speed)
            try:
                governed = self.incline(block.incline)
            except SafetyError as err:
                problems.append(f"block '{step.title}': {err}")
                continue
            increment = self.incline_range().increment
            if abs(governed.value - block.incline.value) >= increment.size:
                machine = self.capabilities.incline
                top = self.caps.max_incline if self.caps else None
                if top is not None and block.incline > top:
                    problems.append(
                        f"block '{step.title}': incline {_show(block.incline)} is above "
                        f"{self.caps.who if self.caps else ''}'s limit of {_show(top)}"
                    )
                    continue
                problems.append(
                    f"block '{step.title}': incline {_show(block.incline)} is outside this "
                    f"machine's {_show(machine.low)}–{_show(machine.high)}"
                )
        return problems

    def _speed_problem(self, step: Step, requested: Quantity) -> list[str]:
        allowed = self.step_range(step)
        wanted = requested.to(Unit.MPH)
        try:
            governed = self.speed(step, requested).to(Unit.MPH)
        except SafetyError as err:
            return [str(err)]
        slack = Quantity(allowed.increment.size, allowed.increment.unit).to(Unit.MPH).value
        if abs(governed.value - wanted.value) < slack:
            return []  # quantization only
        speed = self.profile.speed
        limits = [
            (speed.max_mph, f"this profile's cap {_show(speed.max_mph)}"),
            (self.capabilities.speed.high, "this machine's top speed"),
            (step.band.high, f"the block's band {step.band}"),
        ]
        if step.kind.is_retro:
            limits.insert(0, (speed.max_backward_mph, "the ceiling for walking backward"))
        caps = self.caps
        if caps is not None and caps.max_speed is not None:
            limits.insert(0, (caps.max_speed, f"{caps.who}'s limit"))
        floor = caps.backward_min if caps is not None and step.kind.is_retro else None
        if floor is not None and wanted < floor.to(Unit.MPH):
            return [
                f"block '{step.title}': {_show(wanted)} is below {caps.who if caps else ''}'s "
                f"backward band (from {_show(floor.to(Unit.MPH))}); it would run at "
                f"{_show(governed)}"
            ]
        if wanted > governed:
            limit, what = min(limits, key=lambda pair: pair[0].to(Unit.MPH).value)
            return [
                f"block '{step.title}': {_show(wanted)} is above {what} "
                f"({_show(limit.to(Unit.MPH))}); it would run at {_show(governed)}"
            ]
        return [
            f"block '{step.title}': {_show(wanted)} is below what this machine runs "
            f"({_show(self.capabilities.speed.low.to(Unit.MPH))}); it would run at "
            f"{_show(governed)}"
        ]

    def speed(self, step: Step, requested: Quantity) -> Quantity:
        """The speed to send for ``step`` when ``requested`` is asked for."""
        allowed = self.step_range(step)
        caps = self.caps
        if allowed.low > allowed.high and caps is not None:
            bare = Governor(self.profile, self.capabilities).step_range(step)
            if bare.low <= bare.high:
                raise SafetyError(
                    f"block '{step.title}': its band {step.band} is outside {caps.who}'s "
                    "limits; nothing was sent"
                )
        if allowed.low > allowed.high:
            raise SafetyError(
                f"block '{step.title}': its band {step.band} and this machine's range "
                f"{_show(self.capabilities.speed.low)}–{_show(self.capabilities.speed.high)} "
                f"(cap {_show(self.profile.speed.max_mph)}) do not overlap; nothing was sent"
            )
        try:
            return quantize(requested, allowed.low, allowed.high, allowed.increment)
        except OutOfBand as err:
            raise SafetyError(f"block '{step.title}': {err}; nothing was sent") from err

    def ramp(self, last: Quantity | None, target: Quantity) -> Quantity:
        """The next speed to send on the way from ``last`` to ``target`` (already governed).

        ``last`` is None when the belt stands still: it starts from the machine's minimum.
        """
        machine = self.capabilities.speed
        unit = machine.increment.unit
        limit = self.profile.speed.max_change_mph.to(unit).value
        start = (last or machine.low).to(unit).value
        goal = target.to(unit).value
        if abs(goal - start) <= limit:
            return target
        # The furthest grid point no more than ``limit`` away, on the way to the target (the
        # profile guarantees the limit spans at least one increment).
        size = machine.increment.size
        if goal > start:
            return Quantity(math.floor((start + limit) / size) * size, unit)
        return max(Quantity(math.ceil((start - limit) / size) * size, unit), machine.low.to(unit))

    def incline_range(self) -> Allowed:
        machine = self.capabilities.incline
        step = self.profile.quirks.incline_step
        increment = Increment.of(step, Unit.PERCENT) if step else machine.increment
        high = machine.high
        if self.caps is not None and self.caps.max_incline is not None:
            high = min(high, self.caps.max_incline)
        return Allowed(machine.low, high, increment)

    def incline(self, requested: Quantity) -> Quantity:
        allowed = self.incline_range()
        try:
            return quantize(requested, allowed.low, allowed.high, allowed.increment)
        except OutOfBand as err:
            raise SafetyError(f"incline {_show(requested)}: {err}; nothing was sent") from err
