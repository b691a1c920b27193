"""Open a treadmill from a URL: the scheme picks the driver (like python-can's interface names).

The built-in drivers are :data:`DRIVERS`; other packages add theirs through the entry-point
group ``retrotread.drivers`` (:data:`ENTRY_POINT_GROUP`), named by URL scheme, the way
python-can finds third-party interfaces::

    [project.entry-points."retrotread.drivers"]
    mytread = "mytread.driver:MyTreadDriver"

The value names a :class:`~retrotread.drivers.base.Treadmill` subclass, or any object that
opens drivers the same way (:class:`Driver`: ``url_grammar``, ``url_options``, ``from_url``).
A driver may also offer ``scan(seconds)`` (:class:`Scanning`); the console's device picker asks
every driver that does. A built-in scheme cannot be taken over by a third-party package.

Drivers are imported only when their scheme is used, so ``sim://`` never loads bleak or
pyserial, and a driver whose pip extra is missing says which to install
(:mod:`retrotread.extras`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from retrotread.errors import DeviceUrlError, DriverUnavailable
from retrotread.extras import installed, missing_extra

if TYPE_CHECKING:  # the CLI reads the registry to build its options; a driver loads when opened
    from retrotread.clock import Clock
    from retrotread.drivers.base import Treadmill
    from retrotread.drivers.url import DeviceUrl
    from retrotread.profiles import Profile

ENTRY_POINT_GROUP = "retrotread.drivers"
BUILT_IN = "built-in"
DEFAULT_DEVICE = "sim://"


class Driver(Protocol):
    """What a URL scheme opens: a Treadmill subclass is one (its ``from_url`` classmethod);
    so is an object that picks among drivers by an option (``serial://...?protocol=``)."""

    @property
    def url_grammar(self) -> str: ...

    @property
    def url_options(self) -> Mapping[str, str]: ...

    def from_url(
        self, url: DeviceUrl, *, clock: Clock, profile: Profile | None = None
    ) -> Treadmill: ...


@runtime_checkable
class Scanning(Protocol):
    """A driver that can look for machines. Each item found has a ``url`` (or an
    ``address`` the driver's scheme opens) and a ``name``; see :mod:`retrotread.tui.devices`."""

    def scan(self, seconds: float) -> Awaitable[Iterable[Any]]: ...


Scan = Callable[[float], Awaitable[Iterable[Any]]]


@dataclass(frozen=True)
class DriverEntry:
    """One URL scheme and where its driver lives (``module:attribute``, not yet imported)."""

    scheme: str
    target: str
    #: built-in, or the distribution (name and version) that registered it
    origin: str = BUILT_IN
    #: ``module:function`` offering ``scan(seconds)``, for a driver that keeps it beside itself
    scan_target: str | None = None
    #: what a built-in needs beyond a plain install (a key of :data:`retrotread.extras.OPTIONAL`)
    extra: str | None = None

    @property
    def available(self) -> bool:
        """Whether what it needs is installed (looked up, not imported); True for plugins,
        which say so themselves when loaded."""
        return self.extra is None or installed(self.extra)

    def load(self) -> Driver:
        driver = _resolve(self, self.target)
        missing = [
            name for name in ("url_grammar", "url_options", "from_url") if not hasattr(driver, name)
        ]
        if missing or not callable(driver.from_url):
            raise DriverUnavailable(
                f"{self.scheme}:// ({self.origin}): {self.target} is not a retrotread driver "
                f"(it lacks {', '.join(missing) or 'a callable from_url'})"
            )
        return driver  # type: ignore[no-any-return]  # checked above: it has a driver's shape

    def scanner(self) -> Scan | None:
        """The driver's scan, or None if it offers none (imports the driver)."""
        if self.scan_target is not None:
            function: Scan = _resolve(self, self.scan_target)
            return function
        driver = self.load()
        return driver.scan if isinstance(driver, Scanning) else None


#: Every built-in driver, by scheme. Third-party drivers extend this (:func:`plugin_entries`).
DRIVERS: dict[str, DriverEntry] = {
    entry.scheme: entry
    for entry in (
        DriverEntry("sim", "retrotread.drivers.sim_scheme:SIM", extra="sim"),
        DriverEntry(
            "ble",
            "retrotread.drivers.ftms_ble:FtmsBleDriver",
            # FTMS by service UUID or service data, and what the catalogue makes of each
            scan_target="retrotread.commands.scan:scan_bluetooth",
            extra="ble",
        ),
        # pyserial URLs; ``?protocol=csafe|trackmaster`` picks the protocol driver.
        DriverEntry(
            "serial",
            "retrotread.drivers.serial_link:SERIAL",
            scan_target="retrotread.commands.scan:scan_serial",
            extra="serial",
        ),
        DriverEntry("socket", "retrotread.drivers.serial_link:SOCKET", extra="serial"),
        DriverEntry("rfc2217", "retrotread.drivers.serial_link:RFC2217", extra="serial"),
        DriverEntry("loop", "retrotread.drivers.serial_link:LOOP", extra="serial"),
    )
}


def plugin_entries() -> list[DriverEntry]:
    """Drivers other distributions registered, in a stable order (by distribution, then
    scheme), including any whose scheme is taken (:func:`driver_entries` leaves those out)."""
    found = []
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = point.dist
        origin = f"{dist.name} {dist.version}" if dist is not None else "an entry point"
        found.append(DriverEntry(point.name.lower(), point.value, origin=origin))
    return sorted(found, key=lambda e: (e.origin, e.scheme))


def driver_entries() -> dict[str, DriverEntry]:
    """Every scheme that opens a driver: the built-ins, then third-party ones. A scheme taken
    by a built-in (or an earlier package) stays with it."""
    entries = dict(DRIVERS)
    for entry in plugin_entries():
        entries.setdefault(entry.scheme, entry)
    return entries


def shadowed_entries() -> list[DriverEntry]:
    """Third-party drivers left out because their scheme was already taken."""
    taken, shadowed = set(DRIVERS), []
    for entry in plugin_entries():
        if entry.scheme in taken:
            shadowed.append(entry)
        taken.add(entry.scheme)
    return shadowed


def find_entry(scheme: str) -> DriverEntry:
    entry = DRIVERS.get(scheme)
    if entry is not None:  # a built-in scheme never reads the installed distributions
        return entry
    entries = driver_entries()
    if scheme not in entries:
        known = ", ".join(f"{s}://" for s in entries)
        raise DeviceUrlError(f"unknown device scheme {scheme + '://'!r}; known: {known}")
    return entries[scheme]


def find_driver(scheme: str) -> Driver:
    """The driver for ``scheme``, imported."""
    return find_entry(scheme).load()


def open_treadmill(
    url: str, *, clock: Clock | None = None, profile: Profile | None = None
) -> Treadmill:
    """A driver for ``url``, not yet connected (use ``async with``)."""
    from retrotread.clock import LoopClock
    from retrotread.drivers.base import Treadmill
    from retrotread.drivers.url import DeviceUrl

    parsed = DeviceUrl.parse(url)
    entry = find_entry(parsed.scheme)
    driver = entry.load()
    parsed.check_options(dict(driver.url_options), driver.url_grammar)
    try:
        treadmill = driver.from_url(parsed, clock=clock or LoopClock(), profile=profile)
    except ModuleNotFoundError as err:  # an option that needs more (sim://?link=ble: BLE)
        problem = missing_extra(err, parsed.text)
        if problem is None:
            raise
        raise problem from err
    if not isinstance(treadmill, Treadmill):
        raise DriverUnavailable(
            f"{parsed.scheme}:// ({entry.origin}): {entry.target}.from_url gave "
            f"{type(treadmill).__name__}, not a Treadmill"
        )
    return treadmill


def _resolve(entry: DriverEntry, target: str) -> Any:
    """``module:attribute`` imported; a missing extra or a broken plugin said in one line."""
    module_name, _, attribute = target.partition(":")
    try:
        value: Any = importlib.import_module(module_name)
        for name in filter(None, attribute.split(".")):
            value = getattr(value, name)
    except ModuleNotFoundError as err:
        problem = missing_extra(err, f"{entry.scheme}://")
        if problem is not None:
            raise problem from err
        if entry.origin == BUILT_IN:
            raise
        raise DriverUnavailable(
            f"{entry.scheme}:// ({entry.origin}): cannot load {target}: {err}"
        ) from err
    except Exception as err:  # a third-party module may fail any way; ours only by a bug
        if entry.origin == BUILT_IN:
            raise
        raise DriverUnavailable(
            f"{entry.scheme}:// ({entry.origin}): cannot load {target}: {err}"
        ) from err
    return value


__all__ = [
    "DEFAULT_DEVICE",
    "DRIVERS",
    "ENTRY_POINT_GROUP",
    "Driver",
    "DriverEntry",
    "Scanning",
    "driver_entries",
    "find_driver",
    "find_entry",
    "open_treadmill",
    "plugin_entries",
    "shadowed_entries",
]
