"""What the serial server and its consoles agree on: an exchange of bytes, the responder that
makes them, the line's timing, and how a frame is written down."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from retrotread_sim.belt import SimTreadmill

DEFAULT_BAUD = {"csafe": 9600, "trackmaster": 4800}
#: What each protocol's commands are, in the fault plan's words.
PLAN_COMMANDS = {
    "SET_SPEED": "set-speed",
    "SET_GRADE": "set-incline",
    "GO_IN_USE": "start",
    "GO_FINISHED": "stop",
    "A1": "start",
    "A2": "stop",
    "A3": "set-speed",
    "A4": "set-incline",
}
POLLS = {"GET_STATUS", "GET_SPEED", "GET_GRADE", "GET_HORIZONTAL", "GET_TWORK", "C1", "C2"}
SPLIT_GAP_S = 0.003
BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit


class Exchange(Protocol):
    @property
    def request(self) -> bytes: ...
    @property
    def reply(self) -> bytes | None: ...
    @property
    def note(self) -> str: ...
    @property
    def commands(self) -> tuple[str, ...]: ...


class Responder(Protocol):
    protocol: str

    def feed(self, data: bytes) -> Sequence[Exchange]: ...

    def snapshot(self) -> dict[str, object]: ...


def hex_bytes(data: bytes) -> str:
    return " ".join(f"{value:02X}" for value in data)


def machine_state(machine: SimTreadmill, responder: Responder) -> dict[str, object]:
    snap = machine.snapshot()
    return {
        "belt": snap.state.value,
        "speed_kmh": round(snap.speed_kmh, 4),
        "target_speed_kmh": round(snap.target_speed_kmh, 4),
        "incline_pct": round(snap.incline_pct, 3),
        "target_incline_pct": round(snap.target_incline_pct, 3),
        "distance_m": round(snap.distance_m, 2),
        "stopped": machine.belt_stopped,
        **responder.snapshot(),
    }


@dataclass
class WireTiming:
    """Line-rate emulation: when each burst of bytes has finished crossing the wire."""

    seconds_per_byte: float
    rx_free: float = 0.0
    tx_free: float = 0.0

    def arrival(self, now: float, size: int) -> float:
        self.rx_free = max(self.rx_free, now) + size * self.seconds_per_byte
        return self.rx_free

    def departure(self, now: float, size: int) -> float:
        self.tx_free = max(self.tx_free, now) + size * self.seconds_per_byte
        return self.tx_free
