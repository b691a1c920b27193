"""The clinic's tables in the records (schema 3): a client's limits, how each walk felt, and the
heart rate recorded each second (written by the session recorder, through the writer).

Everything goes through :meth:`Store.execute`, so it works on a SQLite file and on PostgreSQL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace
from datetime import date

from retrotread.clinic.limits import ClientLimits
from retrotread.errors import RetrotreadError
from retrotread.program import Handrail, parse_program
from retrotread.progression import (
    LADDER,
    TOP,
    NextSession,
    Phase,
    SessionEvidence,
    Stage,
    plan_next,
    program_toml,
)
from retrotread.safety import HANDRAIL_SUPPORT
from retrotread.store import Client, Status, Store, StoreError

#: the whole session, in ``feelings.block_idx`` (a block's own feeling has its index)
WHOLE_SESSION = -1

#: Borg CR10: the anchors of the category-ratio scale
BORG_CR10 = {
    0.0: "nothing at all",
    0.5: "very, very light",
    1.0: "very light",
    2.0: "light",
    3.0: "moderate",
    4.0: "somewhat hard",
    5.0: "hard",
    7.0: "very hard",
    10.0: "very, very hard (maximal)",
}


class FeelingError(RetrotreadError):
    """A score outside its scale."""


@dataclass(frozen=True)
class Feeling:
    """How a walk (or one retro block) felt, as the client says and the operator records."""

    pain: int | None = None  # 0–10
    exertion: float | None = None  # Borg CR10, 0–10 (halves allowed)
    balance_losses: int | None = None
    handrail: Handrail | None = None  # the handrail level actually used
    block_idx: int = WHOLE_SESSION

    def __post_init__(self) -> None:
        if self.pain is not None and not 0 <= self.pain <= 10:
            raise FeelingError(f"pain {self.pain} is outside 0–10")
        if self.exertion is not None and not (
            0 <= self.exertion <= 10 and (self.exertion * 2).is_integer()
        ):
            raise FeelingError(
                f"exertion {self.exertion} is not on the Borg CR10 scale (0–10, in halves)"
            )
        if self.balance_losses is not None and self.balance_losses < 0:
            raise FeelingError("balance losses cannot be negative")

    @property
    def empty(self) -> bool:
        return replace(self, block_idx=WHOLE_SESSION) == Feeling()

    def describe(self) -> str:
        parts = []
        if self.pain is not None:
            parts.append(f"pain {self.pain}/10")
        if self.exertion is not None:
            anchor = BORG_CR10.get(self.exertion)
            parts.append(f"exertion {self.exertion:g}" + (f" ({anchor})" if anchor else ""))
        if self.balance_losses is not None:
            parts.append(f"{self.balance_losses} balance loss(es)")
        if self.handrail is not None:
            parts.append(f"handrails {self.handrail.value}")
        return ", ".join(parts) or "nothing recorded"


# -- limits --------------------------------------------------------------------------------------

_LIMIT_COLUMNS = [f.name for f in fields(ClientLimits)]


def limits(store: Store, client: Client) -> ClientLimits:
    row = store.execute(
        f"SELECT {', '.join(_LIMIT_COLUMNS)} FROM client_limits WHERE client_id = ?", (client.id,)
    ).fetchone()
    if row is None:
        return ClientLimits()
    return ClientLimits.from_row(dict(zip(_LIMIT_COLUMNS, row, strict=True)))


def set_limits(store: Store, client: Client, new: ClientLimits) -> None:
    row = new.as_row()
    store.execute("DELETE FROM client_limits WHERE client_id = ?", (client.id,))
    columns = ["client_id", *_LIMIT_COLUMNS, "updated_at"]
    store.execute(
        f"INSERT INTO client_limits ({', '.join(columns)}) VALUES "
        f"({', '.join('?' * len(columns))})",
        (client.id, *(row[c] for c in _LIMIT_COLUMNS), time.time()),
    )


# -- how it felt ---------------------------------------------------------------------------------


def record_feeling(store: Store, session_id: int, feeling: Feeling) -> None:
    """Record (or replace) how the session, or one of its blocks, felt."""
    record = store.session(session_id)
    if record.status is Status.RUNNING:
        raise StoreError(f"session #{session_id} is still running: record how it felt after it")
    store.execute(
        "DELETE FROM feelings WHERE session_id = ? AND block_idx = ?",
        (session_id, feeling.block_idx),
    )
    store.execute(
        "INSERT INTO feelings (session_id, block_idx, pain, exertion, balance_losses, handrail, "
        "at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            session_id,
            feeling.block_idx,
            feeling.pain,
            feeling.exertion,
            feeling.balance_losses,
            feeling.handrail.value if feeling.handrail else None,
            time.time(),
        ),
    )


def feelings(store: Store, session_id: int) -> list[Feeling]:
    """The session's feeling first (if recorded), then its blocks' in order."""
    rows = store.execute(
        "SELECT block_idx, pain, exertion, balance_losses, handrail FROM feelings "
        "WHERE session_id = ? ORDER BY block_idx",
        (session_id,),
    ).fetchall()
    return [
        Feeling(
            pain=pain,
            exertion=exertion,
            balance_losses=losses,
            handrail=Handrail(handrail) if handrail else None,
            block_idx=idx,
        )
        for idx, pain, exertion, losses, handrail in rows
    ]


def session_feeling(store: Store, session_id: int) -> Feeling | None:
    """One feeling for the session: its own, else the worst of its blocks'."""
    found = feelings(store, session_id)
    if not found:
        return None
    whole = [f for f in found if f.block_idx == WHOLE_SESSION]
    if whole:
        return whole[0]
    pains = [f.pain for f in found if f.pain is not None]
    efforts = [f.exertion for f in found if f.exertion is not None]
    losses = [f.balance_losses for f in found if f.balance_losses is not None]
    return Feeling(
        pain=max(pains) if pains else None,
        exertion=max(efforts) if efforts else None,
        balance_losses=sum(losses) if losses else None,
    )


