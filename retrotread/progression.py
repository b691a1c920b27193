"""The retro-walk progression: which session comes next for a client, and why.

The rules come from the seed article "Retro Walk" (Michol Dalcourt); its sentences are quoted
below exactly as written, and every reason this module gives names the rule it applied.

    "Start with a 15-30 second walk and monitor them closely – they might even get a little
    dizzy and lose their balance."

    "After a period of time doing 15-30 second intervals (I would recommended at least six
    sessions), you can increase the time depending on the success of your client. Remember, if
    they are having difficulty, regress the duration. Once they are comfortable with their
    movement, gradually increase the duration (over time) to two minutes."

    "If they are experiencing pain and/or if they are unsuccessful at the exercise (lose their
    balance, cannot move properly), these are a trainer’s default buttons – regress or avoid the
    exercise. Once they are successful at a two minute retro-walk, then you can begin a
    retro-run strategy following the same parameters as listed about for the walk."

The handrail cues come from the second seed, "Retrowalking for Runners": on a treadmill
"extreme caution is advised, often holding onto the handrails initially".

The rules, as this module applies them, one session at a time:

1. Intervals climb a ladder: 15 and 30 s (the seed's starting band), then 45, 60, 75, 90, 105
   and 120 s. A client starts at 15 s. Moving up takes three successful sessions at each rung
   of the starting band (so at least six at 15–30 s), two at each longer rung, and one
   successful two-minute walk. The starting band is one range in the seed: inside it, any
   successful session of 15–30 s intervals counts (six at 20 s move a client past 30 s).
2. A session is *successful* when the program ran to its end, the operator recorded
   "completed", and its longest backward interval was at least the current rung (or, in the
   starting band, anywhere in 15–30 s). A session without a recorded outcome does not count:
   "completed without pain" has to be said. A longer session than the rung counts once at the
   rung: the duration grows one step at a time ("gradually increase the duration").
3. Pain, lost balance or "cannot move properly" step back one rung, and the handrails one
   level with it. At 15 s there is nowhere lower: the next session stays at 15 s, both hands,
   and the reason repeats the seed's "regress or avoid the exercise".
4. One dizzy session does not count as a success and does not step back: the seed expects a
   little dizziness at first and asks to monitor closely; the next session repeats the rung.
   Dizziness again at the next session is "having difficulty": it steps back like pain.
5. After a successful two-minute retro walk, retro-running is offered on the same ladder from
   15 s. A step back from the first retro-run rung returns to the two-minute walk. No
   continuous backward stretch of a retro-run session is longer than the two-minute walk the
   client has shown: each run interval is its own stretch, between turn-arounds.
6. Handrails follow the rung: both hands up to 45 s, light touch up to 90 s, hands free at 105
   and 120 s. A step back lowers the handrail one level (never above the lower rung's own); a
   step up restores the rung's level.
7. retrotread's own rule, not the seeds': a break of four weeks or more counts as difficulty,
   so the next session steps back one rung and the count starts again (at 15 s it stays there).
8. How the walk felt, when recorded (retrotread's reading of "experiencing pain" and "having
   difficulty"): pain (0–10) up by 2 or more since the last session with a pain score holds
   the rung (the session does not count); up by 4 or more, or 7 and above, steps back. One
   balance loss holds; two or more step back. Exertion of 7 or more on the Borg CR10 scale
   ("very hard") holds.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

from retrotread.program import BlockKind, Handrail, Program, parse_program
from retrotread.units import format_number

# -- the seeds' words ----------------------------------------------------------------------------

SEED_START = (
    "Start with a 15-30 second walk and monitor them closely – they might even get a little "
    "dizzy and lose their balance."
)
SEED_SIX_SESSIONS = (
    "After a period of time doing 15-30 second intervals (I would recommended at least six "
    "sessions), you can increase the time depending on the success of your client."
)
SEED_REGRESS = "Remember, if they are having difficulty, regress the duration."
SEED_TWO_MINUTES = (
    "Once they are comfortable with their movement, gradually increase the duration (over "
    "time) to two minutes."
)
SEED_PAIN = (
    "If they are experiencing pain and/or if they are unsuccessful at the exercise (lose their "
    "balance, cannot move properly), these are a trainer’s default buttons – regress or avoid "
    "the exercise."
)
SEED_RETRO_RUN = (
    "Once they are successful at a two minute retro-walk, then you can begin a retro-run "
    "strategy following the same parameters as listed about for the walk."
)
SEED_HANDRAILS = (
    "A treadmill can also be used, but extreme caution is advised, often holding onto the "
    "handrails initially."
)

#: retrotread's own rule (rule 7): a break this long counts as difficulty.
BREAK_DAYS = 28


class OperatorOutcome(enum.StrEnum):
    """How the session went, as the operator saw it (recorded after the session)."""

    COMPLETED = "completed"
    PAIN = "pain"
    LOST_BALANCE = "lost balance"
    DIZZINESS = "dizziness"
    CANNOT_MOVE = "cannot move properly"

    @property
    def steps_back(self) -> bool:
        """The seed's "default buttons": pain, or unsuccessful at the exercise."""
        return self in (
            OperatorOutcome.PAIN,
            OperatorOutcome.LOST_BALANCE,
            OperatorOutcome.CANNOT_MOVE,
        )


