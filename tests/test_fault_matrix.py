"""Every fault on every link: nothing outside the allowed set is sent, the belt ends stopped,
the session record is complete, and the operator saw a message naming the fault.

Links: the in-process simulator (``sim://``) and the full BLE stack (``sim://?link=ble``:
pyftms, bleak and bleak-retry-connector against the simulator's GATT server), both on the
virtual clock. The serial pty link runs the same matrix in ``test_fault_matrix_serial.py``.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from pathlib import Path

import pytest

from retrotread.clock import LoopClock, run
from retrotread.drivers.registry import open_treadmill
from retrotread.drivers.sim import SimulatorDriver
from retrotread.events import Fault
from retrotread.headless import HeadlessPrinter, format_summary
from retrotread.session import Outcome as SessionOutcome
from retrotread.session import Session, SessionSummary
from retrotread.store import SessionRecorder, Status, Store
from retrotread.units import Quantity, Unit
from tests.helpers import retro_program


@dataclass(frozen=True)
class Case:
    plan: str
    #: how the session ends: the same on every link
    ends: SessionOutcome
    #: the fault the operator is told about (printed as "fault (KIND)"); None: none at all
    fault: str | None
    #: telemetry is gone, so retrotread cannot confirm the stop (and says so)
    blind: bool = False


HELD = SessionOutcome.FAULT  # unattended, a hold nobody resumes ends at the hold limit
FAULTS = {
    "stale": Case("stale@30", HELD, "telemetry-stale", blind=True),
    "freeze": Case("freeze@30", HELD, "telemetry-stale", blind=True),
    "ignore": Case("ignore:set-speed@15", HELD, "command-timeout"),
    "late": Case("late:set-speed=1@15", SessionOutcome.COMPLETED, None),
    "reject-invalid": Case("reject:set-speed=invalid-parameter@15", SessionOutcome.COMPLETED, None),
    "reject-failed": Case("reject:set-speed=failed@15", SessionOutcome.COMPLETED, None),
    "reject-unsupported": Case("reject:set-speed=not-supported@15", SessionOutcome.COMPLETED, None),
    "drop": Case("drop@15+10", SessionOutcome.COMPLETED, "link-lost"),
    "safety-key": Case("safety-key@15", HELD, "safety-key"),
    "console-stop": Case("console-stop@15", HELD, "stopped-at-console"),
    "console-pause": Case("console-pause@15", HELD, "paused-at-console"),
    # Raised at the console beyond the block's band: an overspeed, and the belt is stopped.
    "console-speed": Case("console-speed=6.0@15", SessionOutcome.FAULT, "overspeed"),
    "slow-ramp": Case("slow-ramp=0.2", SessionOutcome.COMPLETED, None),
    "mph-field": Case("mph-field", SessionOutcome.FAULT, "overspeed"),
}
#: what the operator reads for each case that has no fault
WORDS = {
    "late": "program finished",
    "reject-invalid": "invalid parameter",
    "reject-failed": "operation failed",
    "reject-unsupported": "not supported",
    "slow-ramp": "not confirmed",
}

LINKS = {
    "inprocess": "sim://?",
    "ble": "sim://?link=ble&",
    "ble-strict": "sim://?link=ble&personality=strict&",
}


@dataclass
class Outcome:
    summary: SessionSummary
    printed: str
    faults: list[str]
    violations: list[str]
    belt_stopped: bool
    status: Status
    blocks: int
    samples: int


def guard(session: Session, violations: list[str]) -> None:
    """Check every speed at the driver's door against the governor's allowed set."""
    driver = session.treadmill
    original = driver.set_speed
    last: list[Quantity] = []

    async def checked(speed: Quantity) -> None:
        step = session.state.step
        caps = driver.capabilities
        v = speed.to(Unit.MPH)
        previous = (last[-1] if last else caps.speed.low).to(Unit.MPH)
        if v > driver.profile.speed.max_mph or speed.to(Unit.KMH) < caps.speed.low.to(Unit.KMH):
            violations.append(f"{v} outside the machine range or cap")
        if step is not None and v > step.band.high and v > previous:
            violations.append(f"{v} rises above {step.title}'s band {step.band}")
        last.append(speed)
        await original(speed)

    driver.set_speed = checked  # type: ignore[method-assign]


def play(url: str, db: Path) -> Outcome:
    async def main() -> Outcome:
        clock = LoopClock()
        driver = open_treadmill(url, clock=clock)
        assert isinstance(driver, SimulatorDriver)
        session = Session(retro_program([20, 20, 20]), driver, clock, unattended=True)
        out = io.StringIO()
        session.subscribe(HeadlessPrinter(session, out, periodic_status=False))
        store = Store.open(db)
        recorder = SessionRecorder(store, session)
        session.subscribe(recorder)
        violations: list[str] = []
        guard(session, violations)
        faults: list[str] = []
        session.subscribe(lambda e: faults.append(e.kind) if isinstance(e, Fault) else None)
        # Read the belt as the session lets go of the link: a strict machine stops its belt
        # when the link closes, which would hide a belt left running.
        at_release: list[bool] = []
        close = driver.close

        async def read_then_close() -> None:
            assert driver.machine is not None
            at_release.append(driver.machine.belt_stopped)
            await close()

        driver.close = read_then_close  # type: ignore[method-assign]
        summary = await asyncio.wait_for(session.run(), timeout=3600)
        assert recorder.session_id is not None
        record = store.session(recorder.session_id)
        blocks = len(store.blocks(recorder.session_id))
        samples = len(store.samples(recorder.session_id))
        store.close()
        return Outcome(
            summary,
            out.getvalue(),
            faults,
            violations,
            at_release[0],
            record.status,
            blocks,
            samples,
        )

    return run(main(), virtual=True)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("link", list(LINKS))
def test_fault_matrix(link: str, fault: str, tmp_path: Path) -> None:
    case = FAULTS[fault]
    outcome = play(f"{LINKS[link]}faults={case.plan}", tmp_path / "records.db")
    assert outcome.violations == []
    assert outcome.belt_stopped, outcome.printed  # read before the link was released
    if case.blind:
        assert "NOT CONFIRMED STOPPED" in format_summary(outcome.summary)
    else:
        assert outcome.summary.belt_stopped
    assert outcome.summary.outcome is case.ends, outcome.printed
    assert outcome.status.value == case.ends.value  # the record was closed with how it ended
    assert outcome.blocks >= 1 and outcome.samples >= 3  # written as the session ran
    if case.fault is None:
        assert outcome.faults == [], outcome.printed
        assert WORDS[fault] in outcome.printed, outcome.printed
    else:
        assert case.fault in outcome.faults, outcome.printed
        assert f"fault ({case.fault})" in outcome.printed, outcome.printed
