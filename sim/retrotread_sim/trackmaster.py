"""The treadmill's side of the Trackmaster serial protocol (the simulator's own reader).

Written from the Trackmaster manual's command tables as the public trackmaster-python library
(hsharrison/trackmaster-python, ``src/trackmaster/raw.py``) uses them: the codes are listed
"in HEX", and each is one byte on the wire. A command is the byte ``A<n>``, followed for
``A3``/``A4`` by four ASCII digits; there is no terminator. The machine answers one byte:

==============  ========================================  ==========
command         meaning                                   answer
==============  ========================================  ==========
``A1``          start the belt                            ``B1``
``A2``          stop the belt                             ``B2``
``A3`` dddd     set speed, 4 ASCII digits in 0.1 mph      ``B3``
``A4`` dddd     set grade, 4 ASCII digits in 0.1 %        ``B4``
``C1``          status: actual belt speed                 ``D1`` dddd
``C2``          status: actual grade                      ``D2`` dddd
``C3``, ``C4``  status: the speed and grade set           ``D3``/``D4`` dddd
==============  ========================================  ==========

``BE`` answers a value out of range, ``BF`` a command the machine does not know or cannot carry
out now (the safety key out, or bytes that are not a command). Two machines
(``PERSONALITIES``): ``trackmaster`` answers only the A commands (the status requests are
illegal, ``BF``), so a controller can see nothing of its belt; ``trackmaster-query`` also
answers the C status requests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from retrotread_sim.belt import KMH_PER_MPH, Refusal, SimRefused, SimTreadmill

DIGITS = 4
TAKES_DIGITS = frozenset((0xA3, 0xA4))
PERSONALITIES = {
    "trackmaster": "Trackmaster that answers the A commands only (no status requests)",
    "trackmaster-query": "Trackmaster that also answers the C status requests (C1-C4)",
}
ACK = {0xA1: b"\xb1", 0xA2: b"\xb2", 0xA3: b"\xb3", 0xA4: b"\xb4"}
OUT_OF_RANGE = b"\xbe"
ILLEGAL = b"\xbf"


def describe(request: bytes) -> str:
    """``A3 30 30 32 36`` -> ``"A3 0026"`` (for journals and notes)."""
    if not request:
        return ""
    digits = request[1:].decode("ascii", errors="replace")
    return f"{request[0]:02X} {digits}".rstrip()


@dataclass(frozen=True)
class Handled:
    request: bytes
    reply: bytes | None
    note: str
    commands: tuple[str, ...] = field(default_factory=tuple)


class CommandSplitter:
    """Cuts the byte stream into commands: a command byte, and its digits where it takes some.

    A command byte arriving before the digits of the one before are complete cuts that one
    short; it comes out as incomplete (answered ``BF``), as does any byte that starts nothing.
    """

    def __init__(self) -> None:
        self._partial = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        """(command bytes, complete) pairs."""
        out: list[tuple[bytes, bool]] = []
        for byte in data:
            if self._partial:
                if 0x30 <= byte <= 0x39:
                    self._partial.append(byte)
                    if len(self._partial) == 1 + DIGITS:
                        out.append((bytes(self._partial), True))
                        self._partial.clear()
                    continue
                out.append((bytes(self._partial), False))
                self._partial.clear()
            if byte in TAKES_DIGITS:
                self._partial.append(byte)
            else:
                out.append((bytes((byte,)), 0xA0 <= byte <= 0xCF))
        return out


class TrackmasterResponder:
    """Answers Trackmaster commands for one :class:`SimTreadmill`."""

    protocol = "trackmaster"

    def __init__(self, machine: SimTreadmill, *, status_query: bool = False) -> None:
        self.machine = machine
        self.status_query = status_query
        self.splitter = CommandSplitter()

    @property
    def personality(self) -> str:
        return "trackmaster-query" if self.status_query else "trackmaster"

    def feed(self, data: bytes) -> list[Handled]:
        return [self.handle(request, complete) for request, complete in self.splitter.feed(data)]

    def handle(self, request: bytes, complete: bool = True) -> Handled:
        name = f"{request[0]:02X}"
        if not complete:
            return Handled(request, ILLEGAL, f"incomplete or unknown: {describe(request)}", (name,))
        answer, note = self._answer(request[0], request[1:].decode("ascii"))
        return Handled(request, answer, note, (name,))

    def snapshot(self) -> dict[str, object]:
        return {"personality": self.personality}

    def _answer(self, code: int, digits: str) -> tuple[bytes, str]:
        if code == 0xA1:
            return self._call(code, self.machine.start)
        if code == 0xA2:
            self.machine.stop()
            return ACK[code], "ok"
        if code in TAKES_DIGITS:
            tenths = int(digits)
            if code == 0xA3:
                kmh = tenths / 10 * KMH_PER_MPH
                return self._call(code, lambda: self.machine.set_target_speed(kmh))
            return self._call(code, lambda: self.machine.set_target_incline(tenths / 10))
        if self.status_query and 0xC1 <= code <= 0xC4:
            snap = self.machine.snapshot()
            mph = (snap.speed_kmh if code == 0xC1 else snap.target_speed_kmh) / KMH_PER_MPH
            pct = snap.incline_pct if code == 0xC2 else snap.target_incline_pct
            value = mph if code in (0xC1, 0xC3) else pct
            count = min(max(round(value * 10), 0), 9999)
            return bytes((0xD0 | (code & 0x0F),)) + f"{count:04d}".encode("ascii"), "ok"
        return ILLEGAL, f"illegal command {code:02X}"

    @staticmethod
    def _call(code: int, action: Callable[[], None]) -> tuple[bytes, str]:
        try:
            action()
        except SimRefused as refusal:
            # The protocol has two refusals: a value out of range, or "illegal" for the rest.
            return (OUT_OF_RANGE if refusal.reason is Refusal.OUT_OF_RANGE else ILLEGAL), str(
                refusal
            )
        return ACK[code], "ok"
