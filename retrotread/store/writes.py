"""What each kind of session record writes: its statement, and its values from the rows.

Shared by the store's direct writes and the session writer's thread; the session's number goes
where :data:`SESSION_ID` stands, once the session row is written.
"""

from __future__ import annotations

import os
import socket

from retrotread.program import Program
from retrotread.progression import retro_content
from retrotread.store.model import BlockRecord, Client, EventRecord, Sample, Status

INSERT_SESSION = (
    "INSERT INTO sessions (client_id, program, program_source, program_toml, device, "
    "started_at, status, phase, interval_s, handrail, plan_reason, blocks_total, pid, host, "
    "uid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

#: The statement for each kind of record; the session's id goes where ``SESSION_ID`` is.
WRITES: dict[str, str] = {
    "sample": "INSERT INTO samples (session_id, at, offset_s, block_idx, target_mph, speed_mph, "
    "incline_pct, distance_m) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    "event": "INSERT INTO events (session_id, at, offset_s, kind, detail) VALUES (?, ?, ?, ?, ?)",
    "block": "INSERT INTO blocks (session_id, idx, kind, title, handrail, planned_s, "
    "target_mph, incline_pct, started_at, start_offset_s, actual_s, extended_s, result) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id, idx) DO UPDATE SET "
    "kind = excluded.kind, title = excluded.title, handrail = excluded.handrail, "
    "planned_s = excluded.planned_s, target_mph = excluded.target_mph, "
    "incline_pct = excluded.incline_pct, started_at = excluded.started_at, "
    "start_offset_s = excluded.start_offset_s, actual_s = excluded.actual_s, "
    "extended_s = excluded.extended_s, result = excluded.result",
    "end_block": "UPDATE blocks SET actual_s = ?, result = ? WHERE session_id = ? AND idx = ?",
    "extend_block": "UPDATE blocks SET extended_s = extended_s + ? WHERE session_id = ? "
    "AND idx = ?",
    "progress": "UPDATE sessions SET blocks_done = ?, retro_s = ?, elapsed_s = ? WHERE id = ?",
    "end_session": "UPDATE sessions SET ended_at = ?, status = ?, detail = ?, distance_m = ?, "
    "belt_stopped = ? WHERE id = ?",
    # retrotread.clinic.heart: the strap's reading, once a second
    "heart_rate": "INSERT INTO heart_rate (session_id, at, offset_s, bpm) VALUES (?, ?, ?, ?)",
}


class _SessionIdSlot:
    """Stands in a record's values for the id of a session row not yet written."""

    def __repr__(self) -> str:
        return "<session id>"


SESSION_ID = _SessionIdSlot()

Values = tuple[object, ...]


def bind(values: Values, session_id: int) -> Values:
    return tuple(session_id if v is SESSION_ID else v for v in values)


def session_values(
    client: Client | None,
    program: Program,
    device: str,
    started_at: float,
    program_toml: str | None,
    plan_reason: str,
) -> Values:
    phase, interval = retro_content(program)
    retro = [s.block.handrail for s in program.steps if s.kind.is_retro]
    return (
        client.id if client else None,
        program.name,
        program.source,
        program_toml,
        device,
        started_at,
        Status.RUNNING.value,
        phase.value if phase else None,
        interval,
        retro[0].value if retro else None,
        plan_reason,
        len(program.steps),
        os.getpid(),
        socket.gethostname(),
    )


def sample_values(sample: Sample) -> Values:
    return (
        SESSION_ID,
        sample.at,
        sample.offset_s,
        sample.block_idx,
        sample.target_mph,
        sample.speed_mph,
        sample.incline_pct,
        sample.distance_m,
    )


def event_values(event: EventRecord) -> Values:
    return (SESSION_ID, event.at, event.offset_s, event.kind, event.detail)


def block_values(block: BlockRecord) -> Values:
    return (
        SESSION_ID,
        block.idx,
        block.kind,
        block.title,
        block.handrail,
        block.planned_s,
        block.target_mph,
        block.incline_pct,
        block.started_at,
        block.start_offset_s,
        block.actual_s,
        block.extended_s,
        block.result,
    )