# -- heart rate ----------------------------------------------------------------------------------


def heart_rate(store: Store, session_id: int) -> list[tuple[float, int]]:
    """(seconds since the program started, bpm), each second the strap was read."""
    rows = store.execute(
        "SELECT offset_s, bpm FROM heart_rate WHERE session_id = ? ORDER BY at",
        (session_id,),
    ).fetchall()
    return [(float(offset), int(bpm)) for offset, bpm in rows]


def heart_rate_by_second(store: Store, session_id: int) -> dict[int, int]:
    """Whole wall-clock second -> bpm, for the exports (one reading a second)."""
    rows = store.execute(
        "SELECT at, bpm FROM heart_rate WHERE session_id = ? ORDER BY at", (session_id,)
    ).fetchall()
    return {int(at): int(bpm) for at, bpm in rows}


# -- progression with the feelings ---------------------------------------------------------------


def evidence(store: Store, client: Client) -> list[SessionEvidence]:
    """The client's sessions as progression sees them, with how each felt."""
    found = []
    for item in store.evidence(client):
        felt = session_feeling(store, item.session_id) if item.session_id else None
        if felt is not None:
            item = replace(
                item,
                pain=felt.pain,
                exertion=felt.exertion,
                balance_losses=felt.balance_losses,
            )
        found.append(item)
    return found


def next_session(store: Store, client: Client, today: date | None = None) -> NextSession:
    """The client's next session, counting how the walks felt, within their limits."""
    planned = plan_next(evidence(store, client), today or date.today())
    return within_limits(planned, limits(store, client), client.name)


def within_limits(planned: NextSession, chosen: ClientLimits, who: str) -> NextSession:
    """The planned session, held back where the client's limits say so (and why)."""
    stage, why = planned.stage, []
    if stage.phase is Phase.RUN and not chosen.retro_run:
        stage = Stage(Phase.WALK, TOP, LADDER[TOP].handrail)
        why.append(f"retro-running is not allowed for {who}: keep the two-minute walk")
    longest = chosen.longest_backward_s
    if longest is not None and stage.seconds > longest:
        fitting = [i for i, rung in enumerate(LADDER) if rung.seconds <= longest]
        if fitting:
            stage = replace(stage, rung=fitting[-1], handrail=LADDER[fitting[-1]].handrail)
            why.append(f"{who}'s limit of {longest} s backward: intervals of {stage.seconds} s")
    if chosen.handrail is not None and HANDRAIL_SUPPORT.index(
        stage.handrail
    ) > HANDRAIL_SUPPORT.index(chosen.handrail):
        stage = replace(stage, handrail=chosen.handrail)
        why.append(f"{who}'s handrail limit: {chosen.handrail.cue}")
    if not why:
        return planned
    toml = program_toml(stage)
    program = parse_program(toml, f"<progression {stage.phase.value} {stage.seconds}s>")
    return NextSession(
        stage, f"{planned.reason}; within the limits: {'; '.join(why)}", program, toml
    )
