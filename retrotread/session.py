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
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from fractions import Fraction

from retrotread.clock import Clock, Timer, Wakeup, sleep_until_raised
from retrotread.drivers.base import (
    BeltStatus,
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
    LinkRestored,
    Listener,
    Notice,
    ProgramFinished,
    ProgramStopped,
    SessionEnded,
    SessionState,
    SessionSummary,
    StopProgress,
    StopReason,
    StopState,
    TelemetryReceived,
    Tick,
)
from retrotread.program.model import Band, BlockKind, Program, Step
from retrotread.safety import ClientCaps, Governor
from retrotread.scheduler import COUNTDOWN_FROM, Scheduler
from retrotread.units import Quantity, Unit, format_number
from retrotread.vocabulary import Belt, Command, EngineState, FaultKind, Outcome

__all__ = ["Belt", "Outcome", "Session", "SessionSummary"]

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


#: What the machine's own console did, the hold it causes and the words for it.
CONSOLE_HOLDS = {
    MachineEventKind.STOPPED_AT_CONSOLE: (
        FaultKind.STOPPED_AT_CONSOLE,
        "the belt was stopped at the treadmill console",
    ),
    MachineEventKind.PAUSED_AT_CONSOLE: (
        FaultKind.PAUSED_AT_CONSOLE,
        "the belt was paused at the treadmill console",
    ),
    MachineEventKind.SAFETY_KEY: (FaultKind.SAFETY_KEY, "the safety key was pulled"),
}

BLIND_NOTICE = (
    "this treadmill cannot report its belt (speed, stopped): retrotread cannot see a stop at "
    "the machine or confirm any block; watch the belt yourself"
)
BLIND_DETAIL = "played to the end; this treadmill cannot report its belt, so nothing confirmed it"