class Phase(enum.StrEnum):
    WALK = "retro-walk"
    RUN = "retro-run"

    @property
    def noun(self) -> str:
        return "retro walk" if self is Phase.WALK else "retro run"


@dataclass(frozen=True)
class Rung:
    seconds: int
    handrail: Handrail
    sessions_needed: int

    @property
    def in_start_band(self) -> bool:
        return self.seconds <= START_BAND[1]


#: the seed's "15-30 second intervals": one range, where any interval counts toward the six
START_BAND = (15, 30)

LADDER: tuple[Rung, ...] = (
    Rung(15, Handrail.BOTH_HANDS, 3),
    Rung(30, Handrail.BOTH_HANDS, 3),
    Rung(45, Handrail.BOTH_HANDS, 2),
    Rung(60, Handrail.LIGHT_TOUCH, 2),
    Rung(75, Handrail.LIGHT_TOUCH, 2),
    Rung(90, Handrail.LIGHT_TOUCH, 2),
    Rung(105, Handrail.HANDS_FREE, 2),
    Rung(120, Handrail.HANDS_FREE, 1),
)
TOP = len(LADDER) - 1
_HANDRAILS = (Handrail.BOTH_HANDS, Handrail.LIGHT_TOUCH, Handrail.HANDS_FREE)


def _lower(handrail: Handrail) -> Handrail:
    return _HANDRAILS[max(0, _HANDRAILS.index(handrail) - 1)]


def _at_most(handrail: Handrail, limit: Handrail) -> Handrail:
    return min(handrail, limit, key=_HANDRAILS.index)


@dataclass(frozen=True)
class Stage:
    """Where a client stands: the phase, the rung, the handrail and the count at this rung."""

    phase: Phase = Phase.WALK
    rung: int = 0
    handrail: Handrail = Handrail.BOTH_HANDS
    successes: int = 0
    dizzy: int = 0  # dizzy sessions in a row at this point
    last_pain: int | None = None  # the last pain score recorded

    @property
    def seconds(self) -> int:
        return LADDER[self.rung].seconds

    @property
    def needed(self) -> int:
        return LADDER[self.rung].sessions_needed

    def describe(self) -> str:
        return f"{self.phase.noun} {self.seconds} s, {self.handrail.cue}"


@dataclass(frozen=True)
class SessionEvidence:
    """What progression needs to know about one past session."""

    day: date
    phase: Phase | None  # None: the program had no backward intervals
    interval_s: int  # the longest backward interval of that phase
    finished: bool  # the program ran to its end
    outcome: OperatorOutcome | None  # None: no outcome recorded
    session_id: int | None = None
    pain: int | None = None  # 0–10, how the walk felt (None: not asked)
    exertion: float | None = None  # Borg CR10
    balance_losses: int | None = None


