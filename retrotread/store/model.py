"""The rows the records hold, as Python values, and the one error the store raises."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime

from retrotread.errors import RetrotreadError
from retrotread.progression import OperatorOutcome, Phase, SessionEvidence


class StoreError(RetrotreadError):
    """The records cannot be read or written, or ask for something that is not there."""


class Status(enum.StrEnum):
    """How a recorded session ended (``running`` until it does)."""

    RUNNING = "running"
    COMPLETED = "completed"
    UNCONFIRMED = "unconfirmed"  # played to the end; the machine could not confirm it
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    FAULT = "fault"


# -- rows --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    id: int
    name: str
    note: str
    created_at: float


@dataclass(frozen=True)
class ClientSummary:
    client: Client
    sessions: int
    last_session_at: float | None


@dataclass(frozen=True)
class SessionRecord:
    id: int
    client: str | None
    program: str
    program_source: str
    program_toml: str | None
    device: str
    started_at: float
    ended_at: float | None
    status: Status
    detail: str
    phase: Phase | None
    interval_s: int
    handrail: str | None
    plan_reason: str
    blocks_total: int
    blocks_done: int
    retro_s: float
    elapsed_s: float
    distance_m: float
    belt_stopped: bool | None
    outcome: OperatorOutcome | None
    note: str

    @property
    def day(self) -> date:
        return datetime.fromtimestamp(self.started_at).date()

    def evidence(self) -> SessionEvidence:
        return SessionEvidence(
            day=self.day,
            phase=self.phase,
            interval_s=self.interval_s,
            finished=self.status is Status.COMPLETED,
            outcome=self.outcome,
            session_id=self.id,
        )


@dataclass(frozen=True)
class BlockRecord:
    idx: int
    kind: str
    title: str
    handrail: str
    planned_s: int
    target_mph: float | None
    incline_pct: float
    started_at: float
    start_offset_s: float
    actual_s: float | None
    extended_s: int
    result: str


@dataclass(frozen=True)
class Sample:
    at: float  # wall clock, seconds since the epoch
    offset_s: float  # seconds since the program started
    block_idx: int | None
    target_mph: float | None
    speed_mph: float
    incline_pct: float
    distance_m: float


@dataclass(frozen=True)
class EventRecord:
    at: float
    offset_s: float
    kind: str
    detail: str
