"""The record-keeping commands: ``clients``, ``next``, ``history``, ``export``, ``outcome``,
and the recording of a headless ``run --client NAME``.

Which runs are recorded: every real ``run`` (unattended or not) is recorded to the records file
(``--db`` or the platform data directory), under ``--client NAME`` when given and under no
client otherwise. A session without a client shows in ``history`` and can be exported but
never counts for anyone's progression. Rehearsals (``--rehearse``) run on the virtual clock
with nobody on the belt and are never recorded. With ``--client`` the records must open, or
the run does not start; without it, a records file that cannot be opened is reported and the
run goes on unrecorded.

The records, the progression and the exporters are imported by the commands that use them, not
here: ``retrotread --help``, ``programs`` and ``check`` start without them.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from retrotread.options import DEFAULT_DEVICE, RecordOptions
from retrotread.recording import OUTCOME_CHOICES

if TYPE_CHECKING:
    from retrotread.export import Format
    from retrotread.progression import NextSession
    from retrotread.store import Client, SessionRecord, Store

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

COMMANDS = ("clients", "next", "history", "export", "outcome")
MAX_SESSION_NUMBER = 2**63 - 1

#: the formats `export` writes (retrotread.export.Format's values)
EXPORT_FORMATS = ("csv", "tcx", "fit")


def db_target(text: str) -> Path | str:
    """A records file's path, or a database URL kept as written (a Path would fold its //)."""
    return text if "://" in text else Path(text).expanduser()


def _db_option(parser: argparse.ArgumentParser, *, nested: bool = False) -> None:
    parser.add_argument(
        "--db",
        metavar="PATH",
        type=db_target,
        # on a nested command (`clients add`), unset must not undo `clients --db PATH add`
        default=argparse.SUPPRESS if nested else None,
        help=f"records file or postgresql:// URL (default: {default_db_path_hint()})",
    )


def default_db_path_hint() -> str:
    return "retrotread.sqlite3 in the platform data directory"


def add_recording_options(run_parser: argparse.ArgumentParser) -> None:
    """``run --client NAME --db PATH``."""
    run_parser.add_argument(
        "--client",
        metavar="NAME",
        help="record the session for this client (see `retrotread clients`)",
    )
    _db_option(run_parser)
    run_parser.add_argument(
        "--no-record",
        action="store_true",
        help="play without recording the session (never with --client)",
    )


def add_commands(commands: Subparsers) -> None:
    clients = commands.add_parser(
        "clients",
        help="list clients, or add one",
        description="List the clients with their session count and next session, "
        "or add a client with `clients add NAME`.",
    )
    _db_option(clients)
    clients_sub = clients.add_subparsers(dest="clients_command", metavar="ACTION")
    add = clients_sub.add_parser("add", help="add a client")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--note", default="", help="a note about the client")
    _db_option(add, nested=True)

    next_parser = commands.add_parser(
        "next",
        help="the client's next session in the retro-walk progression, and why",
        description="Print the next session for a client and the rule that chose it; "
        "--start plays it (like `run`).",
    )
    next_parser.add_argument("--client", metavar="NAME", required=True)
    next_parser.add_argument("--start", action="store_true", help="play the session now")
    next_parser.add_argument("--device", default=None, metavar="URL", help="device URL (sim://)")
    next_parser.add_argument(
        "--unattended", action="store_true", help="with --start: no person's go needed"
    )
    next_parser.add_argument(
        "--rehearse",
        action="store_true",
        help="with --start: play it on the virtual clock and simulator (not recorded)",
    )
    next_parser.add_argument("--quiet", action="store_true", help="with --start: summary only")
    from retrotread.speech.options import add_speech_options

    add_speech_options(next_parser)  # --start plays it like `run`: --mute, --voice...
    _db_option(next_parser)

    history = commands.add_parser("history", help="recorded sessions as a table")
    history.add_argument("--client", metavar="NAME", help="only this client's sessions")
    history.add_argument(
        "--limit", type=_at_least_one, default=None, metavar="N", help="the last N only"
    )
    _db_option(history)

    export = commands.add_parser(
        "export",
        help="export a recorded session to CSV, TCX or FIT",
        description="Write a session's samples and blocks as CSV, or as a TCX or FIT activity "
        "that Garmin Connect and Strava import.",
    )
    export.add_argument("session", metavar="SESSION", help="session number, or 'last'")
    export.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default=None,
        help="file format (default: from the output name, else csv)",
    )
    export.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="PATH",
        help="the file to create (its extension names the format); '-' writes to stdout",
    )
    export.add_argument("--force", action="store_true", help="replace PATH if it exists")
    _db_option(export)

    outcome = commands.add_parser(
        "outcome",
        help="record how a session went (progression counts on it)",
        description="Record the operator's outcome for a session: completed, pain, "
        "lost-balance, dizziness or cannot-move (cannot move properly). A session counts "
        "toward the progression only when its outcome is recorded. A changed outcome keeps "
        "the earlier one in `history`.",
    )
    outcome.add_argument(
        "session",
        metavar="SESSION",
        help="session number, or 'last' (the named client's last with --client)",
    )
    outcome.add_argument("--client", metavar="NAME", help="with 'last': this client's last")
    outcome.add_argument("outcome", choices=list(OUTCOME_CHOICES), metavar="OUTCOME")
    outcome.add_argument("--note", default="", help="a note for the record")
    _db_option(outcome)


