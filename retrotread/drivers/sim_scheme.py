"""``sim://``: the in-process simulator, over its own link or (``link=ble``) over BLE.

Its own module so that the two drivers need not know each other (no import circle), and so that
``sim://`` alone never loads bleak or pyftms.
"""

from __future__ import annotations

from collections.abc import Mapping

from retrotread.clock import Clock
from retrotread.drivers.sim import URL_GRAMMAR, URL_OPTIONS, SimDriver, SimulatorDriver, link_option
from retrotread.drivers.url import DeviceUrl
from retrotread.profiles import Profile


class SimScheme:
    """What ``sim://`` opens: :class:`SimDriver`, or with ``link=ble`` the simulator over BLE
    (:class:`~retrotread.drivers.sim_ble.SimBleDriver`, which loads bleak and pyftms)."""

    url_grammar = URL_GRAMMAR

    @property
    def url_options(self) -> Mapping[str, str]:
        return URL_OPTIONS

    def from_url(
        self, url: DeviceUrl, *, clock: Clock, profile: Profile | None = None
    ) -> SimulatorDriver:
        if link_option(url, URL_GRAMMAR) == "ble":
            from retrotread.drivers.sim_ble import SimBleDriver

            return SimBleDriver.from_url(url, clock=clock, profile=profile)
        return SimDriver.from_url(url, clock=clock, profile=profile)


SIM = SimScheme()
