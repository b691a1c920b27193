"""The clinic's part of a recorded run: the client's limits for the governor, shown before the
start, and their heart-rate strap watched while the program plays."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TextIO

from retrotread.clinic.heart import HeartHost, HeartRateMonitor
from retrotread.clinic.limits import ClientLimits
from retrotread.clock import Clock
from retrotread.safety import ClientCaps

if TYPE_CHECKING:
    from collections.abc import Callable

    from retrotread.events import Listener
    from retrotread.recording import Recording
    from retrotread.session import Session
    from retrotread.store import Client, Store


class Subscribing(HeartHost, Protocol):
    """A session as the clinic uses it: its events, its recovery request, subscribing."""

    def subscribe(self, listener: Listener) -> object: ...


@dataclass
class ClinicRun:
    client_name: str
    limits: ClientLimits
    monitor: HeartRateMonitor | None = None

    @property
    def caps(self) -> ClientCaps | None:
        return None if self.limits.empty else self.limits.caps(self.client_name)

    def show(self, out: TextIO | None = None) -> None:
        """The limits, before the start."""
        lines = self.limits.describe()
        if not lines:
            return
        stream = out or sys.stdout
        print(f"Limits for {self.client_name}:", file=stream)
        for line in lines:
            print(f"  {line}", file=stream)

    def attach(self, session: Subscribing, clock: Clock) -> None:
        """Watch the client's strap (if they have one) for the heart-rate ceiling."""
        if not self.limits.strap:
            return
        self.monitor = HeartRateMonitor(
            session,
            self.limits.strap,
            clock,
            self.limits.ceiling,
            self.limits.recovery_speed,
        )
        session.subscribe(self.monitor)


def clinic_for(store: Store | None, client: Client | None) -> ClinicRun | None:
    """The client's clinic setup for a run; None for a run without a client."""
    if store is None or client is None:
        return None
    from retrotread.clinic import records

    return ClinicRun(client.name, records.limits(store, client))


def console_start(recording: Recording) -> Callable[[Session], None]:
    """The console's session-start hook for a recorded client: the recorder, the client's
    limits for the governor (said before the go), and their strap."""
    clinic = clinic_for(recording.store, recording.client)

    def start(session: Session) -> None:
        recording.attach(session)
        if clinic is None:
            return
        session.caps = clinic.caps  # read when the session starts, before the belt moves
        lines = clinic.limits.describe()
        if lines:
            session.notify(f"Limits for {clinic.client_name}: " + "; ".join(lines))
        clinic.attach(session, session.clock)

    return start
