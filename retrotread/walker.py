"""What the walker sees, whichever screen shows it: the console's walker view
(:mod:`retrotread.tui.screens.walker`) and the served walker page (:mod:`retrotread.web.view`,
``web/static/walker.js``) take their hint words and handrail colours from here.

The colours are the README's: red hold both handrails, yellow light touch, green hands free,
bright yellow turn around. The console draws them with ANSI colour names (the Linux console has
16 colours: ``retrotread/tui/app.tcss``), the pages with the CSS colours
(``retrotread/web/static/style.css``); the tests hold both stylesheets to this table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from retrotread.program.model import BlockKind, Handrail, Step


class WalkerPhase(enum.StrEnum):
    CONNECTING = "connecting"
    READY = "ready"  # connected, program checked: the belt starts on the operator's go
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"  # the program ended; the belt is being stopped
    ENDED = "ended"  # the session is over
    FAILED = "failed"  # the device could not be reached; nothing moved


#: The line above the countdown, per phase (none while the program runs).
HINTS: dict[WalkerPhase, str] = {
    WalkerPhase.CONNECTING: "connecting…",
    WalkerPhase.READY: "READY · the belt starts on the operator's go",
    WalkerPhase.RUNNING: "",
    WalkerPhase.PAUSED: "PAUSED · hold both handrails",
    WalkerPhase.STOPPING: "STOPPING · hold both handrails",
    WalkerPhase.ENDED: "Session over",
    WalkerPhase.FAILED: "The treadmill could not be reached",
}


@dataclass(frozen=True)
class CueColour:
    """One colour, as people say it, as the console draws it and as the pages draw it."""

    name: str
    ansi: str  # Textual's ANSI colour name
    css: str  # the pages' colour (style.css)


#: The cue's colour for each handrail level, and for a turn-around (always both hands).
CUE_COLOURS: dict[str, CueColour] = {
    Handrail.BOTH_HANDS.value: CueColour("red", "ansi_red", "#c62828"),
    Handrail.LIGHT_TOUCH.value: CueColour("yellow", "ansi_yellow", "#d4a017"),
    Handrail.HANDS_FREE.value: CueColour("green", "ansi_green", "#2e7d32"),
    BlockKind.TURN_AROUND.value: CueColour("bright yellow", "ansi_bright_yellow", "#ffd54f"),
}


#: The countdown's digits during the 3-2-1 before a change.
COUNTING = CueColour("bright red", "ansi_bright_red", "#ff5252")


def grip_for(step: Step) -> Handrail:
    """The grip the walker must hold: a turn-around is always both hands."""
    return Handrail.BOTH_HANDS if step.kind is BlockKind.TURN_AROUND else step.block.handrail


def cue_colour(step: Step) -> CueColour:
    """The cue's colour for ``step``: the turn-around's own, else its handrail level's."""
    if step.kind is BlockKind.TURN_AROUND:
        return CUE_COLOURS[BlockKind.TURN_AROUND.value]
    return CUE_COLOURS[step.block.handrail.value]
