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
from retrotread.drivers.sim import SimDriver
from retrotread.headless import HeadlessPrinter, format_summary
from retrotread.session import Session, SessionSummary
from retrotread.store import SessionRecorder, Status, Store
from retrotread.units import Quantity, Unit
from tests.helpers import retro_program


@dataclass(frozen=True)
class Case:
    plan: str
    #: what the operator must read (any one of these, in the printed output)
    says: tuple[str, ...]
    #: telemetry is gone, so retrotread cannot confirm the stop (and says so)
    blind: bool = False


FAULTS = {
    "stale": Case("stale@30", ("telemetry-stale", "telemetry stopped arriving"), blind=True),
    "freeze": Case("freeze@30", ("telemetry-frozen", "telemetry-stale"), blind=True),
    "ignore": Case("ignore:set-speed@15", ("command-timeout", "link-lost")),
    "late": Case("late:set-speed=1@15", ("▶ test",)),  # survivable: the program simply runs
    "reject-invalid": Case("reject:set-speed=invalid-parameter@15", ("invalid parameter",)),
    "reject-failed": Case("reject:set-speed=failed@15", ("operation failed",)),
    "reject-unsupported": Case("reject:set-speed=not-supported@15", ("not supported",)),
    "drop": Case("drop@15+10", ("link-lost", "link lost")),
    "safety-key": Case("safety-key@15", ("safety key",)),
    "console-stop": Case("console-stop@15", ("stopped at the treadmill console",)),
    "console-pause": Case("console-pause@15", ("paused at the treadmill console",)),
    "console-speed": Case("console-speed=6.0@15", ("speed changed at the console",)),
    "slow-ramp": Case("slow-ramp=0.2", ("not confirmed",)),
    "mph-field": Case("mph-field", ("overspeed",)),
}

LINKS = {"inprocess": "sim://?", "ble": "sim://?link=ble&"}


@dataclass
class Outcome:
    summary: SessionSummary
    printed: str
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
        step = session.scheduler.current
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
        assert isinstance(driver, SimDriver)
        session = Session(retro_program([20, 20, 20]), driver, clock, unattended=True)
        out = io.StringIO()
        session.subscribe(HeadlessPrinter(session, out, periodic_status=False))
        store = Store.open(db)
        recorder = SessionRecorder(store, session)
        session.subscribe(recorder)
        violations: list[str] = []
        guard(session, violations)
        summary = await asyncio.wait_for(session.run(), timeout=3600)
        assert driver.machine is not None
        stopped = driver.machine.belt_stopped
        assert recorder.session_id is not None
        record = store.session(recorder.session_id)
        blocks = len(store.blocks(recorder.session_id))
        samples = len(store.samples(recorder.session_id))
        store.close()
        return Outcome(summary, out.getvalue(), violations, stopped, record.status, blocks, samples)

    return run(main(), virtual=True)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("link", list(LINKS))
def test_fault_matrix(link: str, fault: str, tmp_path: Path) -> None:
    case = FAULTS[fault]
    outcome = play(f"{LINKS[link]}faults={case.plan}", tmp_path / "records.db")
    assert outcome.violations == []
    assert outcome.belt_stopped, outcome.printed
    if case.blind:
        assert "NOT CONFIRMED STOPPED" in format_summary(outcome.summary)
    else:
        assert outcome.summary.belt_stopped
    assert outcome.status is not Status.RUNNING  # the record was closed with how it ended
    assert outcome.blocks >= 1 and outcome.samples >= 3  # written as the session ran
    assert any(text in outcome.printed for text in case.says), outcome.printed
