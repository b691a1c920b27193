"""Every word retrotread says to the walker, in one place.

The console shows these cues and the speech queue speaks them, so the walker facing the rear
of the treadmill hears what the operator reads. The phrasing follows the seeds ("hold the
handrails at first", "look over your shoulder now and then", "upright posture with a slight
forward lean", "smooth, controlled steps over speed"); the block's own ``cue`` from the program
file is added after retrotread's words.

Spoken numbers are words ("thirty seconds"), so every engine and language setting reads them
the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from retrotread.vocabulary import FaultKind, StopReason

if TYPE_CHECKING:
    from retrotread.program.model import Facing, Handrail, Step

# -- handrails and turning (shown on the console as well as spoken) --------------------------------

HANDRAIL: dict[str, str] = {
    "both-hands": "hold both handrails",
    "light-touch": "light touch on the handrails",
    "hands-free": "hands free",
}

#: Reminders from the seeds, said on a retro block whose program gives no cue of its own.
RETRO_REMINDER = "upright, slight forward lean; controlled steps"
LOOK_OVER_SHOULDER = "look over your shoulder now and then"

KIND_SPOKEN: dict[str, str] = {
    "warm-up": "warm-up",
    "retro": "retro walk",
    "retro-run": "retro run",
    "forward": "forward walk",
    "turn-around": "turn around",
    "recovery": "recovery",
    "cool-down": "cool-down",
}


def handrail(grip: Handrail | str) -> str:
    return HANDRAIL[str(grip)]


def turn_instruction(facing: Facing | str) -> str:
    """The turn-around: the dangerous moment, so both handrails first, then turn."""
    return f"Hold both handrails, turn to face the {facing}"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def display_cue(step: Step) -> str:
    """The cue the console shows for a block: handrail instruction, then the block's words."""
    if str(step.kind) == "turn-around":
        parts = [turn_instruction(step.facing)]
    else:
        parts = [_sentence(handrail(step.block.handrail))]
    if step.block.cue:
        parts.append(_sentence(step.block.cue))
    return ". ".join(parts)


# -- numbers as words ------------------------------------------------------------------------------

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_words(n: int) -> str:
    """0..999 as English words: 45 -> 'forty-five'."""
    if not 0 <= n <= 999:
        raise ValueError(f"{n} is outside 0..999")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    hundreds, rest = divmod(n, 100)
    return f"{_ONES[hundreds]} hundred" + (f" {number_words(rest)}" if rest else "")


def duration_words(seconds: int) -> str:
    """30 -> 'thirty seconds', 60 -> 'one minute', 90 -> 'one minute thirty'."""
    minutes, secs = divmod(max(0, seconds), 60)
    if not minutes:
        return f"{number_words(secs)} second" + ("" if secs == 1 else "s")
    said = f"{number_words(minutes)} minute" + ("" if minutes == 1 else "s")
    return f"{said} {number_words(secs)}" if secs else said


# -- the program's calls ---------------------------------------------------------------------------


def block_start(step: Step) -> str:
    """Said as a block begins: 'Retro walk, thirty seconds, hold both handrails. ...'."""
    kind = str(step.kind)
    if kind == "turn-around":  # short: a turn is five seconds, and the 3-2-1 follows
        return f"Turn around: hold both handrails, turn to face the {step.facing}."
    what = (
        f"{KIND_SPOKEN[kind]}, {duration_words(step.duration_s)}, {handrail(step.block.handrail)}"
    )
    words = step.block.cue
    if not words and kind in ("retro", "retro-run"):
        words = f"{RETRO_REMINDER}; {LOOK_OVER_SHOULDER}"
    return f"{_sentence(what)}." + (f" {_sentence(words)}." if words else "")


def coming_up(step: Step) -> str:
    """A few seconds before a change: what comes next, and for a turn, what to hold. Short,
    so it is said before the 3-2-1 begins."""
    if str(step.kind) == "turn-around":
        return "Next: turn around, both handrails."
    return f"Next, {KIND_SPOKEN[str(step.kind)]}."


