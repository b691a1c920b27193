"""The simulator reached over Bluetooth LE, in-process: what ``sim://?link=ble`` opens.

The simulated treadmill is served as an FTMS peripheral on a radio of its own, and the
``ble://`` driver connects to it through pyftms, bleak and bleak-retry-connector — the path a
real FTMS treadmill takes, minus the air. Everything runs on the event loop's clock, so
``retrotread run PROGRAM --device sim://?link=ble --rehearse`` plays in a blink.

The simulated machine is one of a family (:data:`retrotread_sim.ftms.PERSONALITIES`):
``?personality=strict`` or ``lenient``, or the one a device profile describes
(:data:`PROFILE_PERSONALITIES`: ``profile=strict-ftms`` plays the strict machine).

This module is loaded only when such a link is made (:data:`retrotread.drivers.sim_scheme.SIM` picks
it for ``link=ble``), so plain ``sim://`` stays light; it needs the ``ble`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from retrotread.clock import Clock
from retrotread.drivers.base import Capabilities
from retrotread.drivers.sim import SimulatorDriver
from retrotread.drivers.url import DeviceUrl
from retrotread.errors import DeviceError, DeviceUrlError
from retrotread.profiles import Profile
from retrotread.units import Quantity
from retrotread_sim import SimTreadmill
from retrotread_sim.faults import FaultPlan
from retrotread_sim.ftms import PERSONALITIES, FtmsOptions, FtmsServer, Radio, SimPeripheral
from retrotread_sim.ftms import personality as personality_options

if TYPE_CHECKING:
    from retrotread.drivers.ftms_ble import FtmsBleDriver

#: Device profiles that describe one of the simulator's FTMS personalities; any other
#: profile is played by the lenient machine.
PROFILE_PERSONALITIES = {"strict-ftms": "strict", "generic-ftms": "lenient"}


def ftms_options(url: DeviceUrl, profile: Profile, grammar: str) -> FtmsOptions:
    """``?personality=``, else the profile's personality, else the lenient machine."""
    name = url.options.get("personality") or PROFILE_PERSONALITIES.get(profile.name, "lenient")
    if name not in PERSONALITIES:
        raise DeviceUrlError(
            f"{url.text!r}: personality={name!r} must be one of {', '.join(PERSONALITIES)}\n"
            f"  grammar: {grammar}"
        )
    from retrotread.drivers.ftms.simulated import QUIRKS, simulated_options

    quirks = [q for q in url.options.get("quirks", "").split(",") if q]
    if unknown := [q for q in quirks if q not in QUIRKS]:
        raise DeviceUrlError(
            f"{url.text!r}: quirks={','.join(unknown)} unknown; known: {', '.join(QUIRKS)}\n"
            f"  grammar: {grammar}"
        )
    # The profile's quirks are played too (retrotread/drivers/ftms/simulated.py).
    return simulated_options(personality_options(name), profile, quirks)


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


class SimBleDriver(SimulatorDriver):
    """``sim://?link=ble``: the simulated machine served over FTMS and reached by the
    ``ble://`` driver; every command and report is that driver's."""

    def __init__(
        self,
        url: DeviceUrl,
        profile: Profile,
        clock: Clock,
        machine: SimTreadmill | None = None,
    ) -> None:
        super().__init__(url, profile, clock, machine)
        self._ftms = ftms_options(url, profile, self.url_grammar)
        self.ble: BleSimLink | None = None  # the radio and the driver, made on connect
        self.name += " over BLE"

    def _driver(self) -> FtmsBleDriver:
        if self.ble is None:
            raise DeviceError("the simulator over BLE is not connected")
        return self.ble.driver

    @property
    def capabilities(self) -> Capabilities:
        # The ranges the FTMS machine reports once connected; the spec's until then.
        return super().capabilities if self.ble is None else self.ble.driver.capabilities

    @property
    def identity(self) -> str | None:
        return None if self.ble is None else self.ble.driver.identity

    @property
    def connected(self) -> bool:
        return self.ble is not None and self.ble.driver.connected

    async def connect(self) -> None:
        machine = self._open_machine()
        self.ble = BleSimLink(machine, self.profile, self.clock, plan=self.plan, options=self._ftms)
        self.ble.driver.subscribe(self.publish)
        self._play_console_faults(machine)
        await self.ble.driver.connect()

    async def _do_close(self) -> None:
        if self.ble is not None:
            await self.ble.close()
        await self._cancel_tasks()
        self._close_machine()

    async def _do_start(self) -> None:
        await self._driver().start()

    async def _do_pause(self) -> None:
        await self._driver().pause()

    async def _do_stop(self) -> None:
        await self._driver().stop()

    async def _do_set_speed(self, speed: Quantity) -> None:
        await self._driver().set_speed(speed)

    async def _do_set_incline(self, incline: Quantity) -> None:
        await self._driver().set_incline(incline)
