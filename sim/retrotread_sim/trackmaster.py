"""The treadmill's side of the Trackmaster ASCII protocol (the simulator's own reader).

Commands are ``A<n>`` plus ASCII digits; each is answered ``B<n>``, or ``BE`` when a value is out
of range and ``BF`` when the command is not one the machine knows:

==========  ========================================  ==========
command     meaning                                   answer
==========  ========================================  ==========
``A1``      start the belt                            ``B1``
``A2``      stop the belt                             ``B2``
``A3dddd``  set speed, 4 digits in 0.1 mph            ``B3``
``A4dddd``  set grade, 4 digits in 0.1 %              ``B4``
``A5``      *optional:* report belt speed             ``B5dddd``
``A6``      *optional:* report grade                  ``B6dddd``
==========  ========================================  ==========

Every message ends with a carriage return; the reader also accepts a line feed. ``A5``/``A6``
are not in every unit's command set: the simulator answers them only when started with
``--status-query`` (otherwise they are illegal, ``BF``), so a controller can be tested both
with and without telemetry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from retrotread_sim.belt import KMH_PER_MPH, Refusal, SimRefused, SimTreadmill

TERMINATOR = b"\r"
LONGEST_LINE = 32


@dataclass(frozen=True)
class Handled:
    request: bytes
    reply: bytes | None
    note: str
    commands: tuple[str, ...] = field(default_factory=tuple)


class LineSplitter:
    """Cuts a byte stream into lines at CR or LF; overlong lines are dropped, never raised."""

    def __init__(self) -> None:
        self._partial = bytearray()
        self._overflowed = False

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        """(line, complete) pairs; ``complete`` is False for a line cut short by overflow."""
        lines: list[tuple[bytes, bool]] = []
        for value in data:
            if value in (0x0D, 0x0A):
                if self._overflowed:
                    self._overflowed = False
                elif self._partial:
                    lines.append((bytes(self._partial), True))
                self._partial.clear()
            elif not self._overflowed:
                self._partial.append(value)
                if len(self._partial) > LONGEST_LINE:
                    lines.append((bytes(self._partial), False))
                    self._partial.clear()
                    self._overflowed = True
        return lines


class TrackmasterResponder:
    """Answers Trackmaster commands for one :class:`SimTreadmill`."""

    protocol = "trackmaster"

    def __init__(self, machine: SimTreadmill, *, status_query: bool = False) -> None:
        self.machine = machine
        self.status_query = status_query
        self.splitter = LineSplitter()

    def feed(self, data: bytes) -> list[Handled]:
        return [self.handle(line, complete) for line, complete in self.splitter.feed(data)]

    def handle(self, line: bytes, complete: bool = True) -> Handled:
        if not complete:
            return Handled(line, b"BF" + TERMINATOR, "line too long", ("?",))
        text = line.decode("ascii", errors="replace").strip()
        answer, note = self._answer(text)
        return Handled(line + TERMINATOR, answer.encode("ascii") + TERMINATOR, note, (text[:2],))

    def snapshot(self) -> dict[str, object]:
        return {}

    def _answer(self, text: str) -> tuple[str, str]:
        code, digits = text[:2], text[2:]
        if code in ("A1", "A2", "A5", "A6") and digits:
            return "BF", f"{code} takes no value"
        if code == "A1":
            return self._call("B1", self.machine.start)
        if code == "A2":
            self.machine.stop()
            return "B2", "ok"
        if code in ("A3", "A4"):
            if len(digits) != 4 or not digits.isdigit() or not digits.isascii():
                return "BF", f"{code} needs 4 digits, got {digits!r}"
            tenths = int(digits)
            if code == "A3":
                kmh = tenths / 10 * KMH_PER_MPH
                return self._call("B3", lambda: self.machine.set_target_speed(kmh))
            return self._call("B4", lambda: self.machine.set_target_incline(tenths / 10))
        if self.status_query and code == "A5":
            mph = self.machine.snapshot().speed_kmh / KMH_PER_MPH
            return f"B5{min(round(mph * 10), 9999):04d}", "ok"
        if self.status_query and code == "A6":
            pct = self.machine.snapshot().incline_pct
            return f"B6{min(max(round(pct * 10), 0), 9999):04d}", "ok"
        return "BF", f"illegal command {text!r}"

    @staticmethod
    def _call(ack: str, action: Callable[[], None]) -> tuple[str, str]:
        try:
            action()
        except SimRefused as refusal:
            # The protocol has two refusals: a value out of range, or "illegal" for the rest.
            return ("BE" if refusal.reason is Refusal.OUT_OF_RANGE else "BF"), str(refusal)
        return ack, "ok"
