"""The handrail cue as a coloured banner, with the block's own cue text under it.

The words are :mod:`retrotread.cues`' (what the walker hears is what the operator reads).
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from retrotread import cues
from retrotread.program.model import BlockKind, Handrail, Step

HANDRAIL_CLASSES = {
    Handrail.BOTH_HANDS: "-both-hands",
    Handrail.LIGHT_TOUCH: "-light-touch",
    Handrail.HANDS_FREE: "-hands-free",
}


def cue_headline(step: Step) -> str:
    """The handrail instruction (on a turn-around: both handrails, then turn), in capitals."""
    if step.kind is BlockKind.TURN_AROUND:
        return cues.turn_instruction(step.facing).upper()
    return cues.handrail(step.block.handrail).upper()


def cue_detail(step: Step) -> str:
    """The block's own cue; on a retro block without one, the seeds' reminder (as spoken)."""
    text = step.block.cue or (cues.RETRO_REMINDER if step.kind.is_retro else "")
    return text[:1].upper() + text[1:]


class CueBanner(Static):
    """What the walker must do with their hands now, and how to move."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.headline = ""
        self.detail = ""

    def show(self, step: Step) -> None:
        handrail = Handrail.BOTH_HANDS if step.kind is BlockKind.TURN_AROUND else None
        handrail = handrail or step.block.handrail
        for name in HANDRAIL_CLASSES.values():
            self.remove_class(name)
        self.add_class(HANDRAIL_CLASSES[handrail])
        self.set_class(step.kind is BlockKind.TURN_AROUND, "-turn")
        self.headline = cue_headline(step)
        self.detail = cue_detail(step)
        text = Text(self.headline, style="bold", justify="center")
        if self.detail:
            text.append("\n")
            text.append(self.detail, style="not bold")
        self.update(text)
