"""The floor's topic layout and payloads (JSON, UTF-8), in one place.

::

    retrotread/<console-id>/availability   "online" / "offline"      retained, last will
    retrotread/<console-id>/state          the console's state       retained
    retrotread/<console-id>/event          what just happened        not retained
    retrotread/<console-id>/command        stop / pause, signed      the console listens
    <prefix>/<component>/retrotread_<console-id>/<object>/config    Home Assistant discovery

A console id is what the floor calls the machine ("tm-03"): letters, digits, ``-`` and ``_``,
so it never adds a topic level or a wildcard.
"""

from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass
from typing import Any

from retrotread.events import (
    BlockStarted,
    Countdown,
    Event,
    Fault,
    Notice,
    ProgramStarted,
    SessionEnded,
    SessionState,
    StopProgress,
)
from retrotread.units import Quantity

ROOT = "retrotread"
ONLINE, OFFLINE = "online", "offline"
PAYLOAD_VERSION = 1
CONSOLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
CLIENT_NAME_CHOICES = ("full", "initials", "none")


class TopicError(ValueError):
    """A console id or a payload the floor cannot use."""


def check_console_id(console_id: str) -> str:
    if not CONSOLE_ID.match(console_id):
        raise TopicError(
            f"console id {console_id!r}: use 1-64 letters, digits, '-' or '_' (it is an MQTT "
            "topic level: no '/', '+', '#' or spaces), starting with a letter or digit"
        )
    return console_id


def default_console_id() -> str:
    """This machine's host name, made a valid console id."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0]).strip("-_")
    return name[:64] or "console"


def availability_topic(console_id: str) -> str:
    return f"{ROOT}/{console_id}/availability"


def state_topic(console_id: str) -> str:
    return f"{ROOT}/{console_id}/state"


def event_topic(console_id: str) -> str:
    return f"{ROOT}/{console_id}/event"


def command_topic(console_id: str) -> str:
    return f"{ROOT}/{console_id}/command"


#: what the floor subscribes to (every console)
FLOOR_SUBSCRIPTIONS = (f"{ROOT}/+/availability", f"{ROOT}/+/state", f"{ROOT}/+/event")


def split_topic(topic: str) -> tuple[str, str] | None:
    """``retrotread/<id>/<leaf>`` -> (id, leaf); None for anything else."""
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != ROOT or not CONSOLE_ID.match(parts[1]):
        return None
    return parts[1], parts[2]


def shown_client(name: str | None, choice: str) -> str | None:
    """What the floor sees of the client: the name, its initials ("J.D."), or nothing."""
    if not name or choice == "none":
        return None
    if choice == "full":
        return name
    return "".join(f"{word[0].upper()}." for word in name.split() if word[:1].isalnum()) or None


def _mph(value: Quantity | None) -> float | None:
    return None if value is None else round(value.mph, 2)


def _incline(value: Quantity | None) -> float | None:
    return None if value is None else round(float(value.value), 1)


@dataclass
class Context:
    """What the state payload carries beyond the latest :class:`SessionState`: from the events
    (the program, the last countdown and fault, how it ended) and the console's settings."""

    console_id: str
    client: str | None = None
    program: str = ""
    blocks_total: int = 0
    countdown: int | None = None
    fault: dict[str, Any] | None = None
    ended: dict[str, Any] | None = None
    remote: str | None = None  # the last command from the floor, and who sent it

    def note(self, event: Event) -> None:
        match event:
            case ProgramStarted(program=program):
                self.program, self.blocks_total = program.name, len(program.steps)
                self.fault = self.ended = None
            case Countdown(count=count):
                self.countdown = count
            case BlockStarted():
                self.countdown = None
            case Fault(kind=kind, message=message, fatal=fatal):
                self.fault = {"kind": kind.value, "message": message, "fatal": fatal}
            case SessionEnded(outcome=outcome, detail=detail, belt_stopped=stopped):
                self.countdown = None
                self.ended = {"outcome": outcome.value, "detail": detail, "belt_stopped": stopped}


def state_payload(state: SessionState, context: Context, wall: float) -> dict[str, Any]:
    """The retained state: everything a tile shows, as of ``wall`` (the publisher's clock)."""
    step = state.step
    actual = state.actual
    return {
        "v": PAYLOAD_VERSION,
        "console": context.console_id,
        "t": round(wall, 3),
        "device": state.device,
        "program": context.program,
        "client": context.client,
        "engine": state.engine.value,
        "belt": state.belt.value,
        "block": None
        if step is None
        else {
            "title": step.title,
            "kind": step.kind.value,
            "label": step.kind.label,
            "index": step.index + 1,
            "of": context.blocks_total,
        },
        "countdown": context.countdown,
        "block_remaining_s": round(state.block_remaining_s, 1),
        "program_elapsed_s": round(state.program_elapsed_s, 1),
        "program_remaining_s": round(state.program_remaining_s, 1),
        "target_speed_mph": _mph(state.target_speed),
        "target_incline_pct": _incline(state.target_incline),
        "actual_speed_mph": None if actual is None else _mph(actual.speed),
        "actual_incline_pct": None if actual is None else _incline(actual.incline),
        "link_up": state.link_up,
        "hold": state.hold,
        "hold_kind": None if state.hold_kind is None else state.hold_kind.value,
        "stop_requested": state.stop_requested,
        "fault": context.fault,
        "ended": context.ended,
        "remote": context.remote,
    }


def event_payload(event: Event, context: Context, wall: float) -> dict[str, Any] | None:
    """The events a floor shows as they happen (not retained); None for the rest."""
    body: dict[str, Any]
    match event:
        case ProgramStarted(program=program):
            body = {"type": "program", "program": program.name, "blocks": len(program.steps)}
        case BlockStarted(step=step):
            body = {"type": "block", "title": step.title, "kind": step.kind.value}
        case Countdown(count=count, step=step):
            body = {"type": "countdown", "count": count, "next": step.title if step else None}
        case Fault(kind=kind, message=message, fatal=fatal):
            body = {"type": "fault", "kind": kind.value, "message": message, "fatal": fatal}
        case StopProgress(state=stop_state, message=message):
            body = {"type": "stop", "state": stop_state.name.lower(), "message": message}
        case SessionEnded(outcome=outcome, detail=detail, belt_stopped=stopped):
            body = {
                "type": "ended",
                "outcome": outcome.value,
                "detail": detail,
                "belt_stopped": stopped,
            }
        case Notice(message=message):
            body = {"type": "notice", "message": message}
        case _:
            return None
    return {"v": PAYLOAD_VERSION, "console": context.console_id, "t": round(wall, 3), **body}


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def decode(raw: bytes | bytearray | str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise TopicError(f"not JSON: {err}") from err
    if not isinstance(value, dict):
        raise TopicError("not a JSON object")
    return value
