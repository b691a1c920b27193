"""The device and the state of the link to it."""

from __future__ import annotations

import enum

from rich.text import Text
from textual.widgets import Static


class LinkStatus(enum.StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"  # the link dropped; the driver is trying to get it back
    LOST = "lost"  # the link is gone: commands, STOP included, cannot reach the belt
    CLOSED = "closed"  # the session is over and the link released


class LinkState(Static):
    """``simulator (simulator) ■ connected``, coloured by state."""

    def __init__(self, device: str, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.device = device
        self.status = LinkStatus.CONNECTING
        self._render_status()

    def set_status(self, status: LinkStatus) -> None:
        if status is not self.status:
            self.status = status
            self._render_status()

    def _render_status(self) -> None:
        for status in LinkStatus:
            self.set_class(status is self.status, f"-{status.value}")
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(self.device)
        text.append(" ■ ", style="bold")
        text.append(self.status.value, style="bold")
        self.update(text)
