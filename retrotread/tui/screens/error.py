"""Errors as modal messages: what happened, and what to do next.

A modal never takes STOP away: ``s`` and Escape stop the belt from here as everywhere.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from retrotread.errors import RetrotreadError
from retrotread.events import CommandUnconfirmed, Fault, SessionSummary


class Choice(enum.StrEnum):
    RESUME = "resume"
    STOP = "stop"
    OK = "ok"


CHOICE_LABELS = {
    Choice.RESUME: "Resume (space)",
    Choice.STOP: "STOP (s)",
    Choice.OK: "OK (enter)",
}


@dataclass(frozen=True)
class Problem:
    title: str
    what: str  # what happened
    next_steps: str  # what the operator should do now
    choices: tuple[Choice, ...] = (Choice.OK, Choice.STOP)
    key: str = ""  # problems with the same key replace each other instead of stacking


#: The session's holds (program paused, nothing but stop sent until a person resumes), by
#: fault kind: a title, what happened, what to do next.
HOLDS = {
    "safety-key": (
        "Safety key pulled",
        "The safety key was pulled: the belt has stopped and the program is paused.",
        "Check on the walker. Put the safety key back, then press space to resume "
        "(the belt starts again) or s to end the session.",
    ),
    "stopped-at-console": (
        "Stopped at the treadmill",
        "The belt was stopped at the treadmill's own console; the program is paused.",
        "Check on the walker. Press space to resume (or start the belt at the console), "
        "or s to end the session.",
    ),
    "paused-at-console": (
        "Paused at the treadmill",
        "The belt was paused at the treadmill's own console; the program is paused.",
        "Press space to resume (or resume at the console), or s to end the session.",
    ),
    "link-lost": (
        "Device lost",
        "The link to the treadmill dropped: the program is paused and retrotread cannot "
        "reach the belt until the link is back (it keeps trying).",
        "The belt may still be moving: if the walker needs it stopped, use the treadmill's "
        "stop button or safety key now. Once the link shows connected again, press space to "
        "resume, or s to end the session.",
    ),
}
HOLD_NEXT_STEPS = (
    "Nothing but stop is sent until you decide. Check the treadmill and the walker, then "
    "press space to resume or s to end the session."
)
FATAL_TITLES = {
    "safety": "Program refused for safety",
    "overspeed": "Belt too fast",
    "stop-rejected": "The treadmill refused stop",
    "hold-timeout": "Held too long",
    "internal": "Internal error",
}


def problem_for_fault(fault: Fault) -> Problem:
    """A fault the session raised: a hold pauses the program, a fatal one ends the session."""
    if not fault.fatal:
        title, what, next_steps = HOLDS.get(
            fault.kind,
            (fault.kind.replace("-", " ").capitalize(), f"{fault.message}.", HOLD_NEXT_STEPS),
        )
        return Problem(title, what, next_steps, (Choice.RESUME, Choice.STOP, Choice.OK), "hold")
    return Problem(
        FATAL_TITLES.get(fault.kind, "Device fault"),
        f"{fault.message}. The session is over and the belt has been told to stop.",
        "Watch the belt: if it is still moving, use the treadmill's stop button or safety "
        "key. Check the device and its connection before starting again.",
        (Choice.OK,),
        "fault",
    )


def problem_for_rejection(event: CommandUnconfirmed) -> Problem:
    return Problem(
        "Command rejected",
        f"The treadmill refused a command: {event.reason}. The program goes on; the belt "
        "keeps its last setting.",
        "Watch the belt's speed on the treadmill's display. If it is not safe for this "
        "block, press s to stop; otherwise press enter and carry on.",
        (Choice.OK, Choice.STOP),
        "rejected",
    )


def problem_for_connect(error: RetrotreadError, device: str) -> Problem:
    return Problem(
        "Cannot reach the device",
        f"{device}: {error}. Nothing was started.",
        "Check that the treadmill is on and in range (or the cable is in), then try again, "
        "or pick another device.",
        (Choice.OK,),
        "connect",
    )


def problem_for_ending(summary: SessionSummary, fault: Fault | None) -> Problem | None:
    """Shown over the summary when a session ended badly or the belt was not seen to stop."""
    if summary.belt_stopped and fault is None:
        return None
    if not summary.belt_stopped:
        return Problem(
            "Belt not seen to stop",
            f"The session ended ({summary.detail}) but the treadmill did not report a "
            "stopped belt.",
            "Look at the treadmill now. Stop it with its own stop button or the safety key "
            "if it is still moving.",
            (Choice.OK,),
            "ending",
        )
    assert fault is not None
    return problem_for_fault(fault)


def is_rejection(event: CommandUnconfirmed) -> bool:
    """The treadmill answered "no", as opposed to a belt that was slow to get there."""
    return event.rejected


class ErrorModal(ModalScreen[Choice]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "stop", "STOP", priority=True),
        Binding("escape", "stop", "STOP", show=False, priority=True),
        Binding("space", "choose('resume')", "Resume", priority=True),
        Binding("enter", "choose('ok')", "OK", priority=True),
    ]

    def __init__(self, problem: Problem) -> None:
        super().__init__(classes=f"-{problem.key}" if problem.key else None)
        self.problem = problem

    def compose(self) -> ComposeResult:
        problem = self.problem
        with Vertical(id="error-box"):
            yield Static(problem.title, id="error-title", markup=False)
            yield Static(problem.what, id="error-what", markup=False)
            yield Static("What to do next", id="error-next-label")
            yield Static(problem.next_steps, id="error-next", markup=False)
            with Horizontal(id="error-choices"):
                for choice in problem.choices:
                    button = Button(
                        CHOICE_LABELS[choice],
                        id=f"choice-{choice.value}",
                        variant="error" if choice is Choice.STOP else "default",
                        compact=True,
                    )
                    button.can_focus = False  # keys belong to the bindings, never to a button
                    yield button

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "choose" and parameters:
            return Choice(str(parameters[0])) in self.problem.choices
        return True

    async def action_stop(self) -> None:
        """STOP first (the belt does not wait for the modal to close), then close."""
        await self.app.run_action("stop_belt")
        self.dismiss(Choice.STOP)

    def action_choose(self, choice: str) -> None:
        self.dismiss(Choice(choice))

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        choice = Choice(str(event.button.id).removeprefix("choice-"))
        if choice is Choice.STOP:
            await self.action_stop()
        else:
            self.dismiss(choice)
