"""A session: one program played on one treadmill, from the person's go to a stopped belt.

The session joins the scheduler (what should happen when), the governor (what may be sent)
and a driver (what the machine does). It never lets the scheduler wait on the machine: at
each block it writes the *desired* belt state, and a command worker brings the machine there
one command at a time, confirming each against telemetry. A newer block simply replaces the
desired state, so commands never pile up behind a slow machine.

Whatever way the session ends — finished, STOP, a signal, a fault, an exception — ``run``
leaves through one ``finally`` that sends stop and waits briefly for the belt to halt.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from retrotread.clock import Clock
from retrotread.drivers.base import (
    BeltStatus,
    Command,
    MachineEvent,
    MachineEventKind,
    Report,
    Telemetry,
    Treadmill,
)
from retrotread.errors import (
    CommandRejected,
    CommandTimeout,
    DeviceError,
    LinkLost,
    Rejection,
    SafetyError,
)
from retrotread.events import (
    BlockStarted,
    CommandConfirmed,
    CommandIssued,
    CommandUnconfirmed,
    Countdown,
    Event,
    Fault,
    Listener,
    Notice,
    ProgramFinished,
    ProgramStopped,
    SessionEnded,
    StopProgress,
    StopReason,
    StopState,
    TelemetryReceived,
)
from retrotread.program.model import BlockKind, Program, Step
from retrotread.safety import Governor
from retrotread.scheduler import COUNTDOWN_FROM, EngineState, Scheduler
from retrotread.units import Quantity, Unit, format_number

log = logging.getLogger(__name__)

#: After the machine accepts stop, the belt must read still within this long.
STOP_WAIT_S = 5.0
#: The stop path asks again after this pause, doubling up to the maximum.
STOP_RETRY_FIRST_S = 0.5
STOP_RETRY_MAX_S = 5.0
#: A ramp step on a machine that reports no speed waits this long before the next.
BLIND_RAMP_STEP_S = 2.0
WATCH_INTERVAL_S = 0.5
#: Unattended, nobody can resume a held program: it ends after this long.
UNATTENDED_HOLD_LIMIT_S = 300.0
#: The belt running faster than commanded for this long is an overspeed fault.
OVERSPEED_GRACE_S = 2.0
#: A belt that was moving and reads zero this long without a command was stopped at the
#: machine (console or safety key), whether or not the protocol can say so.
STILL_GRACE_S = 2.0


#: Stop reasons that a signal gave (the session ends "interrupted").
SIGNAL_REASONS = frozenset(
    {StopReason.SIGNAL_INT, StopReason.SIGNAL_TERM, StopReason.SIGNAL_HUP, StopReason.SIGNAL_QUIT}
)


BLIND_NOTICE = (
    "this treadmill cannot report its belt (speed, stopped): retrotread cannot see a stop at "
    "the machine or confirm any block; watch the belt yourself"
)
BLIND_DETAIL = "played to the end; this treadmill cannot report its belt, so nothing confirmed it"


class Outcome(enum.StrEnum):
    COMPLETED = "completed"
    UNCONFIRMED = "unconfirmed"  # played to the end on a machine that cannot report its belt
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    FAULT = "fault"


class Belt(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


@dataclass
class Desired:
    belt: Belt = Belt.STOPPED
    speed: Quantity | None = None
    incline: Quantity | None = None


@dataclass(frozen=True)
class SessionSummary:
    program: str
    device: str
    outcome: Outcome
    reason: StopReason | None
    detail: str
    blocks_done: int
    blocks_total: int
    retro_s: float
    elapsed_s: float
    distance_m: float
    belt_stopped: bool


Go = Callable[[], Awaitable[bool]]


class Session:
    def __init__(
        self,
        program: Program,
        treadmill: Treadmill,
        clock: Clock,
        *,
        unattended: bool = False,
        go: Go | None = None,
        hold_limit_s: float = UNATTENDED_HOLD_LIMIT_S,
        allow_blind: bool = False,
    ) -> None:
        self.program = program
        #: How long an unattended hold lasts before the session ends, and how long the stop
        #: path keeps trying: a stop outlasts any silence the session itself would sit through.
        self.hold_limit_s = hold_limit_s
        #: Play unattended on a machine that cannot report its belt (an explicit opt-in).
        self.allow_blind = allow_blind
        self.treadmill = treadmill
        self.clock = clock
        self.profile = treadmill.profile
        self.unattended = unattended
        self.go = go
        self.scheduler = Scheduler(program, clock)
        self.governor: Governor | None = None
        self.desired = Desired()
        self.applied = Desired()
        self.holding: str | None = None  # why nothing may be sent (console stop, key, link)
        self.hold_kind: str | None = None  # the fault kind that began the hold
        self.nudge = Quantity.of(0, Unit.MPH)
        self.telemetry: Telemetry | None = None
        self._wake = asyncio.Event()
        self._confirm: asyncio.Task[None] | None = None
        self._reached = asyncio.Event()
        self._retro_s = 0.0
        self._block_elapsed_start = 0.0
        self._current: Step | None = None
        self.last_fault: Fault | None = None
        self.link_up = True
        self._held_at: float | None = None
        self._resume_when_stopped = False  # unattended, after the link came back
        self._stop_accepted = False  # the machine took our last stop (nothing sent since)
        self._stop_accepted_at = 0.0
        self._identity: str | None = None  # which machine we connected to, where it can say
        self._link_returned = asyncio.Event()
        self._telemetry_moved_at: float | None = None  # last record that differed
        self._overspeed_since: float | None = None
        self._seen_moving = False  # the belt has moved since the last start
        self._still_since: float | None = None  # ...and has read zero since then
        self.scheduler.subscribe(self._on_program_event)

    # -- subscription -------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        self.scheduler.subscribe(listener)

    def emit(self, event: Event) -> None:
        self.scheduler.emit(event)

    # -- operator actions ---------------------------------------------------------------------

    def stop(self, reason: StopReason = StopReason.OPERATOR, detail: str = "") -> None:
        """STOP: the program ends and the belt stops now (the worker sends stop first)."""
        self.desired.belt = Belt.STOPPED
        self._wake.set()
        self.scheduler.stop(reason, detail)

    def pause(self) -> None:
        if not self._started:
            return
        self.scheduler.pause()
        self.desired.belt = Belt.PAUSED if self.treadmill.supports_pause else Belt.STOPPED
        self._wake.set()

    def resume(self) -> None:
        """A person's go after a pause or a hold (console stop, safety key)."""
        if not self._started:
            return
        self.holding = None
        self.hold_kind = None
        self._held_at = None
        self._telemetry_moved_at = self.clock.now()
        self._seen_moving, self._still_since = False, None
        step = self.scheduler.current
        if step is not None:
            self._apply_step(step)
        self.scheduler.resume()

    def skip(self) -> None:
        self.scheduler.skip()

    def extend(self, seconds: int = 15) -> None:
        self.scheduler.extend(seconds)

    def nudge_speed(self, delta_mph: float) -> None:
        """Operator's +/-: shifts the current block's speed, within its band, until the next."""
        step = self.scheduler.current
        running = self.scheduler.state is EngineState.RUNNING and not self.holding
        if not running or step is None or step.block.speed is None:
            return  # a nudge never restarts a paused or held belt
        self.nudge = Quantity.of(
            self.nudge.value + Quantity.of(delta_mph, Unit.MPH).value, Unit.MPH
        )
        self._apply_step(step)

    @property
    def _started(self) -> bool:
        """The program is under way: operator actions apply (before the go they do nothing)."""
        return self.governor is not None and self.scheduler.state in (
            EngineState.RUNNING,
            EngineState.PAUSED,
        )

    # -- the run ------------------------------------------------------------------------------

    async def run(self) -> SessionSummary:
        outcome = Outcome.COMPLETED
        reason: StopReason | None = None
        detail = ""
        belt_stopped = False
        treadmill = self.treadmill
        try:
            await treadmill.connect()
        except DeviceError as err:
            self.emit(Fault(self.clock.now(), "connect", str(err), fatal=True))
            raise
        self.profile = treadmill.profile  # a driver may pick it on connect, by device name
        self._identity = treadmill.identity  # which machine this is, where it can say
        unsubscribe = treadmill.subscribe(self._on_report)
        worker = asyncio.create_task(self._command_worker(), name="command-worker")
        watchdog = asyncio.create_task(self._watchdog(), name="watchdog")
        try:
            self.governor = Governor(self.profile, treadmill.capabilities)
            self._check_program()
            self._check_feedback()
            if not self.unattended and self.go is not None and not await self.go():
                self.scheduler.stop(StopReason.OPERATOR, "no go given: the belt was not started")
            else:
                self._apply_step(self.program.steps[0])
            state = await self.scheduler.run()
            if state is EngineState.STOPPED:
                reason, detail = self._stop_reason()
                outcome = self._outcome_for(reason)
            elif not treadmill.reports_belt:
                # Played to the end, but no block could be confirmed: never "completed".
                outcome, detail = Outcome.UNCONFIRMED, BLIND_DETAIL
        except asyncio.CancelledError:
            outcome, reason, detail = Outcome.INTERRUPTED, StopReason.SIGNAL_INT, "cancelled"
            raise
        except SafetyError as err:
            outcome, reason, detail = Outcome.FAULT, StopReason.FAULT, str(err)
            self.emit(Fault(self.clock.now(), "safety", str(err), fatal=True))
        except Exception as err:
            outcome, reason, detail = Outcome.FAULT, StopReason.ERROR, repr(err)
            log.exception("session failed")
            self.emit(Fault(self.clock.now(), "internal", repr(err), fatal=True))
        finally:
            for task in (watchdog, worker):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.desired.belt = Belt.STOPPED
            belt_stopped = await self._stop_belt()
            unsubscribe()
            with contextlib.suppress(DeviceError):
                await treadmill.close()
            summary = self._summary(outcome, reason, detail, belt_stopped)
            self.emit(SessionEnded(self.clock.now(), outcome.value, summary.detail, belt_stopped))
        return summary

    def _check_feedback(self) -> None:
        """A machine that cannot report its belt is said so before the start; unattended, it
        needs an explicit opt-in (nobody would notice a pulled safety key)."""
        if self.treadmill.reports_belt:
            return
        self.emit(Notice(self.clock.now(), BLIND_NOTICE))
        if self.unattended and not self.allow_blind:
            raise SafetyError(
                "this treadmill cannot report its belt, so nothing would notice it stop (a "
                "pulled safety key) or run on: run it attended, or opt in with --allow-blind"
            )

    def _check_program(self) -> None:
        """Refuse before the belt moves if any block cannot be run as written on this machine:
        nothing is changed silently (a target the governor would clamp is refused here)."""
        assert self.governor is not None
        problems = self.governor.check(self.program.steps)
        if problems:
            raise SafetyError(
                "this program cannot run as written on this treadmill:\n  "
                + "\n  ".join(problems)
                + "\nnothing was sent: change the program, or use a profile that allows it"
            )

    def _stop_reason(self) -> tuple[StopReason, str]:
        return self.scheduler.stop_request or (StopReason.OPERATOR, "")

    @staticmethod
    def _outcome_for(reason: StopReason) -> Outcome:
        if reason in SIGNAL_REASONS:
            return Outcome.INTERRUPTED
        if reason in (StopReason.FAULT, StopReason.ERROR):
            return Outcome.FAULT
        return Outcome.STOPPED

    async def _stop_belt(self) -> bool:
        """The one stop path: stop, and keep stopping until the machine confirms it.

        The driver puts the stop on the wire only when no other procedure is pending there.
        A stop that is refused, unanswered, or cannot go out because the link is down is
        asked again, paced with a growing pause (never a storm: one stop at a time), until
        the machine confirms it — its answer plus a still belt, or an already-stopped answer —
        or the unattended hold limit passes. Each change of state is shown to the operator.
        """
        treadmill = self.treadmill
        give_up = self.clock.now() + self.hold_limit_s
        pause = STOP_RETRY_FIRST_S
        shown: StopState | None = None

        def show(state: StopState, detail: str = "") -> None:
            nonlocal shown
            if state is not shown:
                shown = state
                text = f"{state.value} ({detail})" if detail else state.value
                self.emit(StopProgress(self.clock.now(), text, state))

        if treadmill.busy:
            show(StopState.WAITING_FOR_MACHINE)
        # The worker's stop was accepted already (the session ended while the belt slowed):
        # watch it halt before asking again.
        already = self._stop_accepted and self.link_up and treadmill.reports_belt
        if already and await self._belt_still_within(STOP_WAIT_S, self._stop_accepted_at):
            self._record_applied(Command.STOP, None)
            show(StopState.CONFIRMED)
            return True
        while True:
            issued = self.clock.now()
            self.emit(CommandIssued(issued, Command.STOP, None))
            try:
                await treadmill.stop()
            except LinkLost as err:
                show(StopState.LINK_DOWN, str(err))
            except CommandTimeout as err:
                show(StopState.NO_ANSWER, str(err))
            except CommandRejected as err:
                self.emit(CommandUnconfirmed(self.clock.now(), Command.STOP, None, str(err), True))
                if shown is not StopState.REFUSED:
                    self.emit(
                        Fault(
                            self.clock.now(),
                            "stop-rejected",
                            f"the treadmill refused stop ({err.reason.value}): use its STOP or "
                            "the safety key",
                            fatal=True,
                        )
                    )
                show(StopState.REFUSED, err.reason.value)
            except DeviceError as err:
                show(StopState.NO_ANSWER, str(err))
            else:
                self.emit(
                    CommandConfirmed(
                        self.clock.now(), Command.STOP, None, self.clock.now() - issued
                    )
                )
                self._record_applied(Command.STOP, None)
                self._stop_accepted, self._stop_accepted_at = True, self.clock.now()
                if not treadmill.reports_belt:
                    show(StopState.UNCONFIRMABLE)
                    return False
                if await self._belt_still_within(STOP_WAIT_S, self._stop_accepted_at):
                    show(StopState.CONFIRMED)
                    return True
                show(StopState.STILL_MOVING)
            if self.desired.belt is not Belt.STOPPED:
                return False  # a person resumed meanwhile: the worker brings the new state
            if self.clock.now() >= give_up:
                show(StopState.GAVE_UP)
                self.emit(Fault(self.clock.now(), "stop", StopState.GAVE_UP.value, fatal=True))
                return False
            # Ask again after the pause, at once if the link comes back meanwhile, and once
            # more at the limit itself.
            self._link_returned.clear()
            await self._pause_unless(self._link_returned, min(self.clock.now() + pause, give_up))
            pause = min(pause * 2, STOP_RETRY_MAX_S)

    async def _pause_unless(self, event: asyncio.Event, deadline: float) -> None:
        waits = [
            asyncio.ensure_future(self.clock.sleep_until(deadline)),
            asyncio.ensure_future(event.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _belt_still_within(self, seconds: float, since: float) -> bool:
        """Whether a reading taken at ``since`` or later shows the belt still, within
        ``seconds``: a reading from before the stop (a belt just starting reads 0) says
        nothing about the stop."""
        deadline = self.clock.now() + seconds
        while True:
            latest = self.treadmill.latest
            if (
                latest is not None
                and latest.at >= since
                and latest.speed.value == 0
                and latest.belt is not BeltStatus.RUNNING
            ):
                return True
            if self.clock.now() >= deadline:
                return False
            await self.clock.sleep_until(min(deadline, self.clock.now() + 0.1))

    def _summary(
        self, outcome: Outcome, reason: StopReason | None, detail: str, belt_stopped: bool
    ) -> SessionSummary:
        done = self.scheduler.index
        if self.scheduler.state is EngineState.FINISHED:
            done = len(self.program.steps)
        if not detail:
            detail = reason.value if reason else "program completed"
        return SessionSummary(
            program=self.program.name,
            device=self.treadmill.name,
            outcome=outcome,
            reason=reason,
            detail=detail,
            blocks_done=done,
            blocks_total=len(self.program.steps),
            retro_s=self._retro_s + self._current_retro(),
            elapsed_s=self.scheduler.program_elapsed(),
            distance_m=self.telemetry.distance_m if self.telemetry else 0.0,
            belt_stopped=belt_stopped,
        )

    def _current_retro(self) -> float:
        if self._current is not None and self._current.kind.is_retro:
            return self.scheduler.program_elapsed() - self._block_elapsed_start
        return 0.0

    # -- program events -> desired state ------------------------------------------------------

    def _on_program_event(self, event: Event) -> None:
        if isinstance(event, BlockStarted):
            self._retro_s += self._current_retro()
            self._current = event.step
            self._block_elapsed_start = self.scheduler.program_elapsed()
            self.nudge = Quantity.of(0, Unit.MPH)
            self._apply_step(event.step)
        elif (
            isinstance(event, Countdown)
            and event.count == COUNTDOWN_FROM
            and event.step is not None
            and event.step.kind is BlockKind.TURN_AROUND
        ):
            # The belt is at the turn speed (or paused) before the turn cue, not ramping down
            # while the walker is told to turn: slow down over the 3-2-1 instead.
            self.nudge = Quantity.of(0, Unit.MPH)
            self._apply_step(event.step)
        elif isinstance(event, ProgramFinished | ProgramStopped):
            self._retro_s += self._current_retro()
            self._current = None
            self.desired.belt = Belt.STOPPED
            self._wake.set()

    def _apply_step(self, step: Step) -> None:
        assert self.governor is not None
        block = step.block
        self.desired.incline = self.governor.incline(block.incline)
        if block.speed is None:  # turn-around in pause mode: the belt pauses
            self.desired.belt = Belt.PAUSED if self.treadmill.supports_pause else Belt.STOPPED
        else:
            requested = Quantity.of(block.speed.to(Unit.MPH).value + self.nudge.value, Unit.MPH)
            self.desired.speed = self.governor.speed(step, requested)
            self.desired.belt = Belt.RUNNING
        self._wake.set()

    # -- the command worker -------------------------------------------------------------------

    async def _command_worker(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while (action := self._next_action()) is not None:
                await self._execute(*action)

    def _next_action(self) -> tuple[Command, Quantity | None] | None:
        assert self.governor is not None
        want, have = self.desired, self.applied
        if not self.link_up:
            return None
        if want.belt is Belt.STOPPED:
            return (Command.STOP, None) if have.belt is not Belt.STOPPED else None
        if self.holding:
            return None
        if want.belt is Belt.PAUSED:
            return (Command.PAUSE, None) if have.belt is Belt.RUNNING else None
        if have.belt is not Belt.RUNNING:
            # Start sequence: incline, a first speed within one ramp step, then start.
            if self.profile.quirks.start_before_speed:
                return (Command.START, None)
            if want.incline is not None and want.incline != have.incline:
                return (Command.SET_INCLINE, want.incline)
            if want.speed is not None and have.speed is None:
                return (Command.SET_SPEED, self.governor.ramp(None, want.speed))
            return (Command.START, None)
        if want.incline is not None and want.incline != have.incline:
            return (Command.SET_INCLINE, want.incline)
        if want.speed is not None and want.speed != have.speed:
            return (Command.SET_SPEED, self.governor.ramp(have.speed, want.speed))
        return None

    async def _execute(self, command: Command, value: Quantity | None) -> None:
        if command is Command.STOP:
            if await self._stop_belt():  # the one stop path, mid-session as at the end
                self._restart_once_stopped(self.clock.now())
            return
        treadmill = self.treadmill
        issued = self.clock.now()
        self._stop_accepted = False  # the machine's last word is no longer our stop
        self.emit(CommandIssued(issued, command, value))
        try:
            match command:
                case Command.SET_SPEED if value is not None:
                    await treadmill.set_speed(value)
                case Command.SET_INCLINE if value is not None:
                    await treadmill.set_incline(value)
                case Command.PAUSE:
                    await treadmill.pause()
                case Command.START:
                    await treadmill.start()
        except CommandTimeout as err:
            # Unknown outcome: never resend blindly. Pause, stop, tell the operator.
            self._record_applied(command, value)
            self.hold("command-timeout", str(err))
            return
        except CommandRejected as err:
            self._rejected(command, value, err)
            return
        except LinkLost as err:
            self._link_lost(str(err))  # nothing was sent: the same step goes out on return
            return
        except DeviceError as err:
            self._record_applied(command, value)
            self._fault("device", f"{command}: {err}")
            return
        self._record_applied(command, value)
        if command is Command.SET_SPEED and value is not None:
            if value == self.desired.speed:
                self._watch_speed(value, issued)
            elif self.applied.belt is Belt.RUNNING:
                # A ramp step: the belt gets there before the next one goes out.
                await self._ramp_step_reached(value, issued)
            return
        self.emit(CommandConfirmed(self.clock.now(), command, value, self.clock.now() - issued))
        first_step = self.applied.speed
        if command is Command.START and first_step is not None and first_step != self.desired.speed:
            # The first ramp step went out before the start: the belt reaches it before the
            # next step, as for every other step (never two steps back to back).
            await self._ramp_step_reached(first_step, self.clock.now())

    async def _ramp_step_reached(self, step: Quantity, since: float) -> None:
        """Wait until the belt reaches a ramp step; a belt too slow to get there in time is
        reported (not fought), and the ramp goes on."""
        deadline = since + self._ramp_wait_s()
        if await self._until_reached(step, deadline, interruptible=True):
            return
        if self.clock.now() >= deadline and self.treadmill.reports_belt:
            seen = f"{format_number(self.telemetry.speed.mph)} mph" if self.telemetry else "?"
            self.emit(
                CommandUnconfirmed(
                    self.clock.now(),
                    Command.SET_SPEED,
                    step,
                    f"belt at {seen}, expected {format_number(step.mph)} mph within "
                    f"{self._ramp_wait_s():g} s",
                )
            )

    def _ramp_wait_s(self) -> float:
        """How long a ramp step may take to be reached before the next goes out. Without any
        telemetry (a Trackmaster with no status query) nothing can confirm a step: the belt
        gets a fixed moment instead of the full confirmation timeout."""
        return self.profile.confirm.timeout_s if self.treadmill.reports_belt else BLIND_RAMP_STEP_S

    def _record_applied(self, command: Command, value: Quantity | None) -> None:
        applied = self.applied
        if command is Command.SET_SPEED:
            applied.speed = value
        elif command is Command.SET_INCLINE:
            applied.incline = value
        else:
            applied.belt = {
                Command.STOP: Belt.STOPPED,
                Command.PAUSE: Belt.PAUSED,
                Command.START: Belt.RUNNING,
            }[command]
            if command is not Command.START:
                # A stopped or paused belt restarts from standstill: ramp again from the bottom.
                applied.speed = None
            self._stop_accepted = False
            if command is Command.START:
                # Readings of a still or paused belt do not change: staleness counts from here.
                self._telemetry_moved_at = self.clock.now()
            # Whether the belt stopped without a command is judged afresh from each start,
            # stop or pause: readings of a pause must not count against the next start.
            self._seen_moving, self._still_since = False, None

    def _rejected(self, command: Command, value: Quantity | None, err: CommandRejected) -> None:
        self.emit(CommandUnconfirmed(self.clock.now(), command, value, str(err), rejected=True))
        self._record_applied(command, value)
        if command is Command.START or err.reason is Rejection.SAFETY_KEY:
            self.hold(f"{command}-rejected", f"the treadmill refused {command}: {err}")

    def _fault(self, kind: str, message: str) -> None:
        fault = Fault(self.clock.now(), kind, message, fatal=True)
        self.last_fault = fault
        self.emit(fault)
        self.stop(StopReason.FAULT, message)

    def hold(self, kind: str, message: str, *, stop_belt: bool = True) -> None:
        """Pause the program and send nothing but stop until a person resumes."""
        fault = Fault(self.clock.now(), kind, f"{message}: program paused", fatal=False)
        self.last_fault = fault
        if self.holding is None or kind != "link-lost":
            # A link lost during another hold keeps that hold: when the link returns, only
            # the hold that the link itself caused may end without a person.
            self.hold_kind = kind
        self.holding = message
        self._held_at = self.clock.now()
        self._seen_moving, self._still_since = False, None
        self.scheduler.pause(message)
        if stop_belt:
            self.desired.belt = Belt.STOPPED
        self.emit(fault)
        self._wake.set()

    # -- the watchdog: stale or frozen telemetry, overspeed, holds nobody will resume ---------

    async def _watchdog(self) -> None:
        confirm = self.profile.confirm
        while True:
            await self.clock.sleep_until(self.clock.now() + WATCH_INTERVAL_S)
            now = self.clock.now()
            moving = self.applied.belt is Belt.RUNNING and not self.holding and self.link_up
            last = self._telemetry_moved_at
            still = self._still_since
            if moving and still is not None and now - still > STILL_GRACE_S:
                self.hold(
                    "belt-stopped",
                    "the belt stopped without a command (stopped at the console, or the "
                    "safety key pulled?)",
                )
            elif (
                moving
                and last is not None
                and self.treadmill.reports_belt  # a machine that never reports cannot go quiet
                and now - last > confirm.telemetry_stale_s
            ):
                # One fault whether records stop or repeat one value: a link that passes on
                # only changed values (pyftms) cannot tell the two apart.
                fresh = self.telemetry is not None and now - self.telemetry.at < 1.5
                what = "repeats one value" if fresh else "stopped arriving"
                self.hold("telemetry-stale", f"telemetry {what} for {now - last:.0f} s")
            if (
                self.unattended
                and self.holding
                and self._held_at is not None
                and now - self._held_at > self.hold_limit_s
            ):
                self._fault("hold-timeout", f"held {self.hold_limit_s:.0f} s unattended")

    # -- confirmation against telemetry -------------------------------------------------------

    def _watch_speed(self, target: Quantity, issued: float) -> None:
        if self._confirm is not None:
            self._confirm.cancel()
        self._reached.clear()
        self._confirm = asyncio.create_task(self._confirm_speed(target, issued))

    def _speed_reached(self, target: Quantity) -> bool:
        latest = self.telemetry
        if latest is None:
            return False
        gap = abs(latest.speed.to(Unit.MPH).value - target.to(Unit.MPH).value)
        return gap <= self.profile.confirm.tolerance_mph.value

    async def _confirm_speed(self, target: Quantity, issued: float) -> None:
        timeout = self.profile.confirm.timeout_s
        if await self._until_reached(target, issued + timeout):
            now = self.clock.now()
            self.emit(CommandConfirmed(now, Command.SET_SPEED, target, now - issued))
            return
        actual = self.telemetry.speed if self.telemetry else None
        seen = f"belt at {format_number(actual.mph)} mph" if actual else "no telemetry"
        self.emit(
            CommandUnconfirmed(
                self.clock.now(),
                Command.SET_SPEED,
                target,
                f"{seen}, expected {format_number(target.mph)} mph within {timeout:g} s",
            )
        )

    async def _until_reached(
        self, target: Quantity, deadline: float, *, interruptible: bool = False
    ) -> bool:
        """Wait until telemetry shows the belt at ``target`` (True) or ``deadline`` (False).

        An ``interruptible`` wait (a ramp step in the command worker) also ends as soon as the
        desired state changes, so a stop never queues behind a slow belt.
        """
        while not self._speed_reached(target):
            if self.clock.now() >= deadline or (interruptible and self._wake.is_set()):
                return False
            self._reached.clear()
            waits = [self.clock.sleep_until(deadline), self._reached.wait()]
            if interruptible:
                waits.append(self._wake.wait())
            tasks = [asyncio.ensure_future(w) for w in waits]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
        return True

    # -- what the machine reports -------------------------------------------------------------

    def _on_report(self, report: Report) -> None:
        if isinstance(report, Telemetry):
            previous, self.telemetry = self.telemetry, report
            if previous is None or (report.distance_m, report.elapsed_s, report.speed) != (
                previous.distance_m,
                previous.elapsed_s,
                previous.speed,
            ):
                self._telemetry_moved_at = report.at
            self._reached.set()
            if report.speed.value > 0:
                self._seen_moving, self._still_since = True, None
            elif (
                self._seen_moving
                and self._still_since is None
                and self.applied.belt is Belt.RUNNING
            ):
                self._still_since = report.at
            self._check_overspeed(report)
            if report.speed.value == 0:
                self._restart_once_stopped(report.at)
            self.emit(
                TelemetryReceived(
                    report.at, report.speed, report.incline, report.distance_m, report.elapsed_s
                )
            )
        elif isinstance(report, MachineEvent):
            self._on_machine_event(report)

    def _restart_once_stopped(self, at: float) -> None:
        """Unattended, after the link came back: once the belt is confirmed stopped (a still
        reading, or the stop path's confirmation: a still belt may send no new reading), the
        program restarts through the normal start sequence."""
        if not self._resume_when_stopped:
            return
        self._resume_when_stopped = False
        self.emit(Notice(at, "belt confirmed stopped: restarting the program"))
        self.applied.belt = Belt.STOPPED
        self.resume()

    def _check_overspeed(self, report: Telemetry) -> None:
        step = self.scheduler.current
        commanded = self.applied.speed
        if step is None or commanded is None or self.applied.belt is not Belt.RUNNING:
            self._overspeed_since = None
            return
        tolerance = self.profile.confirm.tolerance_mph.value
        allowed = max(commanded.to(Unit.MPH).value, step.band.high.value) + 2 * tolerance
        if report.speed.to(Unit.MPH).value <= allowed:
            self._overspeed_since = None
            return
        if self._overspeed_since is None:
            self._overspeed_since = report.at
        elif report.at - self._overspeed_since >= OVERSPEED_GRACE_S:
            self._fault(
                "overspeed",
                f"belt at {format_number(report.speed.mph)} mph, commanded "
                f"{format_number(commanded.mph)} mph: does this machine read the speed field "
                "as mph? (profile quirk speed_field_mph)",
            )

    def _link_lost(self, detail: str) -> None:
        if not self.link_up:
            return
        self.link_up = False
        self.hold("link-lost", f"link lost ({detail})")

    def _link_restored(self, at: float) -> None:
        self.link_up = True
        # The belt's state is unknown until telemetry says: assume it may be running and stop
        # (a stop the machine took before the link dropped says nothing about it now).
        self.applied.belt = Belt.RUNNING
        self._stop_accepted = False
        self._link_returned.set()  # a stop waiting to be asked again goes out now
        self.applied.speed = None
        self._telemetry_moved_at = at
        now_identity = self.treadmill.identity
        if self._identity is not None and now_identity not in (None, self._identity):
            # Another treadmill answered where ours was: stop it and end, never drive it.
            self._fault(
                "different-machine",
                f"the link came back to a different treadmill ({now_identity}, not "
                f"{self._identity}): stopping it and ending the session",
            )
            self._wake.set()
            return
        same = self._identity is not None and now_identity == self._identity
        if self.unattended and self.hold_kind == "link-lost" and same:
            self._resume_when_stopped = True
            self.emit(Notice(at, "link restored: stopping the belt, then restarting"))
        elif self.unattended and self.hold_kind == "link-lost":
            # Nothing tells this machine from another at the same port: a person must confirm.
            self.emit(
                Notice(
                    at,
                    "link restored: belt being stopped; this machine cannot say which treadmill "
                    "it is, so the program stays held until a person resumes",
                )
            )
        elif self.unattended:
            # Held for something else (a command never answered, a stop at the console): the
            # same hold on every link, whether or not the protocol dropped the link meanwhile.
            self.emit(Notice(at, f"link restored: belt being stopped; still held ({self.holding})"))
        else:
            self.emit(Notice(at, "link restored: belt being stopped; resume when ready"))
        self._wake.set()

    def _on_machine_event(self, event: MachineEvent) -> None:
        kind = event.kind
        if kind is MachineEventKind.LINK_LOST:
            self._link_lost("the treadmill stopped answering")
            return
        if kind is MachineEventKind.LINK_RESTORED:
            self._link_restored(event.at)
            return
        holds = {
            MachineEventKind.STOPPED_AT_CONSOLE: "the belt was stopped at the treadmill console",
            MachineEventKind.PAUSED_AT_CONSOLE: "the belt was paused at the treadmill console",
            MachineEventKind.SAFETY_KEY: "the safety key was pulled",
        }
        if kind in holds:
            # The physical console always wins: pause the program and send nothing until a
            # person resumes (in retrotread, or by starting the belt at the console).
            self.applied.belt = (
                Belt.PAUSED if kind is MachineEventKind.PAUSED_AT_CONSOLE else Belt.STOPPED
            )
            self.applied.speed = None
            self.hold(kind.name.lower().replace("_", "-"), holds[kind], stop_belt=False)
        elif kind is MachineEventKind.STARTED_AT_CONSOLE and self.holding:
            self.emit(Notice(event.at, "belt started at the console: resuming the program"))
            self.applied.belt = Belt.RUNNING
            self.resume()
        elif kind is MachineEventKind.CONTROL_LOST:
            # The driver asked for control again and was refused: the console or another app
            # has the machine. Nothing can be sent (not even stop) until a person resumes.
            self.hold("control-lost", "the treadmill refused control", stop_belt=False)
        elif kind is MachineEventKind.TARGET_SPEED_CHANGED and event.value is not None:
            self.emit(
                Notice(
                    event.at,
                    f"speed changed at the console to {format_number(event.value.mph)} mph",
                )
            )
        else:
            self.emit(Notice(event.at, kind.value))
