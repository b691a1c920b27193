"""The program model: blocks, repeat groups, and the flat list of steps the scheduler plays.

A :class:`Program` is what a file says (blocks nested in repeat groups); :meth:`Program.steps`
flattens it into :class:`Step` objects, each with its absolute position, the direction the
walker faces, and the cue to show. Everything here is immutable.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property

from retrotread.units import Quantity, Unit, format_number, mph, percent


class BlockKind(enum.StrEnum):
    WARM_UP = "warm-up"
    RETRO = "retro"
    RETRO_RUN = "retro-run"
    FORWARD = "forward"
    TURN_AROUND = "turn-around"
    RECOVERY = "recovery"
    COOL_DOWN = "cool-down"

    @property
    def is_retro(self) -> bool:
        return self in (BlockKind.RETRO, BlockKind.RETRO_RUN)

    @property
    def label(self) -> str:
        return {BlockKind.TURN_AROUND: "TURN"}.get(self, self.value.upper())


class Handrail(enum.StrEnum):
    BOTH_HANDS = "both-hands"
    LIGHT_TOUCH = "light-touch"
    HANDS_FREE = "hands-free"

    @property
    def cue(self) -> str:
        from retrotread import cues  # the wording lives in one place; imported late (a cycle)

        return cues.handrail(self)


class Facing(enum.StrEnum):
    FRONT = "front"
    REAR = "rear"

    @property
    def turned(self) -> Facing:
        return Facing.REAR if self is Facing.FRONT else Facing.FRONT


class TurnMode(enum.StrEnum):
    """What the belt does while the walker turns around."""

    SLOW = "slow"  # belt drops to the turn speed
    PAUSE = "pause"  # belt pauses, then restarts


MIN_TURN_SECONDS = 5


@dataclass(frozen=True)
class Band:
    """An allowed speed range in mph, both ends included (ends given in km/h are converted,
    so no comparison anywhere can mistake a km/h figure for mph)."""

    low: Quantity
    high: Quantity

    def __post_init__(self) -> None:
        object.__setattr__(self, "low", self.low.to(Unit.MPH))
        object.__setattr__(self, "high", self.high.to(Unit.MPH))

    def __str__(self) -> str:
        return f"{format_number(self.low.value)}–{format_number(self.high.value)} {self.high.unit}"


def band(low: float | str, high: float | str) -> Band:
    return Band(mph(low), mph(high))


@dataclass(frozen=True)
class Defaults:
    """Program-wide settings; each block may override what applies to it."""

    incline: Quantity = field(default_factory=lambda: percent(2))
    retro_band: Band = field(default_factory=lambda: band("2.6", "3.2"))
    retro_run_band: Band = field(default_factory=lambda: band("3.5", "5.0"))
    walk_band: Band = field(default_factory=lambda: band("0.5", "4.5"))
    turn: TurnMode = TurnMode.SLOW
    turn_speed: Quantity = field(default_factory=lambda: mph("1.0"))
    start_facing: Facing = Facing.FRONT

    def band_for(self, kind: BlockKind) -> Band:
        if kind is BlockKind.RETRO:
            return self.retro_band
        if kind is BlockKind.RETRO_RUN:
            return self.retro_run_band
        if kind is BlockKind.TURN_AROUND:
            return Band(mph(0), self.turn_speed)
        return self.walk_band


@dataclass(frozen=True)
class Block:
    kind: BlockKind
    duration_s: int
    speed: Quantity | None  # None: the belt pauses (turn-around in pause mode)
    incline: Quantity
    handrail: Handrail
    name: str = ""
    cue: str = ""
    line: int | None = None

    @property
    def title(self) -> str:
        return self.name or self.kind.value.capitalize()


@dataclass(frozen=True)
class Repeat:
    times: int
    blocks: tuple[Block, ...]
    name: str = ""


@dataclass(frozen=True)
class Step:
    """One block as the scheduler plays it: position, timing, and what to tell the walker."""

    index: int  # 0-based position in the flattened program
    block: Block
    start_s: int  # offset from program start, in seconds
    facing: Facing  # which way the walker faces during this step
    band: Band
    round: tuple[int, int] | None = None  # (n, of) inside a repeat group

    @property
    def kind(self) -> BlockKind:
        return self.block.kind

    @property
    def duration_s(self) -> int:
        return self.block.duration_s

    @property
    def end_s(self) -> int:
        return self.start_s + self.block.duration_s

    @property
    def title(self) -> str:
        if self.round:
            return f"{self.block.title} ({self.round[0]}/{self.round[1]})"
        return self.block.title

    @property
    def cue(self) -> str:
        """The full cue: handrail instruction, then the block's own words (retrotread.cues)."""
        from retrotread import cues

        return cues.display_cue(self)


@dataclass(frozen=True)
class Program:
    name: str
    description: str
    items: tuple[Block | Repeat, ...]
    defaults: Defaults = field(default_factory=Defaults)
    source: str = "<built-in>"

    def blocks(self) -> Iterator[tuple[Block, tuple[int, int] | None]]:
        for item in self.items:
            if isinstance(item, Block):
                yield item, None
            else:
                for n in range(1, item.times + 1):
                    for block in item.blocks:
                        yield block, (n, item.times)

    @cached_property
    def steps(self) -> tuple[Step, ...]:
        steps: list[Step] = []
        offset = 0
        facing = self.defaults.start_facing
        for index, (block, round_) in enumerate(self.blocks()):
            if block.kind is BlockKind.TURN_AROUND:
                facing = facing.turned
            steps.append(
                Step(
                    index=index,
                    block=block,
                    start_s=offset,
                    facing=facing,
                    band=self.defaults.band_for(block.kind),
                    round=round_,
                )
            )
            offset += block.duration_s
        return tuple(steps)

    @property
    def total_s(self) -> int:
        return sum(step.duration_s for step in self.steps)

    @property
    def retro_s(self) -> int:
        return sum(step.duration_s for step in self.steps if step.kind.is_retro)

    @property
    def max_retro_interval_s(self) -> int:
        return max((s.duration_s for s in self.steps if s.kind.is_retro), default=0)


def format_duration(seconds: float | Fraction) -> str:
    """90 -> '1:30', 3725 -> '1:02:05'."""
    total = max(0, round(float(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"
