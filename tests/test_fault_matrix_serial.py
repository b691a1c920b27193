"""The fault matrix over a real serial line: retrotread's CSAFE and Trackmaster drivers over a
pty to ``retrotread-sim serve --faults ...`` running as a separate process.

Real I/O to another process cannot use the virtual clock, so every case runs at once in one
event loop (each against its own simulator) and each test then checks its own case. The same
four things are asserted as on the other links: nothing outside the allowed set was sent, the
simulated belt ended stopped, the session record is complete, and the operator was told.
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
from retrotread.events import Event, Fault
from retrotread.headless import HeadlessPrinter
from retrotread.profiles import get_profile
from retrotread.session import Session
from retrotread.store import SessionRecorder, Status, Store
from retrotread_sim.serve import SimProcess
from tests.helpers import retro_program
from tests.test_fault_matrix import guard

#: seconds after the simulator starts; the session is under way by then
AT = 4
#: how long a held program waits before the "operator" stops it
HOLD_S = 3.0
#: how long a held program (and a stop nobody answers) lasts, unattended
HOLD_LIMIT_S = 8.0


@dataclass(frozen=True)
class Case:
    protocol: str
    plan: str
    says: tuple[str, ...]
    options: tuple[str, ...] = ()


#: the port comes back under the same name after an unplug (as /dev/ttyUSB0 would)
LINKED = ("--link", "{folder}/{name}.pty")
#: Trackmaster telemetry through the A5/A6 queries
QUERY = ("--status-query",)

CASES = {
    "csafe-stale": Case("csafe", f"stale@{AT}", ("link-lost", "telemetry-stale")),
    "csafe-freeze": Case("csafe", f"freeze@{AT}", ("telemetry-frozen", "telemetry-stale")),
    # One-shot ignore and reject faults are absorbed by the drivers' retries within the 1 s
    # rule (and so survived); a window of them is what the operator must hear about.
    "csafe-ignore": Case("csafe", f"ignore:set-speed@{AT}+20", ("command-timeout", "no answer")),
    "csafe-late": Case("csafe", f"late:set-speed=0.3@{AT}", ("▶ test",)),
    "csafe-reject": Case("csafe", f"reject:set-speed=failed@{AT}+20", ("not confirmed",)),
    "csafe-drop": Case("csafe", f"drop@{AT}+2", ("link-lost", "link lost"), LINKED),
    # CSAFE has one error state for both: the operator reads a stop at the console.
    "csafe-safety-key": Case("csafe", f"safety-key@{AT}", ("safety key", "treadmill console")),
    "csafe-console-stop": Case("csafe", f"console-stop@{AT}", ("at the treadmill console",)),
    "csafe-console-pause": Case("csafe", f"console-pause@{AT}", ("at the treadmill console",)),
    "csafe-garble": Case("csafe", "garble=0.005", ("▶ test",)),
    "csafe-split": Case("csafe", "split", ("▶ test",)),
    "csafe-duplicate": Case("csafe", "duplicate", ("▶ test",)),
    "csafe-mph-field": Case("csafe", "mph-field", ("overspeed",)),
    "trackmaster-reject": Case(
        "trackmaster", f"reject:set-speed=invalid-parameter@{AT}+20", ("not confirmed",), QUERY
    ),
    "trackmaster-ignore": Case(
        "trackmaster", f"ignore:set-speed@{AT}+20", ("command-timeout", "no answer"), QUERY
    ),
    "trackmaster-drop": Case(
        "trackmaster", f"drop@{AT}+2", ("link-lost", "link lost"), (*QUERY, *LINKED)
    ),
    "trackmaster-garble": Case("trackmaster", "garble=0.005", ("▶ test",), QUERY),
    "trackmaster-console-stop": Case(
        "trackmaster", f"console-stop@{AT}", ("belt stopped without a command",), QUERY
    ),
}


@dataclass
class Outcome:
    printed: str = ""
    violations: tuple[str, ...] = ()
    final_state: dict[str, object] | None = None
    status: Status | None = None
    blocks: int = 0
    samples: int = 0
    error: str = ""


async def play(name: str, case: Case, folder: Path) -> Outcome:
    record = folder / f"{name}.jsonl"
    options = [option.format(folder=folder, name=name) for option in case.options]
    sim = SimProcess(case.protocol, "--accel", "6", "--faults", case.plan, *options, record=record)
    await asyncio.to_thread(sim.start)
    port = f"{folder}/{name}.pty" if "--link" in options else sim.address
    try:
        base = get_profile(f"generic-{case.protocol}")
        profile = replace(
            base,
            confirm=replace(base.confirm, telemetry_stale_s=2.0),
        )
        if case.protocol == "trackmaster":
            profile = profile.with_quirks(status_query=True)
        clock = LoopClock()
        url = f"serial://{port}?protocol={case.protocol}"
        driver = open_treadmill(url, clock=clock, profile=profile)
        # A console that never answers again is stopped at for the hold limit: keep it short.
        session = Session(
            retro_program([5, 5, 5]), driver, clock, unattended=True, hold_limit_s=HOLD_LIMIT_S
        )
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
        await asyncio.wait_for(session.run(), timeout=60)
        assert recorder.session_id is not None
        outcome = Outcome(
            printed=out.getvalue(),
            violations=tuple(violations),
            status=store.session(recorder.session_id).status,
            blocks=len(store.blocks(recorder.session_id)),
            samples=len(store.samples(recorder.session_id)),
        )
        store.close()
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
    assert outcome.final_state["stopped"] is True, (outcome.final_state, outcome.printed)
    assert outcome.status not in (None, Status.RUNNING)
    assert outcome.blocks >= 1 and outcome.samples >= 2
    assert any(text in outcome.printed for text in case.says), outcome.printed
