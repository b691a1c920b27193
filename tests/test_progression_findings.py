"""Issue 18's progression findings, one client story each (they failed before the fix)."""

from __future__ import annotations

from datetime import date, timedelta

from retrotread import progression
from retrotread.program import BlockKind, Handrail, find_program, parse_program
from retrotread.progression import (
    LADDER,
    OperatorOutcome,
    Phase,
    Replayed,
    SessionEvidence,
    Stage,
    backward_stretches,
    longest_backward_s,
    plan_next,
    program_toml,
    replay,
    retro_content,
)

COMPLETED, DIZZY = OperatorOutcome.COMPLETED, OperatorOutcome.DIZZINESS
CANNOT_MOVE = OperatorOutcome.CANNOT_MOVE
MONDAY = date(2025, 3, 3)


def sessions(*outcomes: OperatorOutcome | None, interval: int = 20) -> list[SessionEvidence]:
    """Sessions of one built-in, two days apart, with ``outcomes``."""
    return [
        SessionEvidence(MONDAY + timedelta(days=2 * i), Phase.WALK, interval, True, o, i + 1)
        for i, o in enumerate(outcomes)
    ]


def follow(history: list[SessionEvidence], *outcomes: OperatorOutcome) -> None:
    """The client plays what `next` offers with each outcome in turn."""
    for outcome in outcomes:
        day = history[-1].day + timedelta(days=2) if history else MONDAY
        offered = plan_next(history, day)
        phase, interval = retro_content(offered.program)
        history.append(SessionEvidence(day, phase, interval, True, outcome, len(history) + 1))


def test_six_successful_first_week_sessions_at_20_s_move_the_client_past_30_s() -> None:
    first_week = find_program("first-week")
    assert "at least six sessions" in first_week.description
    phase, interval = retro_content(first_week)
    assert (phase, interval) == (Phase.WALK, 20)
    steps = replay(sessions(*[COMPLETED] * 6, interval=interval))
    assert [s.stage.seconds for s in steps] == [15, 15, 30, 30, 30, 45]
    assert steps[3].reason == (
        "a 20 s retro walk completed without pain: 1 of 3 sessions at 30 s "
        "(the seed's 15–30 s intervals are one range): stay at 30 s"
    )
    assert "“at least six sessions” of 15–30 s intervals" in steps[-1].reason
    assert steps[-1].reason.endswith("intervals go to 45 s")


def test_a_15_s_session_counts_toward_the_six_while_the_client_is_at_30_s() -> None:
    history = sessions(*[COMPLETED] * 3, interval=15)
    history += sessions(*[COMPLETED] * 3, interval=15)[:3]
    history = [
        SessionEvidence(MONDAY + timedelta(days=2 * i), e.phase, e.interval_s, True, COMPLETED, i)
        for i, e in enumerate(history)
    ]
    assert replay(history)[-1].stage.seconds == 45


def test_shorter_than_the_band_or_the_rung_still_does_not_count() -> None:
    steps = replay(sessions(*[COMPLETED] * 4, interval=10))
    assert {s.stage.successes for s in steps} == {0}
    follow(history := [], *[COMPLETED] * 6)  # up to 45 s
    history += sessions(COMPLETED, interval=30)  # a 30 s built-in at 45 s
    history[-1] = SessionEvidence(
        history[-2].day + timedelta(days=2), Phase.WALK, 30, True, COMPLETED, 7
    )
    last = replay(history)[-1]
    assert (last.stage.seconds, last.stage.successes) == (45, 0)
    assert last.reason == "a 30 s retro walk does not count toward 45 s"


def test_repeated_dizziness_is_having_difficulty_and_steps_back() -> None:
    history: list[SessionEvidence] = []
    follow(history, *[COMPLETED] * 8)  # 15 x3, 30 x3, 45 x2: now 60 s, light touch
    assert plan_next(history, history[-1].day + timedelta(days=2)).stage.seconds == 60
    follow(history, DIZZY)
    once = replay(history)[-1]
    assert once.stage.seconds == 60
    assert "dizziness reported: stay at 60 s and monitor closely" in once.reason
    follow(history, DIZZY)
    twice = replay(history)[-1]
    assert (twice.stage.seconds, twice.stage.handrail) == (45, Handrail.BOTH_HANDS)
    assert twice.reason.startswith("dizziness again (2 sessions in a row) at 60 s: step back")
    assert progression.SEED_REGRESS in twice.reason
    follow(history, DIZZY)  # three in a row: back again
    assert replay(history)[-1].stage.seconds == 30


def test_dizziness_with_a_good_session_between_holds_each_time() -> None:
    history: list[SessionEvidence] = []
    follow(history, COMPLETED, DIZZY, COMPLETED, DIZZY)
    stage = replay(history)[-1].stage
    assert (stage.seconds, stage.successes) == (15, 2)


def test_repeated_dizziness_at_15_s_stays_there_and_says_regress_or_avoid() -> None:
    steps = replay(sessions(DIZZY, DIZZY, interval=15))
    assert steps[-1].stage.seconds == 15
    assert "already at the shortest interval" in steps[-1].reason
    assert progression.SEED_PAIN in steps[-1].reason