def run_command(args: argparse.Namespace) -> int:
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "clients": cmd_clients,
        "next": cmd_next,
        "history": cmd_history,
        "export": cmd_export,
        "outcome": cmd_outcome,
    }
    return handlers[args.command](args)


# -- helpers -------------------------------------------------------------------------------------


def record_options(args: argparse.Namespace) -> RecordOptions:
    """``--client`` and ``--db`` as options (for the commands that play a session)."""
    return RecordOptions(
        client=getattr(args, "client", None),
        db=getattr(args, "db", None),
        enabled=not getattr(args, "no_record", False),
    )


def open_store(args: argparse.Namespace, *, read_only: bool = False) -> Store:
    """The records a command names. A command that only reads never creates a file: a
    mistyped ``--db`` is an error, not an empty history (the default file, in retrotread's own
    data directory, is created on first use whatever the command)."""
    from retrotread.store import Store

    target = getattr(args, "db", None)
    return Store.open(target, read_only=read_only and target is not None)


def _when(at: float | None) -> str:
    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M") if at else "—"


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"N must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"N must be 1 or more, got {value} (leave --limit out to list every session)"
        )
    return value


def _session_arg(store: Store, spec: str, client_name: str | None = None) -> SessionRecord:
    from retrotread.store import StoreError

    if spec.lower() == "last":
        client = store.client(client_name) if client_name else None
        if client is None:
            named = sorted({r.client for r in store.sessions() if r.client})
            if len(named) > 1:
                raise StoreError(
                    f"'last' is whose? Sessions for {', '.join(named)} are recorded here: "
                    "name the client with --client NAME, or give the session number"
                )
        found = store.sessions(client, limit=1)
        if not found:
            whose = f" for {client.name}" if client else ""
            raise StoreError(f"no sessions recorded{whose} in {store.location}")
        return found[0]
    if client_name:
        record = store.session(_session_number(spec))
        if (record.client or "").casefold() != client_name.casefold():
            whose = record.client or "no client"
            raise StoreError(f"session #{record.id} is {whose}'s, not {client_name}'s")
        return record
    return store.session(_session_number(spec))