def retro_content(program: Program) -> tuple[Phase | None, int]:
    """The phase a program trains and its longest backward interval in that phase."""
    runs = [s.duration_s for s in program.steps if s.kind is BlockKind.RETRO_RUN]
    if runs:
        return Phase.RUN, max(runs)
    walks = [s.duration_s for s in program.steps if s.kind is BlockKind.RETRO]
    if walks:
        return Phase.WALK, max(walks)
    return None, 0


# -- the rules -------------------------------------------------------------------------------------


def _step_back(stage: Stage) -> Stage:
    if stage.rung > 0:
        rung = stage.rung - 1
        return Stage(stage.phase, rung, _at_most(_lower(stage.handrail), LADDER[rung].handrail))
    if stage.phase is Phase.RUN:  # below the first retro-run rung: back to the two-minute walk
        return Stage(Phase.WALK, TOP, _at_most(_lower(stage.handrail), LADDER[TOP].handrail))
    return Stage(Phase.WALK, 0, Handrail.BOTH_HANDS)


def _step_up(stage: Stage) -> Stage:
    if stage.rung < TOP:
        rung = stage.rung + 1
        return Stage(stage.phase, rung, LADDER[rung].handrail)
    if stage.phase is Phase.WALK:
        return Stage(Phase.RUN, 0, LADDER[0].handrail)
    return replace(stage, successes=0)  # the top of the protocol: keep it there


def _where(stage: Stage) -> str:
    """'30 s' for the walk, '30 s retro-run' for the run."""
    return f"{stage.seconds} s" if stage.phase is Phase.WALK else f"{stage.seconds} s retro-run"


def _change(before: Stage, after: Stage) -> str:
    """'45 s' / '30 s, hold both handrails' / '120 s retro walk, light touch ...'."""
    what = f"{after.seconds} s"
    if after.phase is not before.phase:
        what += f" {after.phase.noun}"
    if after.handrail is not before.handrail:
        what += f", {after.handrail.cue}"
    return what


def _counts(stage: Stage, evidence: SessionEvidence) -> bool:
    """Whether a finished, completed session is long enough to count at ``stage``."""
    if evidence.phase is not stage.phase:
        return False
    if evidence.interval_s >= stage.seconds:
        return True
    low, high = START_BAND
    return LADDER[stage.rung].in_start_band and low <= evidence.interval_s <= high


#: rule 8's thresholds
PAIN_RISE_HOLDS = 2
PAIN_RISE_STEPS_BACK = 4
PAIN_STEPS_BACK = 7
BALANCE_LOSSES_STEP_BACK = 2
EXERTION_HOLDS = 7.0


def _felt(stage: Stage, evidence: SessionEvidence) -> tuple[bool, str] | None:
    """Rule 8: (steps back?, why) when how the walk felt holds or regresses; else None."""
    pain, before = evidence.pain, stage.last_pain
    rise = pain - before if pain is not None and before is not None else None
    if pain is not None and pain >= PAIN_STEPS_BACK:
        return True, f"pain {pain}/10 recorded"
    if rise is not None and rise >= PAIN_RISE_STEPS_BACK:
        return True, f"pain up from {before} to {pain}/10"
    losses = evidence.balance_losses or 0
    if losses >= BALANCE_LOSSES_STEP_BACK:
        return True, f"{losses} balance losses recorded"
    if rise is not None and rise >= PAIN_RISE_HOLDS:
        return False, f"pain up from {before} to {pain}/10 (the seed: “experiencing pain”)"
    if losses:
        return False, "a balance loss recorded (the seed: “lose their balance”)"
    if evidence.exertion is not None and evidence.exertion >= EXERTION_HOLDS:
        return False, (
            f"exertion {format_number(evidence.exertion)} of 10 (Borg CR10: very hard) "
            "(the seed: “having difficulty”)"
        )
    return None