def test_cannot_move_properly_is_an_outcome_that_steps_back() -> None:
    assert OperatorOutcome("cannot move properly") is CANNOT_MOVE
    history: list[SessionEvidence] = []
    follow(history, *[COMPLETED] * 6, CANNOT_MOVE)
    last = replay(history)[-1]
    assert last.stage.seconds == 30
    assert last.reason == (
        "cannot move properly reported at 45 s: step back to 30 s "
        "(the seed: “regress or avoid the exercise”)"
    )


def test_no_backward_stretch_is_longer_than_the_client_has_already_done() -> None:
    """Climb the whole ladder: a walk session's stretches are its intervals (the ladder is
    what lengthens them); a retro-run session keeps the walker backward no longer without a
    turn-around than the longest stretch of a session they completed."""
    history: list[SessionEvidence] = []
    longest_done = 0
    for _ in range(40):
        day = history[-1].day + timedelta(days=2) if history else MONDAY
        offered = plan_next(history, day)
        stretch = longest_backward_s(offered.program)
        if offered.stage.phase is Phase.RUN:
            assert stretch <= longest_done, (offered.stage, stretch, longest_done)
        else:
            assert stretch == offered.stage.seconds
        longest_done = max(longest_done, stretch)
        phase, interval = retro_content(offered.program)
        history.append(SessionEvidence(day, phase, interval, True, COMPLETED, len(history) + 1))
    assert replay(history)[-1].stage.phase is Phase.RUN


def test_the_first_retro_run_session_has_short_stretches() -> None:
    first_run = parse_program(program_toml(Stage(Phase.RUN, 0)), "<run>")
    stretches = backward_stretches(first_run)
    assert stretches == [60] + [15 + 15] * 6  # the primer; each run with its walk into it
    runs = [s for s in first_run.steps if s.kind is BlockKind.RETRO_RUN]
    assert len(runs) == 6
    top = parse_program(program_toml(Stage(Phase.RUN, len(LADDER) - 1)), "<run>")
    assert longest_backward_s(top) == 120  # no walk into a two-minute run


def test_a_long_break_at_15_s_does_not_say_step_back() -> None:
    history = sessions(COMPLETED, COMPLETED, interval=15)
    offered = plan_next(history, history[-1].day + timedelta(days=35))
    assert (offered.stage.seconds, offered.stage.successes) == (15, 0)
    assert offered.reason == (
        "35 days since the last session: stay at 15 s, hold both handrails, and count again "
        "(retrotread's rule for breaks of four weeks or more)"
    )


def test_after_a_two_minute_built_in_the_reason_describes_that_session() -> None:
    two_minutes = find_program("two-minute-retro")
    phase, interval = retro_content(two_minutes)
    assert interval == 120
    offered = plan_next(sessions(COMPLETED, interval=interval), MONDAY + timedelta(days=2))
    assert offered.stage.seconds == 15
    assert offered.reason == (
        "a 120 s retro walk completed without pain: 1 of 3 sessions at 15 s (the duration "
        "grows one step at a time (the seed: “gradually increase the duration”)): stay at 15 s"
    )


# -- how the walk felt (rule 8) ------------------------------------------------------------------


def felt(
    pain: int | None = None, exertion: float | None = None, losses: int | None = None
) -> tuple[int | None, float | None, int | None]:
    return pain, exertion, losses


def with_feelings(*feelings: tuple[int | None, float | None, int | None]) -> list[Replayed]:
    history: list[SessionEvidence] = []
    for i, (pain, exertion, losses) in enumerate(feelings):
        day = history[-1].day + timedelta(days=2) if history else MONDAY
        offered = plan_next(history, day)
        phase, interval = retro_content(offered.program)
        history.append(
            SessionEvidence(day, phase, interval, True, COMPLETED, i + 1, pain, exertion, losses)
        )
    return replay(history)


def test_pain_rising_by_two_holds_and_says_so() -> None:
    steps = with_feelings(felt(1), felt(1), felt(3))
    assert [s.stage.successes for s in steps] == [1, 2, 2]
    assert steps[-1].reason == (
        "pain up from 1 to 3/10 (the seed: “experiencing pain”): stay at 15 s; "
        "the session does not count"
    )


def test_pain_rising_by_four_or_reaching_seven_steps_back() -> None:
    steps = with_feelings(*[felt(0)] * 6, felt(4))  # six good ones to 45 s, then pain 0 -> 4
    assert steps[-1].stage.seconds == 30
    assert steps[-1].reason.startswith("pain up from 0 to 4/10 at 45 s: step back to 30 s")
    steps = with_feelings(*[felt()] * 6, felt(7))
    assert steps[-1].stage.seconds == 30
    assert steps[-1].reason.startswith("pain 7/10 recorded at 45 s: step back")


def test_steady_low_pain_still_counts() -> None:
    steps = with_feelings(felt(2), felt(3), felt(2), felt(3))
    assert steps[-1].stage.seconds == 30 and steps[-1].stage.successes == 1


def test_balance_losses_and_very_hard_exertion() -> None:
    one = with_feelings(felt(losses=1))[-1]
    assert one.stage.successes == 0 and "a balance loss recorded" in one.reason
    two = with_feelings(*[felt()] * 3, felt(losses=2))[-1]
    assert two.stage.seconds == 15 and "2 balance losses recorded at 30 s: step back" in two.reason
    hard = with_feelings(felt(exertion=7))[-1]
    assert hard.stage.successes == 0
    assert "exertion 7 of 10 (Borg CR10: very hard)" in hard.reason
    fine = with_feelings(felt(exertion=5))[-1]
    assert fine.stage.successes == 1
