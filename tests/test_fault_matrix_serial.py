"""The fault matrix over a real serial line: retrotread's CSAFE and Trackmaster drivers over a
pty to ``retrotread-sim serve --faults ...`` running as a separate process.

Every fault runs on every console personality it makes sense on (``retrotread_sim.csafe``:
matrix, concept2; ``retrotread_sim.trackmaster``: trackmaster, trackmaster-query). Real I/O to
another process cannot use the virtual clock, so every case runs at once in one event loop
(each against its own simulator) and each test then checks its own case: nothing outside the
allowed set was sent, the simulated belt ended stopped, the session record is complete, and
the fault had its ONE expected outcome (``Case.expect``), not one of several.
"""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from retrotread.clock import LoopClock
from retrotread.drivers.registry import open_treadmill
from retrotread.events import CommandUnconfirmed, Event, Fault
from retrotread.headless import HeadlessPrinter
from retrotread.profiles import get_profile
from retrotread.program.model import BlockKind
from retrotread.session import Outcome as SessionOutcome
from retrotread.session import Session
from retrotread.store import SessionRecorder, Status, Store
from retrotread_sim.serve import SimProcess
from tests.helpers import block, retro_program
from tests.serial_support import belt_stopped_at_the_machine
from tests.test_fault_matrix import guard

#: seconds after the simulator starts; the session is under way by then, even on a busy machine
AT = 6
#: how long a held program waits before the "operator" stops it
HOLD_S = 3.0
#: how long a held program (and a stop nobody answers) lasts, unattended
HOLD_LIMIT_S = 8.0


@dataclass(frozen=True)
class Case:
    protocol: str
    personality: str
    plan: str
    #: the one outcome: "hold:KIND" (the program paused), "fault:KIND" (ended by a fault),
    #: "rejected:COMMAND" (refused, shown, carried on), or how the session ended ("completed",
    #: "unconfirmed" on a machine that cannot report its belt)
    expect: str
    options: tuple[str, ...] = ()


#: the port comes back under the same name after an unplug (as /dev/ttyUSB0 would)
LINKED = ("--link", "{folder}/{name}.pty")

#: fault -> the one outcome, on every CSAFE console it makes sense on
CSAFE_FAULTS = {
    "stale": (f"stale@{AT}", "hold:link-lost"),  # nothing answers: the console is gone
    "silent": (f"silent@{AT}+3", "hold:link-lost"),  # nothing heard, then back
    "freeze": (f"freeze@{AT}", "hold:telemetry-stale"),  # answers, one record over and over
    "drop": (f"drop@{AT}+2", "hold:link-lost"),
    # CSAFE has one error state for both: the operator reads a stop at the console.
    "safety-key": (f"safety-key@{AT}", "hold:stopped-at-console"),
    "console-stop": (f"console-stop@{AT}", "hold:stopped-at-console"),
    "console-pause": (f"console-pause@{AT}", "hold:paused-at-console"),
    "garble": ("garble=0.005", "completed"),  # garbled answers are asked again
    "split": ("split", "completed"),
    "duplicate": ("duplicate", "completed"),  # a copy's toggle is the one before: skipped
    "mph-field": ("mph-field", "fault:overspeed"),
}
#: faults on speed commands: only a console that takes speeds during the workout gets them
SPEED_FAULTS = {
    "ignore": (f"ignore:set-speed@{AT}+20", "hold:command-timeout"),
    "late": (f"late:set-speed=0.3@{AT}", "completed"),  # late, yet within the 1 s rule
    "reject": (f"reject:set-speed=failed@{AT}+20", "rejected:set speed"),
}
#: personality -> the device profile for it
PROFILES = {"matrix": "matrix-csafe", "trackmaster-query": "trackmaster-query"}
MATRIX_FAULTS = ("stale", "silent", "drop", "safety-key", "console-stop", "duplicate")
TRACKMASTER_FAULTS = {
    "trackmaster-query": {
        "reject": (f"reject:set-speed=invalid-parameter@{AT}+20", "rejected:set speed"),
        "ignore": (f"ignore:set-speed@{AT}+20", "hold:command-timeout"),
        "drop": (f"drop@{AT}+2", "hold:link-lost"),
        "garble": ("garble=0.005", "completed"),
        "console-stop": (f"console-stop@{AT}", "hold:belt-stopped"),
    },
    # Without status requests nothing shows the belt (issue 13, finding 5): a stop at the
    # console goes unseen, and the run is recorded unconfirmed (the session's policy).
    "trackmaster": {
        "reject": (f"reject:set-speed=invalid-parameter@{AT}+20", "rejected:set speed"),
        "ignore": (f"ignore:set-speed@{AT}+20", "hold:command-timeout"),
        "console-stop": (f"console-stop@{AT}", "unconfirmed"),
    },
}