def _at_the_bottom(stage: Stage) -> bool:
    return stage.phase is Phase.WALK and stage.rung == 0


def _regress(
    stage: Stage, what: str, evidence: SessionEvidence, dizzy: int = 0
) -> tuple[Stage, str]:
    """Step back one rung for ``what`` (pain, lost balance, repeated dizziness...)."""
    after = replace(_step_back(stage), dizzy=dizzy)
    if _at_the_bottom(stage):
        return after, (
            f"{what} at {evidence.interval_s} s, already at the shortest interval: "
            f"stay at {after.seconds} s, {after.handrail.cue}. The seed: “{SEED_PAIN}” — "
            "consider avoiding retro walking until it is cleared"
        )
    return after, (
        f"{what} at {evidence.interval_s} s: step back to "
        f"{_change(stage, after)} (the seed: “regress or avoid the exercise”)"
    )


def advance(stage: Stage, evidence: SessionEvidence) -> tuple[Stage, str]:
    """Apply one past session to ``stage``; returns the new stage and why."""
    outcome = evidence.outcome
    if evidence.phase is None:
        return stage, "no backward intervals in that session: it does not count"
    if outcome is not None and outcome.steps_back:
        return _regress(stage, f"{outcome.value} reported", evidence)
    felt = _felt(stage, evidence)
    if felt is not None and felt[0]:
        return _regress(stage, felt[1], evidence)
    if outcome is OperatorOutcome.DIZZINESS:
        dizzy = stage.dizzy + 1
        if dizzy >= 2:
            stepped, why = _regress(
                stage, f"dizziness again ({dizzy} sessions in a row)", evidence, dizzy
            )
            return stepped, (
                f"{why}; repeated dizziness is having difficulty (the seed: “{SEED_REGRESS}”)"
            )
        return replace(stage, dizzy=dizzy), (
            f"dizziness reported: stay at {_where(stage)} and monitor closely "
            "(the seed: “they might even get a little dizzy”); the session does not count; "
            "dizziness again next time steps back"
        )
    if outcome is not None:
        stage = replace(stage, dizzy=0)  # the operator saw no dizziness this time
    if not evidence.finished:
        return stage, f"stopped before the end: stay at {_where(stage)}; it does not count"
    if outcome is None:
        return stage, (
            f"no outcome recorded: stay at {_where(stage)}; record how it went for it to count"
        )
    if felt is not None:
        return stage, f"{felt[1]}: stay at {_where(stage)}; the session does not count"
    if not _counts(stage, evidence):
        return stage, (
            f"a {evidence.interval_s} s {evidence.phase.noun} does not count toward {_where(stage)}"
        )
    done = replace(stage, successes=stage.successes + 1)
    counted = (
        f"{done.successes} of {done.needed} sessions at {_where(stage)} completed without pain"
    )
    if evidence.interval_s != stage.seconds:
        why = (
            "the duration grows one step at a time (the seed: “gradually increase the duration”)"
            if evidence.interval_s > stage.seconds
            else "the seed's 15–30 s intervals are one range"
        )
        counted = (
            f"a {evidence.interval_s} s {evidence.phase.noun} completed without pain: "
            f"{done.successes} of {done.needed} sessions at {_where(stage)} ({why})"
        )
    if done.successes < done.needed:
        return done, f"{counted}: stay at {stage.seconds} s"
    after = _step_up(done)
    if after.phase is not stage.phase:
        return after, (
            f"a successful two-minute {stage.phase.noun}: {after.phase.noun} is offered on the "
            f"same rules, starting at {after.seconds} s, {after.handrail.cue} (the seed: "
            "“then you can begin a retro-run strategy”)"
        )
    if after == replace(done, successes=0):
        return after, f"{counted}: the top of the protocol; keep {_where(after)}"
    band = ""
    if LADDER[stage.rung].in_start_band and not LADDER[after.rung].in_start_band:
        band = " (the seed: “at least six sessions” of 15–30 s intervals)"
    return after, f"{counted}{band}: intervals go to {_change(stage, after)}"


