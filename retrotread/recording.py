"""Recording a session that a person plays (``run``, the console, the served console): open
the records before the belt moves, attach the recorder, and after the run say where it went
and ask how it went.

Which runs are recorded: every real run (unattended or not) goes to the records file (``--db``
or the platform data directory), under its client when one is named and under no client
otherwise. A session without a client shows in ``history`` and can be exported but never
counts for anyone's progression. Rehearsals run on the virtual clock with nobody on the belt
and are never recorded. With a client the records must open, or the run does not start;
without one, a records file that cannot be opened is reported and the run goes on unrecorded.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from retrotread.options import RecordOptions

if TYPE_CHECKING:  # the records load when a run records, not for `retrotread --help`
    from retrotread.events import SessionHandle, SessionSummary
    from retrotread.progression import NextSession, OperatorOutcome
    from retrotread.store import Client, SessionRecorder, Store

#: `outcome` on the command line -> OperatorOutcome's value
OUTCOME_CHOICES = {
    "completed": "completed",
    "pain": "pain",
    "lost-balance": "lost balance",
    "dizziness": "dizziness",
    "cannot-move": "cannot move properly",
}
#: the key the operator types after a run -> OperatorOutcome's value
OUTCOME_KEYS = {
    "c": "completed",
    "p": "pain",
    "b": "lost balance",
    "d": "dizziness",
    "m": "cannot move properly",
}
OUTCOME_USAGE = "|".join(OUTCOME_CHOICES)


def open_store(record: RecordOptions) -> Store:
    from retrotread.store import Store

    return Store.open(record.db)


class Recording:
    """The store, client and plan for one headless ``run``; attaches a recorder to it."""

    def __init__(
        self, store: Store, client: Client | None, planned: NextSession | None = None
    ) -> None:
        self.store = store
        self.client = client
        self.planned = planned
        self.recorder: SessionRecorder | None = None

    def attach(self, session: SessionHandle) -> None:
        from retrotread.store import SessionRecorder

        self.recorder = SessionRecorder(
            self.store,
            session,
            client=self.client,
            program_toml=self.planned.toml if self.planned else None,
            plan_reason=self.planned.reason if self.planned else "",
        )
        session.subscribe(self.recorder)

    def conclude(self, summary: SessionSummary, *, ask: bool) -> None:
        """After the run: say where it was recorded, and ask the operator how it went."""
        recorder = self.recorder
        try:
            if recorder is None or not recorder.started:
                return
            unwritten = recorder.finish()  # a bounded wait for the last records
            session_id = recorder.session_id
            who = f" for {self.client.name}" if self.client else ""
            if session_id is None:
                print(
                    f"this session{who} could not be recorded in {self.store.location}: "
                    f"{unwritten.describe()}",
                    file=sys.stderr,
                )
                return
            if unwritten or recorder.failed:
                detail = unwritten.describe() if unwritten else "see the log"
                print(f"session #{session_id}{who} was only partly recorded ({detail})")
                return
            print(f"recorded as session #{session_id}{who} in {self.store.location}")
            if self.client is None:
                return
            if ask and summary.blocks_done > 0:
                outcome, note = ask_outcome()
                if outcome is not None:
                    self.store.record_outcome(session_id, outcome, note)
                    print(f"outcome recorded: {outcome.value}")
                    return
            print(f"record how it went with: retrotread outcome {session_id} {OUTCOME_USAGE}")
        finally:
            self.store.close()


def ask_outcome() -> tuple[OperatorOutcome | None, str]:
    from retrotread.progression import OperatorOutcome

    prompt = (
        "How did it go? [c]ompleted, [p]ain, lost [b]alance, [d]izziness, cannot [m]ove "
        "properly, Enter to skip: "
    )
    while True:
        print(prompt, end="", flush=True)
        answer = sys.stdin.readline()
        if not answer.strip():
            return None, ""
        key = OUTCOME_KEYS.get(answer.strip().lower()[:1])
        if key is not None:
            outcome = OperatorOutcome(key)
            break
    print("Note (optional, Enter to skip): ", end="", flush=True)
    return outcome, sys.stdin.readline().strip()


def open_recording(
    record: RecordOptions, *, rehearse: bool = False, planned: NextSession | None = None
) -> Recording | None:
    """Before a run: open the records (and find the client) so a mistake stops the run early."""
    from retrotread.errors import RetrotreadError
    from retrotread.store import StoreError

    if not record.enabled:
        if record.client:
            raise StoreError(
                "a session for a client is always recorded (it counts toward the "
                "progression): drop --no-record, or drop --client"
            )
        return None
    if rehearse:
        if record.client and planned is None:
            raise StoreError(
                "a rehearsal runs on the virtual clock with nobody on the belt and is not "
                "recorded: drop --client, or drop --rehearse to play it for real"
            )
        return None
    try:
        store = open_store(record)
    except RetrotreadError as err:
        if record.client or record.db is not None:
            # Records the operator asked for: they choose before the belt moves.
            raise StoreError(
                f"{err}\nnothing was started: record elsewhere with --db PATH, or play it "
                "unrecorded with --no-record" + (" (and without --client)" if record.client else "")
            ) from None
        print(f"retrotread: not recording this run: {err}", file=sys.stderr)
        return None
    try:
        client = store.client(record.client) if record.client else None
    except StoreError:
        store.close()
        raise
    return Recording(store, client, planned)