def _session_number(spec: str) -> int:
    from retrotread.store import StoreError

    try:
        number = int(spec.lstrip("#"))
    except ValueError:
        raise StoreError(f"SESSION must be a number or 'last', got {spec!r}") from None
    if not 1 <= number <= MAX_SESSION_NUMBER:  # SQLite's integers end there
        raise StoreError(f"no session #{number}: sessions are numbered from 1, as history lists")
    return number


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    from retrotread.text import printable  # records written before names were checked

    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        parts = [
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


# -- clients -------------------------------------------------------------------------------------


def cmd_clients(args: argparse.Namespace) -> int:
    from retrotread.clinic import records as clinic_records  # feelings and limits

    with open_store(args, read_only=args.clients_command is None) as store:
        if args.clients_command == "add":
            client = store.add_client(args.name, args.note)
            print(f"added client {client.name!r} ({store.location})")
            return 0
        summaries = store.clients()
        if not summaries:
            print(f"no clients yet in {store.location}; add one with: retrotread clients add NAME")
            return 0
        rows = []
        for summary in summaries:
            planned = clinic_records.next_session(store, summary.client)
            rows.append(
                [
                    summary.client.name,
                    str(summary.sessions),
                    _when(summary.last_session_at),
                    planned.stage.describe(),
                    summary.client.note,
                ]
            )
        print(_table(["client", "sessions", "last session", "next", "note"], rows, {1}))
        return 0


# -- next ----------------------------------------------------------------------------------------


def describe_next(client: Client, planned: NextSession) -> str:
    from retrotread.program import format_duration

    program = planned.program
    return "\n".join(
        [
            f"Next for {client.name}: {planned.stage.describe()}",
            f"Why: {planned.reason}",
            f"Program: {program.name} — {format_duration(program.total_s)} total, "
            f"{format_duration(program.retro_s)} backward, {len(program.steps)} blocks",
        ]
    )


def cmd_next(args: argparse.Namespace) -> int:
    from retrotread.clinic import records as clinic_records  # feelings and limits

    with open_store(args, read_only=True) as store:
        client = store.client(args.client)
        planned = clinic_records.next_session(store, client)
    print(describe_next(client, planned))
    if not args.start:
        again = ["retrotread", "next", "--client", client.name, "--start"]
        again += ["--db", str(args.db)] if args.db else []
        print(f"Play it with: {shlex.join(again)}")
        return 0
    from retrotread.options import RunOptions
    from retrotread.playback import run_headless
    from retrotread.speech.options import settings_from_args

    if args.rehearse:
        print("Rehearsing it on the simulator: a rehearsal is not recorded.")
    options = RunOptions(
        program=planned.program.name,
        device=args.device or DEFAULT_DEVICE,
        rehearse=args.rehearse,
        unattended=args.unattended,
        quiet=args.quiet,
        speech=None if args.mute else settings_from_args(args),
        record=RecordOptions(client=client.name, db=args.db),
        plan=planned,
    )
    return run_headless(options, planned.program)


# -- history -------------------------------------------------------------------------------------


def cmd_history(args: argparse.Namespace) -> int:
    from retrotread.program import format_duration
    from retrotread.store import Status

    with open_store(args, read_only=True) as store:
        client = store.client(args.client) if args.client else None
        records = store.sessions(client, limit=args.limit)
        trails = {r.id: outcome_trail(store, r.id) for r in records if r.outcome}
    if not records:
        whose = f" for {client.name}" if client else ""
        print(f"no sessions recorded{whose}")
        return 0
    rows = [
        [
            f"#{r.id}",
            _when(r.started_at),
            r.client or "—",
            r.program,
            r.status.value,
            _outcome_cell(r, trails.get(r.id, [])),
            f"{r.interval_s} s" if r.interval_s else "—",
            format_duration(r.retro_s),
            f"{r.blocks_done}/{r.blocks_total}",
            f"{r.distance_m:.0f} m",
        ]
        for r in records
    ]
    headers = [
        "session",
        "started",
        "client",
        "program",
        "ended",
        "outcome",
        "interval",
        "retro",
        "blocks",
        "distance",
    ]
    print(_table(headers, rows, {6, 7, 8, 9}))
    if client is not None and len(records) > 1:
        most = max(r.retro_s for r in records)
        line = sparkline([r.retro_s for r in records])
        print(f"retro time per session: {line}  (most {format_duration(most)})")
    running = [r for r in records if r.status is Status.RUNNING]
    if running:
        print(f"{len(running)} session(s) still running in another process")
    return 0


def _outcome_cell(record: SessionRecord, trail: list[str]) -> str:
    """'pain', or 'completed (was pain)' when the outcome was changed."""
    if record.outcome is None:
        return "—"
    said = [t.split(":", 1)[0] for t in trail]
    earlier = [o for i, o in enumerate(said[:-1]) if said[i + 1] != o]  # each change, in order
    if not earlier:
        return record.outcome.value
    return f"{record.outcome.value} (was {', then '.join(earlier)})"


BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """One character per value, its height proportional to the value (zero: a space)."""
    top = max(values, default=0.0)
    if top <= 0:
        return " " * len(values)
    return "".join(
        " " if v <= 0 else BARS[min(len(BARS) - 1, int(v / top * (len(BARS) - 1) + 0.5))]
        for v in values
    )


# -- export --------------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    from retrotread.export import export_session, load, render

    output: Path | None = args.output
    to_stdout = output is not None and str(output) == "-"
    fmt = _export_format(args.format, None if to_stdout else output)
    if to_stdout and fmt.value == "fit" and sys.stdout.isatty():
        from retrotread.store import StoreError

        raise StoreError("FIT is binary: redirect it to a file (-o - > session.fit)")
    with open_store(args, read_only=True) as store:
        record = _session_arg(store, args.session)
        if to_stdout:
            payload = render(load(store, record.id), fmt)
            sys.stdout.flush()
            sys.stdout.buffer.write(payload)
            sys.stdout.buffer.flush()
            return 0
        if output is None:
            stamp = datetime.fromtimestamp(record.started_at).strftime("%Y%m%d-%H%M")
            output = Path(f"retrotread-{record.id}-{stamp}.{fmt.value}")
        written = export_session(store, record.id, fmt, output, force=args.force)
    print(f"session #{record.id} written to {written} ({fmt.value.upper()})")
    return 0


def _export_format(asked: str | None, output: Path | None) -> Format:
    """``--format``, else the output's extension, else CSV; an extension that names no format
    (without --format) or another one than --format is a mistake, not a guess."""
    from retrotread.export import Format, format_for
    from retrotread.store import StoreError

    named = format_for(output) if output is not None else None
    formats = ", ".join(f".{f.value}" for f in Format)
    if asked is None:
        if output is not None and output.suffix and named is None:
            raise StoreError(
                f"{output}: export writes {formats}, not {output.suffix}; name the file so, "
                "or give --format"
            )
        return named or Format.CSV
    fmt = Format(asked)
    if named is not None and named is not fmt:
        raise StoreError(
            f"{output} ends in {output.suffix if output else ''} but --format is {fmt.value}; "
            "make them agree"
        )
    return fmt


# -- outcome -------------------------------------------------------------------------------------


def outcome_trail(store: Store, session_id: int) -> list[str]:
    """Every outcome recorded for a session, oldest first (an overwrite keeps the earlier)."""
    return [e.detail for e in store.events(session_id) if e.kind == "outcome"]


def cmd_outcome(args: argparse.Namespace) -> int:
    from retrotread.clinic import records as clinic_records  # feelings and limits
    from retrotread.progression import OperatorOutcome
    from retrotread.store import Status, StoreError

    outcome = OperatorOutcome(OUTCOME_CHOICES[args.outcome])
    with open_store(args) as store:
        record = _session_arg(store, args.session, args.client)
        if record.status is Status.RUNNING:
            raise StoreError(
                f"session #{record.id} is still running: record how it went when it has ended"
            )
        store.record_outcome(record.id, outcome, args.note)
        who = f" for {record.client}" if record.client else ""
        was = ""
        if record.outcome is not None and record.outcome is not outcome:
            was = f", was {record.outcome.value} (both kept in the history)"
        print(f"session #{record.id}: outcome {outcome.value}{who}{was}")
        if record.client:
            client = store.client(record.client)
            planned = clinic_records.next_session(store, client)
            print(f"next for {client.name}: {planned.stage.describe()} — {planned.reason}")
    return 0
