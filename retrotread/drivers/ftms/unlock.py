"""Vendor services discovered, for the unlock write some machines want before control.

pyftms asks bleak to discover only the Fitness Machine and Device Information services, so a
vendor characteristic (the Merach's unlock, quirk ``unlock_write``) is not in its client's
table. While a driver whose profile has an unlock write is open, every ``BleakClient`` made
without ``backend=`` discovers every service: bleak's backend lookup returns the platform's
backend with its service filter lifted. It is the seam the wire trace
(:mod:`retrotread.drivers.ble_trace`) and the simulator's radio use; nothing in bleak,
bleak-retry-connector or pyftms is modified, and pyftms finds its services by UUID as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import bleak
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice

from retrotread.drivers.ble_trace import LOOKUP


def _every_service(inner: type[BaseBleakClient]) -> type[BaseBleakClient]:
    """``inner``, discovering every service whatever its client asks for."""

    def __init__(
        self: BaseBleakClient, address_or_ble_device: BLEDevice | str, **kwargs: Any
    ) -> None:
        kwargs["services"] = None
        inner.__init__(self, address_or_ble_device, **kwargs)

    return type(f"EveryService{inner.__name__}", (inner,), {"__init__": __init__})


@contextlib.contextmanager
def every_service_discovered() -> Iterator[None]:
    """While open, every ``BleakClient`` made without ``backend=`` discovers every service."""
    previous: Callable[[], tuple[type[BaseBleakClient], Any]] = getattr(bleak, LOOKUP)

    def lookup() -> tuple[type[BaseBleakClient], Any]:
        inner, backend_id = previous()
        return _every_service(inner), backend_id

    setattr(bleak, LOOKUP, lookup)
    try:
        yield
    finally:
        if getattr(bleak, LOOKUP) is lookup:
            setattr(bleak, LOOKUP, previous)


__all__ = ["every_service_discovered"]
