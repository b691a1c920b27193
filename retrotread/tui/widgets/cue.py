"""The handrail cue as a coloured banner, with the block's own cue text under it."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from retrotread.program.model import BlockKind, Handrail, Step

HANDRAIL_CLASSES = {
    Handrail.BOTH_HANDS: "-both-hands",
    Handrail.LIGHT_TOUCH: "-light-touch",
    Handrail.HANDS_FREE: "-hands-free",
}


def cue_headline(step: Step) -> str:
    if step.kind is BlockKind.TURN_AROUND:
        return f"HOLD BOTH HANDRAILS · TURN TO FACE THE {step.facing.value.upper()}"
    return step.block.handrail.cue.upper()


def cue_detail(step: Step) -> str:
    text = step.block.cue
    return text[:1].upper() + text[1:] if text else ""


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