def after_break(stage: Stage, days: int) -> tuple[Stage, str]:
    """Rule 7: a long break steps back one rung and restarts the count."""
    after = _step_back(stage)
    rule = "(retrotread's rule for breaks of four weeks or more)"
    if _at_the_bottom(stage):
        return after, (
            f"{days} days since the last session: stay at {after.seconds} s, "
            f"{after.handrail.cue}, and count again {rule}"
        )
    return after, (
        f"{days} days since the last session: step back to {_change(stage, after)} and count "
        f"again {rule}"
    )


@dataclass(frozen=True)
class Replayed:
    """One past session as progression saw it."""

    evidence: SessionEvidence
    stage: Stage  # after this session
    reason: str


def replay(history: Sequence[SessionEvidence]) -> list[Replayed]:
    """Walk a client's sessions in order, applying the rules to each."""
    stage = Stage()
    steps: list[Replayed] = []
    last_day: date | None = None
    for evidence in sorted(history, key=lambda e: (e.day, e.session_id or 0)):
        reasons = []
        if last_day is not None and (evidence.day - last_day).days >= BREAK_DAYS:
            stage, why = after_break(stage, (evidence.day - last_day).days)
            reasons.append(why)
        last_pain = stage.last_pain if evidence.pain is None else evidence.pain
        stage, why = advance(stage, evidence)
        stage = replace(stage, last_pain=last_pain)  # a step back keeps the pain history
        reasons.append(why)
        steps.append(Replayed(evidence, stage, "; then ".join(reasons)))
        if evidence.phase is not None:
            last_day = evidence.day
    return steps


# -- the next session ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NextSession:
    stage: Stage
    reason: str
    program: Program
    toml: str


def plan_next(history: Sequence[SessionEvidence], today: date) -> NextSession:
    """The next session for a client with ``history``, as a program, with the reason."""
    steps = replay(history)
    if not steps:
        stage = Stage()
        reason = (
            f"first session: {stage.seconds} s intervals, {stage.handrail.cue} "
            f"(the seed: “{SEED_START}”)"
        )
    else:
        stage, reason = steps[-1].stage, steps[-1].reason
        counted = [s.evidence.day for s in steps if s.evidence.phase is not None]
        if counted and (today - counted[-1]).days >= BREAK_DAYS:
            stage, reason = after_break(stage, (today - counted[-1]).days)
    toml = program_toml(stage)
    program = parse_program(toml, f"<progression {stage.phase.value} {stage.seconds}s>")
    return NextSession(stage, reason, program, toml)


# -- the generated programs ----------------------------------------------------------------------

_CUES = {
    Handrail.BOTH_HANDS: "controlled steps; look over your shoulder now and then",
    Handrail.LIGHT_TOUCH: "upright, slight forward lean; look over your shoulder now and then",
    Handrail.HANDS_FREE: "smooth, controlled steps over speed",
}


#: seconds of backward walking before each retro-run interval, in the same stretch
RUN_LEAD_IN_S = 15


def backward_stretches(program: Program) -> list[int]:
    """Each continuous backward stretch of ``program`` in seconds: consecutive retro and
    retro-run blocks, from one turn-around (or forward block) to the next."""
    stretches: list[int] = []
    current = 0
    for step in program.steps:
        if step.kind.is_retro:
            current += step.duration_s
        elif current:
            stretches.append(current)
            current = 0
    if current:
        stretches.append(current)
    return stretches


def longest_backward_s(program: Program) -> int:
    """The longest time ``program`` keeps the walker backward without a turn-around."""
    return max(backward_stretches(program), default=0)


