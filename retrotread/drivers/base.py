"""The one interface every treadmill driver implements.

A driver is opened from a URL (see :mod:`retrotread.drivers.registry`), used as an async
context manager, and speaks in exact quantities that the safety governor has already checked
and quantized. Drivers push what the machine reports — telemetry and machine events — to
subscribers; they never decide policy (pause the program, resend, ...), the session does.

Like harlequin's adapters, each driver declares what it can do as class attributes, so front
ends can ask without connecting.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Self

from retrotread.clock import Clock
from retrotread.drivers.url import DeviceUrl
from retrotread.profiles import Profile, get_profile
from retrotread.units import Increment, Quantity


@dataclass(frozen=True)
class Range:
    low: Quantity
    high: Quantity
    increment: Increment


@dataclass(frozen=True)
class Capabilities:
    """What the connected machine accepts (read from it where the protocol allows)."""

    speed: Range
    incline: Range
    can_control: bool = True


class BeltStatus(enum.StrEnum):
    UNKNOWN = "unknown"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Telemetry:
    at: float
    speed: Quantity
    incline: Quantity
    distance_m: float
    elapsed_s: float
    belt: BeltStatus = BeltStatus.UNKNOWN


class MachineEventKind(enum.StrEnum):
    STOPPED_AT_CONSOLE = "stopped at the console"
    PAUSED_AT_CONSOLE = "paused at the console"
    STARTED_AT_CONSOLE = "started at the console"
    SAFETY_KEY = "safety key pulled"
    TARGET_SPEED_CHANGED = "target speed changed at the console"
    TARGET_INCLINE_CHANGED = "target incline changed at the console"
    CONTROL_LOST = "control permission lost"
    RESET = "machine reset"
    LINK_LOST = "link lost"
    LINK_RESTORED = "link restored"


@dataclass(frozen=True)
class MachineEvent:
    at: float
    kind: MachineEventKind
    value: Quantity | None = None


Report = Telemetry | MachineEvent
ReportListener = Callable[[Report], None]


class Treadmill(abc.ABC):
    """A treadmill reached through some protocol."""

    #: URL scheme this driver is registered under, e.g. ``"sim"``.
    scheme: ClassVar[str]
    #: The URL grammar, shown in help and in every URL error.
    url_grammar: ClassVar[str]
    #: Query options the URL accepts, with a one-line help each.
    url_options: ClassVar[dict[str, str]] = {}
    #: The bundled profile used when the URL names none.
    default_profile: ClassVar[str]
    #: Capabilities known without connecting.
    supports_pause: ClassVar[bool] = True
    supports_incline: ClassVar[bool] = True
    reports_distance: ClassVar[bool] = True

    def __init__(self, url: DeviceUrl, profile: Profile, clock: Clock) -> None:
        self.url = url
        self.profile = profile
        self.clock = clock
        self.name = str(url)
        self.latest: Telemetry | None = None
        self._listeners: list[ReportListener] = []

    @classmethod
    def from_url(cls, url: DeviceUrl, *, clock: Clock, profile: Profile | None = None) -> Self:
        """Build an unconnected driver; ``?profile=NAME`` in the URL picks a bundled profile."""
        if profile is None:
            profile = get_profile(url.options.get("profile", cls.default_profile))
        return cls(url, profile, clock)

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """Valid once connected."""

    @property
    @abc.abstractmethod
    def connected(self) -> bool: ...

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the link. Does not stop the belt: the session does that first."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- commands (values already governed and quantized) -------------------------------------

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def pause(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def set_speed(self, speed: Quantity) -> None: ...

    @abc.abstractmethod
    async def set_incline(self, incline: Quantity) -> None: ...

    # -- reports ------------------------------------------------------------------------------

    def subscribe(self, listener: ReportListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def publish(self, report: Report) -> None:
        if isinstance(report, Telemetry):
            self.latest = report
        for listener in list(self._listeners):
            listener(report)
