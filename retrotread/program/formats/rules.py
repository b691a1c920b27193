"""``--retro`` rules: which imported steps become backward blocks.

Other apps have no idea of walking backward, so every imported step stays forward unless a rule
says otherwise. A rule names a range of durations and a range of speeds; a forward or recovery
step whose duration *and* speed both fall inside (ends included) becomes a retro block (or a
retro-run block). Warm-up and cool-down steps are never mapped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from retrotread.program.formats.source import ImportedStep, pace_to_speed, parse_pace, round_speed
from retrotread.program.model import BlockKind
from retrotread.units import Quantity, Unit, exact

GRAMMAR = """\
--retro RULE, repeatable (or several RULEs separated by commas): a forward or recovery step
whose duration and speed both fall inside becomes a retro block (warm-ups, cool-downs never)
  RULE      [KIND:]DURATIONS@SPEEDS
  KIND      retro (the default) or retro-run
  DURATIONS 30s | 15-120s | 15s-2m | 1m-1m30s | *      (s, m, h; both ends included)
  SPEEDS    2.8mph | 2.6-3.2mph | 4.2-5.1km/h | 20:00-18:45/mi | *
examples: --retro "15-120s@2.6-3.2mph"   --retro "retro-run:30s-1m@3.5-4.5mph\""""

_TIME = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_BARE = re.compile(r"^\d+$")
_SPEED_RANGE = re.compile(
    r"^(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?(mph|km/h|kmh|kph)$", re.IGNORECASE
)
_PACE_RANGE = re.compile(r"^(\d{1,3}:[0-5]\d)(?:-(\d{1,3}:[0-5]\d))?/(mi|km)$", re.IGNORECASE)


class RuleError(ValueError):
    """A rule that does not follow the grammar; the message repeats the grammar."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"--retro {text!r}: {reason}\n{GRAMMAR}")


@dataclass(frozen=True)
class RetroRule:
    text: str
    kind: BlockKind
    shortest_s: int | None  # None: any duration
    longest_s: int | None
    slowest: Quantity | None  # in mph; None: any speed
    fastest: Quantity | None

    def matches(self, step: ImportedStep) -> bool:
        if step.fixed or step.kind not in (BlockKind.FORWARD, BlockKind.RECOVERY):
            return False
        if (
            self.shortest_s is not None
            and self.longest_s is not None
            and not self.shortest_s <= step.duration_s <= self.longest_s
        ):
            return False
        if self.slowest is not None and self.fastest is not None:
            if step.speed is None:
                return False
            speed = step.speed.to(Unit.MPH)
            if not self.slowest <= speed <= self.fastest:
                return False
        return True


def _seconds(text: str, unit: str | None, rule: str) -> int:
    if _BARE.match(text):
        if unit is None:
            raise RuleError(rule, f"duration {text!r} needs a unit (s, m or h)")
        text += unit
    match = _TIME.match(text)
    if not text or not match or not any(match.groups()):
        raise RuleError(rule, f"duration {text!r} is not like 30s, 2m or 1m30s")
    h, m, s = (int(g) if g else 0 for g in match.groups())
    return h * 3600 + m * 60 + s


def _durations(text: str, rule: str) -> tuple[int | None, int | None]:
    if text == "*":
        return None, None
    low, _, high = text.partition("-")
    if not high:
        single = _seconds(low, None, rule)
        return single, single
    longest = _seconds(high, None, rule)
    unit_match = re.search(r"[hms]$", high)
    shortest = _seconds(low, unit_match.group(0) if unit_match else None, rule)
    if shortest > longest:
        raise RuleError(rule, f"durations go from short to long, got {text!r}")
    return shortest, longest


def _speeds(text: str, rule: str) -> tuple[Quantity | None, Quantity | None]:
    if text == "*":
        return None, None
    if match := _SPEED_RANGE.match(text):
        unit = Unit.MPH if match.group(3).lower() == "mph" else Unit.KMH
        low = round_speed(exact(match.group(1)), unit).to(Unit.MPH)
        high = round_speed(exact(match.group(2) or match.group(1)), unit).to(Unit.MPH)
    elif match := _PACE_RANGE.match(text):
        distance = match.group(3).lower()
        ends = [parse_pace(p)[0] for p in (match.group(1), match.group(2) or match.group(1))]
        low, high = sorted(pace_to_speed(Fraction(s), distance).to(Unit.MPH) for s in ends)
    else:
        raise RuleError(rule, f"speeds {text!r} are not like 2.6-3.2mph or 20:00-18:45/mi")
    if low > high:
        raise RuleError(rule, f"speeds go from slow to fast, got {text!r}")
    return low, high


def parse_rule(text: str) -> RetroRule:
    """One rule, e.g. ``15-120s@2.6-3.2mph`` or ``retro-run:30s-1m@3.5-4.5mph``."""
    rule = text.strip()
    body = rule.replace(" ", "")
    kind = BlockKind.RETRO
    before_at = body.partition("@")[0]
    if ":" in before_at:  # a kind; paces after the @ have colons of their own
        head, _, body = body.partition(":")
        if head.lower() not in ("retro", "retro-run"):
            raise RuleError(rule, f"kind {head!r} is not retro or retro-run")
        kind = BlockKind(head.lower())
    durations, at, speeds = body.partition("@")
    if not at or not durations or not speeds:
        raise RuleError(rule, "a rule is DURATIONS@SPEEDS")
    shortest, longest = _durations(durations.lower(), rule)
    slowest, fastest = _speeds(speeds, rule)
    return RetroRule(rule, kind, shortest, longest, slowest, fastest)


def parse_rules(texts: list[str] | tuple[str, ...]) -> tuple[RetroRule, ...]:
    rules: list[RetroRule] = []
    for text in texts:
        for part in text.split(","):
            if part.strip():
                rules.append(parse_rule(part))
    return tuple(rules)


def apply_rules(step: ImportedStep, rules: tuple[RetroRule, ...]) -> None:
    """Turn ``step`` into a retro block if a rule says so (the first matching rule wins)."""
    for rule in rules:
        if rule.matches(step):
            step.kind = rule.kind
            return
