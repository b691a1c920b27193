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
from retrotread.program.model import Band, Step
from retrotread.units import Increment, OutOfBand, Quantity, Unit, format_number, quantize


@dataclass(frozen=True)
class Allowed:
    """The closed range a command may take, in the machine's unit, and its increment."""

    low: Quantity
    high: Quantity
    increment: Increment


def _show(q: Quantity) -> str:
    return f"{format_number(q.mph if q.unit is not Unit.PERCENT else q.value)} " + (
        "mph" if q.unit is not Unit.PERCENT else "%"
    )


class Governor:
    def __init__(self, profile: Profile, capabilities: Capabilities) -> None:
        self.profile = profile
        self.capabilities = capabilities

    def speed_range(self, band: Band, *, backward: bool = False) -> Allowed:
        """Where a speed for a step with ``band`` may lie (before quantization)."""
        machine = self.capabilities.speed
        low = max(band.low.to(Unit.MPH), machine.low.to(Unit.MPH))
        high = min(band.high.to(Unit.MPH), machine.high.to(Unit.MPH), self.profile.speed.max_mph)
        if backward:
            high = min(high, self.profile.speed.max_backward_mph)
        return Allowed(low, high, machine.increment)

    def step_range(self, step: Step) -> Allowed:
        return self.speed_range(step.band, backward=step.kind.is_retro)

    def check(self, steps: Sequence[Step]) -> list[str]:
        """Every block whose speed or incline this machine could only play by changing it
        beyond quantization (the cap, the backward ceiling, the machine's range): each is a
        reason to refuse the program before the belt moves. Empty when it can play as written.
        """
        problems: list[str] = []
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
        return Allowed(machine.low, machine.high, increment)

    def incline(self, requested: Quantity) -> Quantity:
        allowed = self.incline_range()
        try:
            return quantize(requested, allowed.low, allowed.high, allowed.increment)
        except OutOfBand as err:
            raise SafetyError(f"incline {_show(requested)}: {err}; nothing was sent") from err
