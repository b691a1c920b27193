"""Open a treadmill from a URL: the scheme picks the driver (like python-can's interface names).

Drivers are imported only when their scheme is used, so ``sim://`` never loads bleak or
pyserial.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

from retrotread.errors import DeviceUrlError

if TYPE_CHECKING:  # the CLI reads the registry to build its options; a driver loads when opened
    from retrotread.clock import Clock
    from retrotread.drivers.base import Treadmill
    from retrotread.profiles import Profile

#: scheme -> (module, class). Add a driver here and it is reachable from every front end.
DRIVERS: dict[str, tuple[str, str]] = {
    "sim": ("retrotread.drivers.sim", "SimDriver"),
    "ble": ("retrotread.drivers.ftms_ble", "FtmsBleDriver"),
    # pyserial URLs; ``?protocol=csafe|trackmaster`` picks the protocol driver.
    "serial": ("retrotread.drivers.serial_link", "SerialPortDevice"),
    "socket": ("retrotread.drivers.serial_link", "SocketDevice"),
    "rfc2217": ("retrotread.drivers.serial_link", "Rfc2217Device"),
    "loop": ("retrotread.drivers.serial_link", "LoopDevice"),
}

DEFAULT_DEVICE = "sim://"


def driver_class(scheme: str) -> type[Treadmill]:
    try:
        module_name, class_name = DRIVERS[scheme]
    except KeyError:
        known = ", ".join(f"{s}://" for s in DRIVERS)
        raise DeviceUrlError(f"unknown device scheme {scheme + '://'!r}; known: {known}") from None
    module = importlib.import_module(module_name)
    return cast("type[Treadmill]", getattr(module, class_name))


def open_treadmill(
    url: str, *, clock: Clock | None = None, profile: Profile | None = None
) -> Treadmill:
    """A driver for ``url``, not yet connected (use ``async with``)."""
    from retrotread.clock import LoopClock
    from retrotread.drivers.url import DeviceUrl

    parsed = DeviceUrl.parse(url)
    cls = driver_class(parsed.scheme)
    parsed.check_options(cls.url_options, cls.url_grammar)
    return cls.from_url(parsed, clock=clock or LoopClock(), profile=profile)