def repeats_for(seconds: int) -> int:
    """Six short intervals, fewer as they lengthen: about four minutes of backward work."""
    return max(3, min(6, 240 // seconds))


def program_toml(stage: Stage) -> str:
    """The program for ``stage`` as TOML, so it goes through the same validation as a file."""
    seconds, handrail = stage.seconds, stage.handrail.value
    repeats = repeats_for(seconds)
    name = f"{stage.phase.value}-{seconds}s"
    if stage.phase is Phase.WALK:
        speed = "2.6" if LADDER[stage.rung].in_start_band else "2.8"
        return f'''name = "{name}"
description = """Progression: {repeats} backward walking intervals of {seconds} s as active \\
recovery between forward walking, {stage.handrail.cue}. Generated by retrotread's progression \\
from the seed "Retro Walk"."""

[defaults]
incline = 2.0
retro_band = [2.6, 3.2]
turn = "slow"
turn_speed = 1.0

[[blocks]]
kind = "warm-up"
name = "Easy forward walk"
duration = "3m"
speed = 2.5
incline = 1.0
cue = "easy pace, relax the shoulders"

[[blocks]]
repeat = {repeats}
name = "Backward intervals"

  [[blocks.blocks]]
  kind = "turn-around"

  [[blocks.blocks]]
  kind = "retro"
  name = "Retro walk {seconds} s"
  duration = {seconds}
  speed = {speed}
  handrail = "{handrail}"
  cue = "{_CUES[stage.handrail]}"

  [[blocks.blocks]]
  kind = "turn-around"

  [[blocks.blocks]]
  kind = "recovery"
  name = "Forward recovery"
  duration = "60s"
  speed = 2.5
  cue = "breathe, walk tall"

[[blocks]]
kind = "cool-down"
name = "Easy forward walk"
duration = "2m"
speed = 2.2
incline = 0.0
cue = "slow down and let the breathing settle"
'''
    # Each run interval is its own backward stretch, between turn-arounds, with a short walk
    # into it while that keeps the stretch within the two-minute walk the client has shown.
    lead_in = RUN_LEAD_IN_S if seconds + RUN_LEAD_IN_S <= LADDER[TOP].seconds else 0
    lead_block = (
        f"""
  [[blocks.blocks]]
  kind = "retro"
  name = "Retro walk into the run"
  duration = {lead_in}
  speed = 2.6
  handrail = "{handrail}"
  cue = "controlled steps"
"""
        if lead_in
        else ""
    )
    return f'''name = "{name}"
description = """Progression: {repeats} backward running intervals of {seconds} s, each \\
between turn-arounds and forward recovery, {stage.handrail.cue}. Generated by retrotread's \\
progression from the seed "Retro Walk": a retro-run strategy following the same parameters \\
as the walk; no backward stretch is longer than the two-minute walk already done."""

[defaults]
incline = 2.0
retro_band = [2.6, 3.2]
retro_run_band = [3.5, 4.5]
turn = "slow"
turn_speed = 1.0

[[blocks]]
kind = "warm-up"
name = "Forward walk"
duration = "3m"
speed = 3.0
incline = 1.0

[[blocks]]
kind = "turn-around"

[[blocks]]
kind = "retro"
name = "Retro walk primer"
duration = "60s"
speed = 2.8
handrail = "light-touch"
cue = "controlled steps"

[[blocks]]
kind = "turn-around"

[[blocks]]
kind = "recovery"
name = "Forward recovery"
duration = "60s"
speed = 2.5
cue = "breathe, walk tall"

[[blocks]]
repeat = {repeats}
name = "Retro-run intervals"

  [[blocks.blocks]]
  kind = "turn-around"
{lead_block}
  [[blocks.blocks]]
  kind = "retro-run"
  name = "Retro run {seconds} s"
  duration = {seconds}
  speed = 3.8
  handrail = "{handrail}"
  cue = "short quick steps, land on the forefoot"

  [[blocks.blocks]]
  kind = "turn-around"

  [[blocks.blocks]]
  kind = "recovery"
  name = "Forward recovery"
  duration = "60s"
  speed = 2.5
  cue = "breathe; walk tall"

[[blocks]]
kind = "cool-down"
name = "Easy forward walk"
duration = "3m"
speed = 2.4
incline = 0.0
'''