def countdown(count: int) -> str:
    """The 3-2-1 before every change."""
    return _sentence(number_words(count)) + "."


#: Halfway and ten-seconds-left calls are made only on blocks at least this long.
HALFWAY_MIN_S = 60
TEN_LEFT_MIN_S = 45
TEN_LEFT_AT_S = 10


def halfway(step: Step) -> str:
    if step.kind.is_retro:
        return f"Halfway. {_sentence(LOOK_OVER_SHOULDER)}."
    return "Halfway."


TEN_SECONDS_LEFT = "Ten seconds left."


def extended(seconds: int) -> str:
    return f"{_sentence(duration_words(seconds))} more."


PAUSED = "Paused. Hold both handrails."


def resumed(step: Step | None) -> str:
    if step is None:
        return "Resuming."
    if str(step.kind) == "turn-around":
        return f"Resuming. {turn_instruction(step.facing)}."
    return f"Resuming. {_sentence(handrail(step.block.handrail))}."


FINISHED = "Program complete. The belt is stopping. Well done."

_STOP = "Stop. The belt is stopping. Hold both handrails."


def stopped(reason: StopReason) -> str | None:
    """STOP, however it came; None when a fault already said why (it is spoken on its own)."""
    if reason is StopReason.FAULT:
        return None
    if reason is StopReason.SAFETY_KEY:
        return FAULTS[FaultKind.SAFETY_KEY]
    if reason is StopReason.CONSOLE:
        return FAULTS[FaultKind.STOPPED_AT_CONSOLE]
    return _STOP


# -- faults: everything that stops or holds the belt -----------------------------------------------

_HOLD_ON = "Stopping the belt. Hold both handrails."
_USE_THE_MACHINE = "Use the treadmill's stop button or pull the safety key."

#: The spoken words for every fault the session raises (a test keeps it complete).
FAULTS: dict[FaultKind, str] = {
    FaultKind.SAFETY_KEY: "Safety key pulled. The belt has stopped.",
    FaultKind.STOPPED_AT_CONSOLE: "Stopped at the treadmill console.",
    FaultKind.PAUSED_AT_CONSOLE: "Paused at the treadmill console. Hold both handrails.",
    FaultKind.LINK_LOST: f"Link to the treadmill lost. {_HOLD_ON}",
    FaultKind.TELEMETRY_STALE: f"The treadmill stopped reporting. {_HOLD_ON}",
    FaultKind.COMMAND_TIMEOUT: f"The treadmill did not answer. {_HOLD_ON}",
    FaultKind.START_REJECTED: "The treadmill refused to start. Program paused.",
    FaultKind.STOP_REJECTED: f"The treadmill refused to stop. {_USE_THE_MACHINE}",
    FaultKind.STOP_NOT_CONFIRMED: f"Stop not confirmed. {_USE_THE_MACHINE}",
    FaultKind.CONTROL_LOST: "The treadmill console took over. Program paused. Hold both handrails.",
    FaultKind.OVERSPEED: f"Belt too fast. {_HOLD_ON}",
    FaultKind.BELT_STOPPED: "The belt stopped. Program paused. Hold both handrails.",
    FaultKind.HOLD_TIMEOUT: "Held too long. The program has ended.",
    FaultKind.CONNECT: "Could not connect to the treadmill.",
    FaultKind.DIFFERENT_MACHINE: (
        f"A different treadmill answered. {_HOLD_ON} The session has ended."
    ),
    FaultKind.DEVICE: f"The treadmill reported a fault. {_HOLD_ON}",
    FaultKind.SAFETY: "The program cannot run safely on this treadmill. Nothing was started.",
    FaultKind.INTERNAL: f"Internal error. {_HOLD_ON}",
}

BELT_NOT_CONFIRMED = f"The belt did not confirm it stopped. {_USE_THE_MACHINE}"


def fault(kind: FaultKind) -> str:
    """The spoken words for a fault of ``kind`` (the operator reads the details on screen)."""
    return FAULTS[kind]
