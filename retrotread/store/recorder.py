"""The session recorder: a session listener that turns events into records as the session runs
and queues them for the store's writer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from retrotread.clinic.heart import HeartRateSample
from retrotread.events import (
    BlockExtended,
    BlockSkipped,
    BlockStarted,
    CommandConfirmed,
    CommandIssued,
    CommandUnconfirmed,
    Countdown,
    CueDue,
    Event,
    Fault,
    Notice,
    Paused,
    ProgramFinished,
    ProgramStarted,
    ProgramStopped,
    Resumed,
    SessionEnded,
    SessionHandle,
    TelemetryReceived,
    Tick,
)
from retrotread.progression import OperatorOutcome
from retrotread.store.model import BlockRecord, Client, EventRecord, Sample, Status, StoreError
from retrotread.store.repository import Store
from retrotread.store.writer import Backlog, SessionKey
from retrotread.store.writes import (
    SESSION_ID,
    Values,
    block_values,
    event_values,
    sample_values,
    session_values,
)
from retrotread.units import format_number
from retrotread.vocabulary import Outcome

log = logging.getLogger(__name__)

# -- recording a session as it runs --------------------------------------------------------------

_STATUS_FOR_OUTCOME = {
    Outcome.COMPLETED: Status.COMPLETED,
    Outcome.UNCONFIRMED: Status.UNCONFIRMED,
    Outcome.STOPPED: Status.STOPPED,
    Outcome.INTERRUPTED: Status.INTERRUPTED,
    Outcome.FAULT: Status.FAULT,
}


def describe_event(event: Event) -> tuple[str, str] | None:
    """(kind, detail) for the events worth keeping; ticks, countdowns and telemetry are not."""
    match event:
        case BlockStarted(step=step):
            return "block", f"{step.index + 1} {step.kind.value} {step.title}: {step.cue}"
        case CueDue(step=step, in_s=seconds):
            return "cue", f"next in {seconds} s: {step.kind.value} {step.title}: {step.cue}"
        case Paused(reason=reason):
            return "paused", reason
        case Resumed():
            return "resumed", ""
        case BlockSkipped(step=step):
            return "skipped", step.title
        case BlockExtended(step=step, seconds=seconds):
            return "extended", f"+{seconds} s on {step.title}"
        case CommandIssued(command=command, value=value, adjusted_from=asked):
            shown = f" {value}" if value is not None else ""
            extra = f" (asked {asked})" if asked is not None else ""
            return "command", f"{command}{shown}{extra}"
        case CommandConfirmed(command=command, value=value, latency_s=latency):
            shown = f" {value}" if value is not None else ""
            return "confirmed", f"{command}{shown} in {latency:.1f} s"
        case CommandUnconfirmed(command=command, reason=reason):
            return "unconfirmed", f"{command}: {reason}"
        case Fault(kind=kind, message=message, fatal=fatal):
            return "fault", f"{kind}{' (fatal)' if fatal else ''}: {message}"
        case Notice(message=message):
            return "notice", message
        case ProgramFinished(blocks_done=done):
            return "finished", f"{done} blocks"
        case ProgramStopped(reason=reason, detail=detail):
            return "stopped", f"{reason.value}{': ' + detail if detail else ''}"
        case SessionEnded(outcome=outcome, detail=detail, belt_stopped=stopped):
            belt = "belt stopped" if stopped else "belt NOT confirmed stopped"
            return "ended", f"{outcome}: {detail}; {belt}"
    return None


class SessionRecorder:
    """A session listener that records the session in a :class:`Store` as it runs.

    Subscribe it before ``session.run()``. Each event is turned into records and queued for
    the store's :class:`RecordWriter`; nothing here waits for the file, so recording never
    delays a command. While the file cannot be written the session is told once (a
    :class:`~retrotread.events.Notice`) and again when the records have caught up. After the
    run, :meth:`finish` waits a bounded time for the last records and says what is left.
    """

    def __init__(
        self,
        store: Store,
        session: SessionHandle,
        *,
        client: Client | None = None,
        program_toml: str | None = None,
        plan_reason: str = "",
    ) -> None:
        self.store = store
        self.session = session
        self.client = client
        self.program_toml = program_toml
        self.plan_reason = plan_reason
        self.failed = False  # the record is incomplete (a write failed for good, or overflow)
        self._key: SessionKey | None = None
        self._program_started: ProgramStarted | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ended = False
        self._unsubscribe: Callable[[], None] | None = None
        self._wall_origin = 0.0
        self._clock_origin = 0.0
        self._block: tuple[int, float] | None = None  # (index, program elapsed at its start)
        self._blocks_done = 0
        self._retro_s = 0.0
        self._distance_m = 0.0

    @property
    def started(self) -> bool:
        """True once the program started (its session row is queued or written)."""
        return self._key is not None

    @property
    def session_id(self) -> int | None:
        """The session's number in the file; None if the program never started.

        Reading it waits (at most the store's ``settle_timeout_s``) for the session row to be
        written; it stays None while the file cannot be written.
        """
        key = self._key
        if key is None:
            return None
        if key.id is None:
            return self.store.writer.wait_written(key, self.store.settle_timeout_s)
        return key.id

    def __call__(self, event: Event) -> None:
        if isinstance(event, Tick | Countdown):
            return
        self._record(event)

    def finish(self, timeout_s: float | None = None) -> Backlog:
        """Wait (at most ``timeout_s``, default the store's ``flush_timeout_s``) for the records
        queued so far; returns what is still not written (empty when all is in the file)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._key is None:
            return Backlog({})
        writer = self.store.writer
        writer.wait_idle(self.store.flush_timeout_s if timeout_s is None else timeout_s)
        return writer.backlog()

    def record_outcome(self, outcome: OperatorOutcome | str, note: str = "") -> int:
        """The operator's outcome for this recorder's session (a summary screen's callback).

        ``outcome`` is an :class:`OperatorOutcome` or its value ("lost balance"). Returns the
        session number; raises :class:`StoreError` if the program never started.
        """
        if self._key is None:
            raise StoreError("the session never started: there is nothing to record it on")
        session_id = self.session_id
        if session_id is None:
            raise StoreError(
                f"the session is not in {self.store.path} yet "
                f"({self.store.writer.backlog().describe()}); record the outcome later with "
                "`retrotread outcome`"
            )
        self.store.record_outcome(session_id, OperatorOutcome(outcome), note)
        return session_id

    def wall(self, at: float) -> float:
        """Clock time of an event to wall-clock time."""
        return self._wall_origin + (at - self._clock_origin)

    # -- what the writer says, told to the session ----------------------------------------------

    def _on_writer(self, state: str, detail: str) -> None:
        """On the writer's thread: pass the news to the session, on its loop."""
        if state == "failed":
            self.failed = True
            message = f"the session is no longer being recorded: {detail}"
        elif state == "behind":
            writer = self.store.writer  # a file's writer keeps them in memory; a database's
            message = (  # in the console's spool
                f"{writer.target} cannot be written now ({detail}): the records are kept "
                f"{writer.holding} and written when it can be"
            )
        else:
            message = f"records caught up: {detail}"
        loop = self._loop
        if loop is None or self._ended:
            log.info("after the session: %s", message)
            return
        try:
            loop.call_soon_threadsafe(self._announce, message)
        except RuntimeError:  # the loop has closed: the session is over
            log.info("after the session: %s", message)

    def _announce(self, message: str) -> None:
        if not self._ended:
            self.session.notify(message)

    # -- events to records ---------------------------------------------------------------------

    def _submit(self, kind: str, values: Values) -> None:
        assert self._key is not None
        if not self.store.writer.submit(kind, self._key, values) and not self.failed:
            self.failed = True
            writer = self.store.writer
            if writer.failed:
                reason = writer.failed
            elif writer.closing:
                reason = "the records file is closed"
            else:
                waiting = f" ({writer.error})" if writer.error else ""
                reason = (
                    f"{writer.max_pending_samples} samples already wait in memory for the "
                    f"file{waiting}: newer ones are dropped"
                )
            log.error("recording the session: %s", reason)
            if not self._ended:
                self.session.notify(f"recording incomplete: {reason}")

    def _record(self, event: Event) -> None:
        if isinstance(event, ProgramStarted):
            # The session is recorded from its first block: a STOP before the go (or a
            # console closed before it) never moved the belt and is no session.
            self._program_started = event
            return
        if isinstance(event, BlockStarted) and self._key is None and self._program_started:
            self._begin(self._program_started)
        if self._key is None:  # before the first block (connecting, waiting for the go)
            return
        self._record_started(event)

    def _begin(self, event: ProgramStarted) -> None:
        self._loop = asyncio.get_running_loop()
        self._wall_origin, self._clock_origin = time.time(), event.at
        writer = self.store.writer
        self._unsubscribe = writer.subscribe(self._on_writer)
        values = session_values(
            self.client,
            event.program,
            self.session.state.device,
            self._wall_origin,
            self.program_toml,
            self.plan_reason,
        )
        self._key = writer.begin_session(values)

    def _record_started(self, event: Event) -> None:
        if isinstance(event, HeartRateSample):  # retrotread.clinic.heart, once a second
            if event.bpm is not None:
                offset = event.at - self._clock_origin
                self._submit("heart_rate", (SESSION_ID, self.wall(event.at), offset, event.bpm))
            return
        if isinstance(event, TelemetryReceived):
            self._distance_m = event.distance_m
            wanted = self.session.state.target_speed
            target = wanted.mph if wanted is not None else 0.0
            sample = Sample(
                at=self.wall(event.at),
                offset_s=event.at - self._clock_origin,
                block_idx=self._block[0] if self._block else None,
                target_mph=round(target, 4),
                speed_mph=round(event.speed.mph, 4),
                incline_pct=round(float(event.incline.value), 2),
                distance_m=event.distance_m,
            )
            self._submit("sample", sample_values(sample))
            return
        described = describe_event(event)
        if described is not None:
            record = EventRecord(self.wall(event.at), event.at - self._clock_origin, *described)
            self._submit("event", event_values(record))
        if isinstance(event, BlockStarted):
            self._close_block("done")
            step = event.step
            elapsed = self.session.state.program_elapsed_s
            self._block = (step.index, elapsed)
            speed = step.block.speed
            block = BlockRecord(
                idx=step.index,
                kind=step.kind.value,
                title=step.title,
                handrail=step.block.handrail.value,
                planned_s=step.duration_s,
                target_mph=float(format_number(speed.mph, 4)) if speed else None,
                incline_pct=float(step.block.incline.value),
                started_at=self.wall(event.at),
                start_offset_s=elapsed,
                actual_s=None,
                extended_s=0,
                result="running",
            )
            self._submit("block", block_values(block))
        elif isinstance(event, BlockSkipped):
            self._close_block("skipped")
        elif isinstance(event, BlockExtended) and self._block:
            self._submit("extend_block", (event.seconds, SESSION_ID, self._block[0]))
        elif isinstance(event, ProgramFinished):
            self._close_block("done")
        elif isinstance(event, ProgramStopped):
            self._close_block("stopped")
        elif isinstance(event, SessionEnded):
            status = _STATUS_FOR_OUTCOME[event.outcome]
            self._submit(
                "end_session",
                (
                    self.wall(event.at),
                    status.value,
                    event.detail,
                    self._distance_m,
                    int(event.belt_stopped),
                    SESSION_ID,
                ),
            )
            self._ended = True

    def _close_block(self, result: str) -> None:
        if self._block is None:
            return
        index, started = self._block
        elapsed = self.session.state.program_elapsed_s
        actual = max(0.0, elapsed - started)
        self._submit("end_block", (actual, result, SESSION_ID, index))
        if result != "stopped":
            self._blocks_done = index + 1
        if self.session.program.steps[index].kind.is_retro:
            self._retro_s += actual
        self._submit("progress", (self._blocks_done, self._retro_s, elapsed, SESSION_ID))
        self._block = None