@dataclass
class Desired:
    belt: Belt = Belt.STOPPED
    speed: Quantity | None = None
    incline: Quantity | None = None


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
        caps: ClientCaps | None = None,
    ) -> None:
        self.program = program
        #: The client's own limits (their clinician's), enforced by the governor.
        self.caps = caps
        self._recovery: Quantity | None = None  # a speed ceiling asked for (heart rate)
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
        self._scheduler = Scheduler(program, clock)
        self._governor: Governor | None = None
        self._desired = Desired()
        self._applied = Desired()
        self._holding: str | None = None  # why nothing may be sent (console stop, key, link)
        self._hold_kind: FaultKind | None = None  # the fault kind that began the hold
        self._nudge = Quantity.of(0, Unit.MPH)
        self._telemetry: Telemetry | None = None
        self._wake = Wakeup()
        self._confirm: asyncio.Task[None] | None = None
        self._watchdog: Timer | None = None
        self._reached = Wakeup()
        self._retro_s = 0.0
        self._block_elapsed_start = 0.0
        self._current: Step | None = None
        self.last_fault: Fault | None = None
        self._link_up = True
        self._held_at: float | None = None
        self._resume_when_stopped = False  # unattended, after the link came back
        self._stop_accepted = False  # the machine took our last stop (nothing sent since)
        self._stop_accepted_at = 0.0
        self._identity: str | None = None  # which machine we connected to, where it can say
        self._link_returned = Wakeup()
        self._telemetry_moved_at: float | None = None  # last record that differed
        self._overspeed_since: float | None = None
        self._seen_moving = False  # the belt has moved since the last start
        self._still_since: float | None = None  # ...and has read zero since then
        self._listeners: list[Listener] = []
        self._publishing = False  # states are being sent (a new listener gets one at once)
        self._state_key_sent: tuple[object, ...] | None = None
        self._allowed_cache: tuple[Step, Governor, Band] | None = None
        #: the overspeed line for (command, block, the readings' unit)
        self._overspeed_limit: tuple[Quantity | None, Step | None, Unit | None, Quantity] = (
            None,
            None,
            None,
            Quantity(Fraction(), Unit.MPH),
        )
        self._scheduler.subscribe(self._dispatch)

    # -- subscription: front ends see events, never the session's workings ---------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """``listener`` gets every event from now on (and the current state at once, so a view
        opened mid-session has something to show); returns the way to unsubscribe."""
        self._listeners.append(listener)
        if self._publishing:
            self._deliver(listener, self._snapshot())

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def emit(self, event: Event) -> None:
        self._scheduler.emit(event)

    @property
    def state(self) -> SessionState:
        """What every front end shows, as of now (the same event subscribers get)."""
        return self._snapshot()

    def notify(self, message: str) -> None:
        self.emit(Notice(self.clock.now(), message))

    @property
    def stop_requested(self) -> bool:
        return self._scheduler.stop_request is not None

    async def wait_stop_requested(self) -> None:
        await self._scheduler.stop_requested.wait()

    def _dispatch(self, event: Event) -> None:
        self._on_program_event(event)
        for listener in list(self._listeners):
            self._deliver(listener, event)
        if isinstance(event, Tick):
            self._publish_state()  # the clock moved: time left and elapsed
        elif not isinstance(event, SessionState | SessionEnded):
            self._publish_state(only_if_changed=True)

    @staticmethod
    def _deliver(listener: Listener, event: Event) -> None:
        try:
            listener(event)
        except Exception:  # a broken front end must not stop the program mid-block
            log.exception("event listener failed on %s", type(event).__name__)

    def _publish_state(self, *, only_if_changed: bool = False) -> None:
        """Send the state: on every tick, and after any other event that changed what a front
        end decides on (the block, the targets, the link, a hold; compared cheaply, by what it
        is made of: the state is sent often)."""
        self._publishing = True
        if not self._listeners:  # nobody to tell (a rehearsal's own clock, a bench)
            return
        key = self._state_key()
        if only_if_changed and key == self._state_key_sent:
            return
        self._state_key_sent = key
        self.emit(self._snapshot())

    def _state_key(self) -> tuple[object, ...]:
        desired, scheduler = self._desired, self._scheduler
        return (
            scheduler.state,
            scheduler.index,
            desired.belt,
            desired.speed,
            desired.incline,
            # not the readings: each has its TelemetryReceived, and the next tick's state
            # carries the latest (a state per reading would double the work of a session)
            self._link_up,
            self._holding,
            self._hold_kind,
            self._nudge,
            scheduler.stop_request,
        )

    def _speed_allowed(self, step: Step | None) -> Band | None:
        """The governor's speeds for this block (once per block: Fraction sums are not free)."""
        if step is None or self._governor is None or step.block.speed is None:
            return None
        governor, cached = self._governor, self._allowed_cache
        if cached is None or cached[0] is not step or cached[1] is not governor:
            limits = governor.step_range(step)
            cached = self._allowed_cache = (step, governor, Band(limits.low, limits.high))
        return cached[2]

    def _snapshot(self) -> SessionState:
        scheduler, desired, step = self._scheduler, self._desired, self._scheduler.current
        telemetry = self._telemetry
        allowed = self._speed_allowed(step)
        started = scheduler.state in (EngineState.RUNNING, EngineState.PAUSED)
        running = desired.belt is Belt.RUNNING
        return SessionState(
            self.clock.now(),
            device=self.treadmill.name,
            engine=scheduler.state,
            step=step,
            block_remaining_s=max(scheduler.block_end() - self.clock.now(), 0.0)
            if step is not None and started
            else 0.0,
            program_elapsed_s=scheduler.program_elapsed(),
            program_remaining_s=scheduler.program_remaining(),
            belt=desired.belt,
            target_speed=desired.speed if running else None,
            target_incline=desired.incline,
            actual=None
            if telemetry is None
            else TelemetryReceived(
                telemetry.at,
                telemetry.speed,
                telemetry.incline,
                telemetry.distance_m,
                telemetry.elapsed_s,
            ),
            link_up=self._link_up,
            hold=self._holding,
            hold_kind=self._hold_kind,
            nudge_mph=float(self._nudge.value),
            speed_allowed=allowed,
            stop_requested=self.stop_requested,
        )

    # -- operator actions ---------------------------------------------------------------------

    def stop(self, reason: StopReason = StopReason.OPERATOR, detail: str = "") -> None:
        """STOP: the program ends and the belt stops now (the worker sends stop first)."""
        self._desired.belt = Belt.STOPPED
        self._wake.set()
        self._scheduler.stop(reason, detail)

    def pause(self) -> None:
        if not self._started:
            return
        self._scheduler.pause()
        self._desired.belt = Belt.PAUSED if self.treadmill.supports_pause else Belt.STOPPED
        self._wake.set()

    def resume(self) -> None:
        """A person's go after a pause or a hold (console stop, safety key)."""
        if not self._started:
            return
        self._holding = None
        self._hold_kind = None
        self._held_at = None
        self._telemetry_moved_at = self.clock.now()
        self._seen_moving, self._still_since = False, None
        step = self._scheduler.current
        if step is not None:
            self._apply_step(step)
        self._scheduler.resume()

    def skip(self) -> None:
        self._scheduler.skip()

    def extend(self, seconds: int = 15) -> None:
        self._scheduler.extend(seconds)

    def nudge_speed(self, delta_mph: float) -> str | None:
        """Operator's +/-: shifts the current block's speed, within what the governor allows
        for the block, until the next. Returns why not when it cannot (nothing changes)."""
        step = self._scheduler.current
        running = self._scheduler.state is EngineState.RUNNING and not self._holding
        if not running or step is None or step.block.speed is None or self._governor is None:
            return "this block has no belt speed to change"  # never restarts a held belt
        nudge = self._nudge.value + Quantity.of(delta_mph, Unit.MPH).value
        allowed = self._governor.step_range(step)
        requested = step.block.speed.to(Unit.MPH).value + nudge
        if not allowed.low.to(Unit.MPH).value <= requested <= allowed.high.to(Unit.MPH).value:
            edge = "top" if delta_mph > 0 else "bottom"
            return f"at the {edge} of the band {step.band}"
        self._nudge = Quantity.of(nudge, Unit.MPH)
        self._apply_step(step)
        self._publish_state()
        return None

    def request_recovery(self, speed: Quantity, reason: str) -> None:
        """Keep every block at or below ``speed`` (the governor still keeps it in the block's
        band) until :meth:`release_recovery`: a heart rate above the client's ceiling."""
        log.info("recovery pace %s: %s", speed, reason)
        self._recovery = speed
        self._reapply_current()

    def release_recovery(self, reason: str) -> None:
        log.info("recovery over: %s", reason)
        self._recovery = None
        self._reapply_current()

    def _reapply_current(self) -> None:
        step = self._scheduler.current
        running = self._scheduler.state is EngineState.RUNNING and not self._holding
        if running and step is not None and step.block.speed is not None and self._governor:
            self._apply_step(step)  # never restarts a paused or held belt
            self._publish_state()

    @property
    def _started(self) -> bool:
        """The program is under way: operator actions apply (before the go they do nothing)."""
        return self._governor is not None and self._scheduler.state in (
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
            self.emit(Fault(self.clock.now(), FaultKind.CONNECT, str(err), fatal=True))
            raise
        self.profile = treadmill.profile  # a driver may pick it on connect, by device name
        self._identity = treadmill.identity  # which machine this is, where it can say
        unsubscribe = treadmill.subscribe(self._on_report)
        worker = asyncio.create_task(self._command_worker(), name="command-worker")
        self._watch(self.clock.now())
        try:
            self._governor = Governor(self.profile, treadmill.capabilities, self.caps)
            self._check_program()
            self._check_feedback()
            if not self.unattended and self.go is not None and not await self.go():
                self._scheduler.stop(StopReason.OPERATOR, "no go given: the belt was not started")
            else:
                self._apply_step(self.program.steps[0])
            state = await self._scheduler.run()
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
            self.emit(Fault(self.clock.now(), FaultKind.SAFETY, str(err), fatal=True))
        except Exception as err:
            outcome, reason, detail = Outcome.FAULT, StopReason.ERROR, repr(err)
            log.exception("session failed")
            self.emit(Fault(self.clock.now(), FaultKind.INTERNAL, repr(err), fatal=True))
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            self._desired.belt = Belt.STOPPED
            belt_stopped = await self._stop_belt()
            unsubscribe()
            with contextlib.suppress(DeviceError):
                await treadmill.close()
            summary = self._summary(outcome, reason, detail, belt_stopped)
            self.emit(SessionEnded(self.clock.now(), outcome, summary.detail, belt_stopped))
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
        assert self._governor is not None
        problems = self._governor.check(self.program.steps)
        if problems:
            raise SafetyError(
                "this program cannot run as written on this treadmill:\n  "
                + "\n  ".join(problems)
                + "\nnothing was sent: change the program, or use a profile that allows it"
            )

    def _stop_reason(self) -> tuple[StopReason, str]:
        return self._scheduler.stop_request or (StopReason.OPERATOR, "")

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
        already = self._stop_accepted and self._link_up and treadmill.reports_belt
        if already and await self._belt_still_within(STOP_WAIT_S, self._stop_accepted_at):
            if not self._left_paused():
                self._record_applied(Command.STOP, None)
                show(StopState.CONFIRMED)
                return True
            show(StopState.LEFT_PAUSED)
        asked_again_paused = False
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
                            FaultKind.STOP_REJECTED,
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
                    if self._left_paused() and not asked_again_paused:
                        # A machine that will not stop a moving belt pauses it (the KingSmith
                        # R3; the driver's stop does that): still now, it takes the stop, and
                        # a paused machine would start again at speed from its own key. Asked
                        # once: a still belt is what a stop must leave.
                        show(StopState.LEFT_PAUSED)
                        asked_again_paused = True
                        continue
                    show(StopState.CONFIRMED)
                    return True
                show(StopState.STILL_MOVING)
            if self._desired.belt is not Belt.STOPPED:
                return False  # a person resumed meanwhile: the worker brings the new state
            if self.clock.now() >= give_up:
                show(StopState.GAVE_UP)
                self.emit(
                    Fault(
                        self.clock.now(),
                        FaultKind.STOP_NOT_CONFIRMED,
                        StopState.GAVE_UP.value,
                        fatal=True,
                    )
                )
                return False
            # Ask again after the pause, at once if the link comes back meanwhile, and once
            # more at the limit itself.
            self._link_returned.clear()
            await sleep_until_raised(
                self.clock, min(self.clock.now() + pause, give_up), self._link_returned
            )
            pause = min(pause * 2, STOP_RETRY_MAX_S)

    def _left_paused(self) -> bool:
        latest = self.treadmill.latest
        return latest is not None and latest.belt is BeltStatus.PAUSED

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
        done = self._scheduler.index
        if self._scheduler.state is EngineState.FINISHED:
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
            elapsed_s=self._scheduler.program_elapsed(),
            distance_m=self._telemetry.distance_m if self._telemetry else 0.0,
            belt_stopped=belt_stopped,
        )

    def _current_retro(self) -> float:
        if self._current is not None and self._current.kind.is_retro:
            return self._scheduler.program_elapsed() - self._block_elapsed_start
        return 0.0

    # -- program events -> desired state ------------------------------------------------------

    def _on_program_event(self, event: Event) -> None:
        if isinstance(event, BlockStarted):
            self._retro_s += self._current_retro()
            self._current = event.step
            self._block_elapsed_start = self._scheduler.program_elapsed()
            self._nudge = Quantity.of(0, Unit.MPH)
            self._apply_step(event.step)
        elif (
            isinstance(event, Countdown)
            and event.count == COUNTDOWN_FROM
            and event.step is not None
            and event.step.kind is BlockKind.TURN_AROUND
        ):
            # The belt is at the turn speed (or paused) before the turn cue, not ramping down
            # while the walker is told to turn: slow down over the 3-2-1 instead.
            self._nudge = Quantity.of(0, Unit.MPH)
            self._apply_step(event.step)
        elif isinstance(event, ProgramFinished | ProgramStopped):
            self._retro_s += self._current_retro()
            self._current = None
            self._desired.belt = Belt.STOPPED
            self._wake.set()

    def _apply_step(self, step: Step) -> None:
        assert self._governor is not None
        block = step.block
        self._desired.incline = self._governor.incline(block.incline)
        if block.speed is None:  # turn-around in pause mode: the belt pauses
            self._desired.belt = Belt.PAUSED if self.treadmill.supports_pause else Belt.STOPPED
        else:
            requested = Quantity.of(block.speed.to(Unit.MPH).value + self._nudge.value, Unit.MPH)
            if self._recovery is not None:
                requested = min(requested, self._recovery.to(Unit.MPH))
            self._desired.speed = self._governor.speed(step, requested)
            self._desired.belt = Belt.RUNNING
        self._wake.set()

    # -- the command worker -------------------------------------------------------------------

    async def _command_worker(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while (action := self._next_action()) is not None:
                await self._execute(*action)

    def _next_action(self) -> tuple[Command, Quantity | None] | None:
        assert self._governor is not None
        want, have = self._desired, self._applied
        if not self._link_up:
            return None
        if want.belt is Belt.STOPPED:
            return (Command.STOP, None) if have.belt is not Belt.STOPPED else None
        if self._holding:
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
                return (Command.SET_SPEED, self._governor.ramp(None, want.speed))
            return (Command.START, None)
        if want.incline is not None and want.incline != have.incline:
            return (Command.SET_INCLINE, want.incline)
        if want.speed is not None and want.speed != have.speed:
            return (Command.SET_SPEED, self._governor.ramp(have.speed, want.speed))
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
            self.hold(FaultKind.COMMAND_TIMEOUT, str(err))
            return
        except CommandRejected as err:
            self._rejected(command, value, err)
            return
        except LinkLost as err:
            self._link_lost(str(err))  # nothing was sent: the same step goes out on return
            return
        except DeviceError as err:
            self._record_applied(command, value)
            self._fault(FaultKind.DEVICE, f"{command}: {err}")
            return
        self._record_applied(command, value)
        if command is Command.SET_SPEED and value is not None:
            if value == self._desired.speed:
                self._watch_speed(value, issued)
            elif self._applied.belt is Belt.RUNNING:
                # A ramp step: the belt gets there before the next one goes out.
                await self._ramp_step_reached(value, issued)
            return
        self.emit(CommandConfirmed(self.clock.now(), command, value, self.clock.now() - issued))
        first_step = self._applied.speed
        if (
            command is Command.START
            and first_step is not None
            and first_step != self._desired.speed
        ):
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
            seen = f"{format_number(self._telemetry.speed.mph)} mph" if self._telemetry else "?"
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
        applied = self._applied
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
        if err.reason is Rejection.SAFETY_KEY:
            self.hold(FaultKind.SAFETY_KEY, f"the treadmill refused {command}: {err}")
        elif command is Command.START:
            self.hold(FaultKind.START_REJECTED, f"the treadmill refused {command}: {err}")

    def _fault(self, kind: FaultKind, message: str) -> None:
        fault = Fault(self.clock.now(), kind, message, fatal=True)
        self.last_fault = fault
        self.emit(fault)
        self.stop(StopReason.FAULT, message)

    def hold(self, kind: FaultKind, message: str, *, stop_belt: bool = True) -> None:
        """Pause the program and send nothing but stop until a person resumes."""
        fault = Fault(self.clock.now(), kind, f"{message}: program paused", fatal=False)
        self.last_fault = fault
        if self._holding is None or kind is not FaultKind.LINK_LOST:
            # A link lost during another hold keeps that hold: when the link returns, only
            # the hold that the link itself caused may end without a person.
            self._hold_kind = kind
        self._holding = message
        self._held_at = self.clock.now()
        self._seen_moving, self._still_since = False, None
        self._scheduler.pause(message)
        if stop_belt:
            self._desired.belt = Belt.STOPPED
        self.emit(fault)
        self._wake.set()

    # -- the watchdog: stale or frozen telemetry, overspeed, holds nobody will resume ---------

    def _watch(self, at: float) -> None:
        """Look every ``WATCH_INTERVAL_S``: a timer rather than a task, because a rehearsal
        looks twice a second of its program. The next look is armed first, so a look that
        fails is logged by the loop and the watch goes on."""
        self._watchdog = self.clock.call_at(
            at + WATCH_INTERVAL_S, lambda: self._watch(at + WATCH_INTERVAL_S)
        )
        confirm = self.profile.confirm
        now = self.clock.now()
        moving = self._applied.belt is Belt.RUNNING and not self._holding and self._link_up
        last = self._telemetry_moved_at
        still = self._still_since
        if moving and still is not None and now - still > STILL_GRACE_S:
            self.hold(
                FaultKind.BELT_STOPPED,
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
            fresh = self._telemetry is not None and now - self._telemetry.at < 1.5
            what = "repeats one value" if fresh else "stopped arriving"
            self.hold(FaultKind.TELEMETRY_STALE, f"telemetry {what} for {now - last:.0f} s")
        if (
            self.unattended
            and self._holding
            and self._held_at is not None
            and now - self._held_at > self.hold_limit_s
        ):
            self._fault(FaultKind.HOLD_TIMEOUT, f"held {self.hold_limit_s:.0f} s unattended")

    # -- confirmation against telemetry -------------------------------------------------------

    def _watch_speed(self, target: Quantity, issued: float) -> None:
        if self._confirm is not None:
            self._confirm.cancel()
        self._reached.clear()
        self._confirm = asyncio.create_task(self._confirm_speed(target, issued))

    def _speed_reached(self, target: Quantity) -> bool:
        latest = self._telemetry
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
        actual = self._telemetry.speed if self._telemetry else None
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
            flags = (self._reached, self._wake) if interruptible else (self._reached,)
            await sleep_until_raised(self.clock, deadline, *flags)
        return True

    # -- what the machine reports -------------------------------------------------------------

    def _on_report(self, report: Report) -> None:
        if isinstance(report, Telemetry):
            previous, self._telemetry = self._telemetry, report
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
                and self._applied.belt is Belt.RUNNING
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
        self._applied.belt = Belt.STOPPED
        self.resume()

    def _check_overspeed(self, report: Telemetry) -> None:
        step = self._scheduler.current
        commanded = self._applied.speed
        if step is None or commanded is None or self._applied.belt is not Belt.RUNNING:
            self._overspeed_since = None
            return
        unit = report.speed.unit
        if self._overspeed_limit[:3] != (commanded, step, unit):
            # once per command, block and unit, not per reading (exact sums are not free)
            tolerance = self.profile.confirm.tolerance_mph.value
            limit = max(commanded.to(Unit.MPH).value, step.band.high.value) + 2 * tolerance
            self._overspeed_limit = (commanded, step, unit, Quantity(limit, Unit.MPH).to(unit))
        if report.speed.value <= self._overspeed_limit[3].value:
            self._overspeed_since = None
            return
        if self._overspeed_since is None:
            self._overspeed_since = report.at
        elif report.at - self._overspeed_since >= OVERSPEED_GRACE_S:
            self._fault(
                FaultKind.OVERSPEED,
                f"belt at {format_number(report.speed.mph)} mph, commanded "
                f"{format_number(commanded.mph)} mph: does this machine read the speed field "
                "as mph? (profile quirk speed_field_mph)",
            )

    def _link_lost(self, detail: str) -> None:
        if not self._link_up:
            return
        self._link_up = False
        self.hold(FaultKind.LINK_LOST, f"link lost ({detail})")

    def _link_restored(self, at: float) -> None:
        self._link_up = True
        # The belt's state is unknown until telemetry says: assume it may be running and stop
        # (a stop the machine took before the link dropped says nothing about it now).
        self._applied.belt = Belt.RUNNING
        self._stop_accepted = False
        self._link_returned.set()  # a stop waiting to be asked again goes out now
        self._applied.speed = None
        self._telemetry_moved_at = at
        now_identity = self.treadmill.identity
        if self._identity is not None and now_identity not in (None, self._identity):
            # Another treadmill answered where ours was: stop it and end, never drive it.
            self._fault(
                FaultKind.DIFFERENT_MACHINE,
                f"the link came back to a different treadmill ({now_identity}, not "
                f"{self._identity}): stopping it and ending the session",
            )
            self._wake.set()
            return
        same = self._identity is not None and now_identity == self._identity
        if self.unattended and self._hold_kind is FaultKind.LINK_LOST and same:
            self._resume_when_stopped = True
            self.emit(LinkRestored(at, "link restored: stopping the belt, then restarting"))
        elif self.unattended and self._hold_kind is FaultKind.LINK_LOST:
            # Nothing tells this machine from another at the same port: a person must confirm.
            self.emit(
                LinkRestored(
                    at,
                    "link restored: belt being stopped; this machine cannot say which treadmill "
                    "it is, so the program stays held until a person resumes",
                )
            )
        elif self.unattended:
            # Held for something else (a command never answered, a stop at the console): the
            # same hold on every link, whether or not the protocol dropped the link meanwhile.
            self.emit(
                LinkRestored(at, f"link restored: belt being stopped; still held ({self._holding})")
            )
        else:
            self.emit(LinkRestored(at, "link restored: belt being stopped; resume when ready"))
        self._wake.set()

    def _on_machine_event(self, event: MachineEvent) -> None:
        kind = event.kind
        if kind is MachineEventKind.LINK_LOST:
            self._link_lost("the treadmill stopped answering")
            return
        if kind is MachineEventKind.LINK_RESTORED:
            self._link_restored(event.at)
            return
        if kind in CONSOLE_HOLDS:
            # The physical console always wins: pause the program and send nothing until a
            # person resumes (in retrotread, or by starting the belt at the console).
            self._applied.belt = (
                Belt.PAUSED if kind is MachineEventKind.PAUSED_AT_CONSOLE else Belt.STOPPED
            )
            self._applied.speed = None
            fault_kind, message = CONSOLE_HOLDS[kind]
            self.hold(fault_kind, message, stop_belt=False)
        elif kind is MachineEventKind.STARTED_AT_CONSOLE and self._holding:
            self.emit(Notice(event.at, "belt started at the console: resuming the program"))
            self._applied.belt = Belt.RUNNING
            self.resume()
        elif kind is MachineEventKind.CONTROL_LOST:
            # The driver asked for control again and was refused: the console or another app
            # has the machine. Nothing can be sent (not even stop) until a person resumes.
            self.hold(FaultKind.CONTROL_LOST, "the treadmill refused control", stop_belt=False)
        elif kind is MachineEventKind.TARGET_SPEED_CHANGED and event.value is not None:
            self.emit(
                Notice(
                    event.at,
                    f"speed changed at the console to {format_number(event.value.mph)} mph",
                )
            )
        else:
            self.emit(Notice(event.at, kind.value))