def _cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for personality in ("concept2", "matrix"):
        faults = CSAFE_FAULTS | SPEED_FAULTS
        if personality == "matrix":  # where its answers differ: silence, refusals, toggles
            faults = {f: faults[f] for f in MATRIX_FAULTS}
        for fault, (plan, expect) in faults.items():
            options = LINKED if fault == "drop" else ()
            cases[f"{personality}-{fault}"] = Case("csafe", personality, plan, expect, options)
    for personality, faults in TRACKMASTER_FAULTS.items():
        for fault, (plan, expect) in faults.items():
            options = LINKED if fault == "drop" else ()
            cases[f"{personality}-{fault}"] = Case(
                "trackmaster", personality, plan, expect, options
            )
    return cases


CASES = _cases()


def observed(events: list[Event], outcome: SessionOutcome) -> str:
    """The case's outcome in the words of ``Case.expect``: the first fault decides."""
    for event in events:
        if isinstance(event, Fault):
            return f"{'fault' if event.fatal else 'hold'}:{event.kind}"
    for event in events:
        if isinstance(event, CommandUnconfirmed) and event.rejected:
            return f"rejected:{event.command}"
    return outcome.value


@dataclass
class Outcome:
    printed: str = ""
    observed: str = ""
    violations: tuple[str, ...] = ()
    final_state: dict[str, object] | None = None
    status: Status | None = None
    blocks: int = 0
    samples: int = 0
    stopped_at_the_end: bool = False
    error: str = ""


async def play(name: str, case: Case, folder: Path) -> Outcome:
    record = folder / f"{name}.jsonl"
    options = [option.format(folder=folder, name=name) for option in case.options]
    sim = SimProcess(
        case.protocol,
        "--accel",
        "6",
        "--personality",
        case.personality,
        "--faults",
        case.plan,
        *options,
        record=record,
    )
    await asyncio.to_thread(sim.start)
    port = f"{folder}/{name}.pty" if "--link" in options else sim.address
    try:
        profile = get_profile(PROFILES.get(case.personality, f"generic-{case.protocol}"))
        # Stale after 4 s: the driver calls a console that stopped answering lost after two
        # unanswered polls (about 2 s), so the one meaning of that fault is "link lost".
        profile = replace(profile, confirm=replace(profile.confirm, telemetry_stale_s=4.0))
        program = retro_program([5, 5, 5])
        if case.personality == "matrix":
            # Speeds only before the workout: one speed, reached without ramp steps.
            program = replace(
                program, items=tuple(block(BlockKind.RETRO, 5, "2.8") for _ in range(3))
            )
        clock = LoopClock()
        url = f"serial://{port}?protocol={case.protocol}"
        driver = open_treadmill(url, clock=clock, profile=profile)
        # A console that never answers again is stopped at for the hold limit: keep it short.
        session = Session(
            program,
            driver,
            clock,
            unattended=True,
            hold_limit_s=HOLD_LIMIT_S,
            allow_blind=case.personality == "trackmaster",  # it cannot report its belt
        )
        events: list[Event] = []
        session.subscribe(events.append)
        out = io.StringIO()
        session.subscribe(HeadlessPrinter(session, out, periodic_status=False))
        store = Store.open(folder / f"{name}.db")
        recorder = SessionRecorder(store, session)
        session.subscribe(recorder)

        def on_event(event: Event) -> None:
            if isinstance(event, Fault) and not event.fatal:  # the operator steps in
                asyncio.get_running_loop().call_later(HOLD_S, session.stop)

        session.subscribe(on_event)
        violations: list[str] = []
        guard(session, violations)
        summary = await asyncio.wait_for(session.run(), timeout=60)
        assert recorder.session_id is not None
        outcome = Outcome(
            printed=out.getvalue(),
            observed=observed(events, summary.outcome),
            violations=tuple(violations),
            status=store.session(recorder.session_id).status,
            blocks=len(store.blocks(recorder.session_id)),
            samples=len(store.samples(recorder.session_id)),
        )
        store.close()
        # A machine that cannot report its belt may still be slowing down: ask the machine.
        outcome.stopped_at_the_end = await belt_stopped_at_the_machine(sim)
    finally:
        await asyncio.to_thread(sim.stop)
    closed = [e for e in map(json.loads, record.read_text().splitlines()) if e["event"] == "closed"]
    outcome.final_state = closed[-1]["state"] if closed else None
    return outcome


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    folder = tmp_path_factory.mktemp("serial-faults")

    async def all_cases() -> dict[str, Outcome]:
        async def one(name: str, case: Case) -> Outcome:
            try:
                return await play(name, case, folder)
            except Exception as err:  # reported by that case's test, not the whole module
                return Outcome(error=repr(err))

        results = await asyncio.gather(*(one(n, c) for n, c in CASES.items()))
        return dict(zip(CASES, results, strict=True))

    return asyncio.run(all_cases())


@pytest.mark.realtime
@pytest.mark.parametrize("name", list(CASES))
def test_serial_fault_matrix(name: str, outcomes: dict[str, Outcome]) -> None:
    case, outcome = CASES[name], outcomes[name]
    assert not outcome.error
    assert outcome.violations == ()
    assert outcome.final_state is not None
    assert outcome.stopped_at_the_end, outcome.printed
    assert outcome.final_state["stopped"] is True, (outcome.final_state, outcome.printed)
    assert outcome.status not in (None, Status.RUNNING)
    assert outcome.blocks >= 1
    assert outcome.observed == case.expect, outcome.printed
