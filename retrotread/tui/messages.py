"""Textual messages: how the engine's events and the session's end reach the console.

The engine calls its listeners synchronously and must never wait on the UI, so the console's
listener only wraps each event in a message and posts it; screens handle it on their own
message queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

from retrotread.errors import RetrotreadError
from retrotread.events import Event, SessionSummary

if TYPE_CHECKING:  # a screen that shows the session needs no device registry
    from retrotread.tui.devices import DeviceChoice


@dataclass
class EngineEvent(Message):
    """One event from the session (program, commands, telemetry, faults)."""

    event: Event


@dataclass
class AwaitingGo(Message):
    """The device is connected and the program checked: the belt starts on the operator's go."""


@dataclass
class SessionFinished(Message):
    """The session is over and the belt has been told to stop."""

    summary: SessionSummary


@dataclass
class SessionFailed(Message):
    """The session could not start (the device could not be reached); nothing moved."""

    error: RetrotreadError
    device: str


@dataclass
class DevicesFound(Message):
    """A scan finished: what it found, or why it could not scan."""

    devices: Sequence[DeviceChoice]
    error: str = ""
