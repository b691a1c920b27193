"""The simulator reached over Bluetooth LE, in-process: what ``sim://?link=ble`` opens.

The simulated treadmill is served as an FTMS peripheral on a radio of its own, and the
``ble://`` driver connects to it through pyftms, bleak and bleak-retry-connector — the path a
real FTMS treadmill takes, minus the air. Everything runs on the event loop's clock, so
``retrotread run PROGRAM --device sim://?link=ble --rehearse`` plays in a blink.

The simulated machine is one of a family (:data:`retrotread_sim.ftms.PERSONALITIES`):
``?personality=strict`` or ``lenient``, or the one a device profile describes
(:data:`PROFILE_PERSONALITIES`: ``profile=strict-ftms`` plays the strict machine).

bleak and pyftms are imported only when such a link is made, so plain ``sim://`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from retrotread.clock import Clock
from retrotread.drivers.url import DeviceUrl
from retrotread.errors import DeviceUrlError
from retrotread.profiles import Profile
from retrotread_sim import SimTreadmill
from retrotread_sim.faults import FaultPlan
from retrotread_sim.ftms import PERSONALITIES, FtmsOptions, FtmsServer, Radio, SimPeripheral
from retrotread_sim.ftms import personality as personality_options

if TYPE_CHECKING:
    from retrotread.drivers.ftms_ble import FtmsBleDriver

LINKS = ("inprocess", "ble")

#: Device profiles that describe one of the simulator's FTMS personalities; any other
#: profile is played by the lenient machine.
PROFILE_PERSONALITIES = {"strict-ftms": "strict", "generic-ftms": "lenient"}


def link_option(url: DeviceUrl, grammar: str) -> str:
    """``?link=``: how the simulator is reached (in-process calls, or BLE)."""
    link = url.options.get("link", LINKS[0])
    if link not in LINKS:
        raise DeviceUrlError(
            f"{url.text!r}: link={link!r} must be one of {', '.join(LINKS)}\n  grammar: {grammar}"
        )
    return link


def ftms_options(url: DeviceUrl, profile: Profile, grammar: str) -> FtmsOptions:
    """``?personality=``, else the profile's personality, else the lenient machine."""
    name = url.options.get("personality") or PROFILE_PERSONALITIES.get(profile.name, "lenient")
    if name not in PERSONALITIES:
        raise DeviceUrlError(
            f"{url.text!r}: personality={name!r} must be one of {', '.join(PERSONALITIES)}\n"
            f"  grammar: {grammar}"
        )
    return personality_options(name)


class BleSimLink:
    """A simulated treadmill on its own radio, and the ``ble://`` driver that reaches it."""

    def __init__(
        self,
        machine: SimTreadmill,
        profile: Profile,
        clock: Clock,
        *,
        plan: FaultPlan | None = None,
        options: FtmsOptions | None = None,
    ) -> None:
        from retrotread.drivers.ftms_ble import FtmsBleDriver

        self.radio = Radio()
        self.server = FtmsServer(machine, options, plan=plan)
        self.peripheral = self.radio.add(SimPeripheral(self.server))
        self.driver: FtmsBleDriver = FtmsBleDriver(
            DeviceUrl.parse(f"ble://{self.peripheral.address}"),
            profile,
            clock,
            routing=self.radio.routed,
        )

    async def close(self) -> None:
        await self.driver.close()
        self.server.close()
