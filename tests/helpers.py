"""Small builders shared by tests."""

from __future__ import annotations

from retrotread.program.model import Block, BlockKind, Defaults, Facing, Handrail, Program
from retrotread.units import mph, percent


def block(kind: BlockKind, seconds: int, speed: str | None = "2.8", name: str = "") -> Block:
    if kind is BlockKind.TURN_AROUND and speed == "2.8":
        speed = "1.0"
    return Block(
        kind=kind,
        duration_s=seconds,
        speed=mph(speed) if speed is not None else None,
        incline=percent(2),
        handrail=Handrail.BOTH_HANDS,
        name=name,
    )


RETRO_SPEEDS = ("2.8", "3.0", "2.6", "3.2")


def retro_program(durations: list[int], name: str = "test") -> Program:
    """Retro blocks of the given durations, each at a different speed (walker faces the rear)."""
    return Program(
        name=name,
        description="",
        items=tuple(
            block(BlockKind.RETRO, d, RETRO_SPEEDS[i % len(RETRO_SPEEDS)], name=f"b{i}")
            for i, d in enumerate(durations)
        ),
        defaults=Defaults(start_facing=Facing.REAR),
    )
