"""The device and the state of the link to it."""

from __future__ import annotations

import enum

from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget

STATUS_MARK = " ■ "
ELLIPSIS = "…"


class LinkStatus(enum.StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"  # the link dropped; the driver is trying to get it back
    LOST = "lost"  # the link is gone: commands, STOP included, cannot reach the belt
    CLOSED = "closed"  # the session is over and the link released


def link_text(device: str, status: LinkStatus, width: int) -> Text:
    """``device ■ status`` in ``width`` cells: the device name gives way, never the status
    (a long serial port path must not hide whether the link is up)."""
    tail = f"{STATUS_MARK}{status.value}"
    room = width - len(tail)
    shown = device if len(device) <= room else device[: max(room - 1, 0)] + ELLIPSIS
    text = Text(no_wrap=True, overflow="crop")
    if room > 0:
        text.append(shown[:room])
    text.append(STATUS_MARK, style="bold")
    text.append(status.value, style="bold")
    return text


class LinkState(Widget):
    """``simulator (simulator) ■ connected``, coloured by state."""

    def __init__(self, device: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.device = device
        self.status = LinkStatus.CONNECTING
        self._set_classes()

    def set_status(self, status: LinkStatus) -> None:
        if status is not self.status:
            self.status = status
            self._set_classes()
            self.refresh(layout=True)

    def _set_classes(self) -> None:
        for status in LinkStatus:
            self.set_class(status is self.status, f"-{status.value}")

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return len(self.device) + len(STATUS_MARK) + len(self.status.value)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return 1

    def render(self) -> Text:
        return link_text(self.device, self.status, self.content_size.width)
