"""Which machine ``retrotread-sim serve`` is and which console answers: the ranges of a club
(CSAFE) or clinical (Trackmaster) treadmill, the responder for the protocol and personality,
and the same chosen from a retrotread device profile."""

from __future__ import annotations

import argparse
import tomllib

from retrotread_sim.belt import KMH_PER_MPH, MachineSpec, SimTreadmill
from retrotread_sim.csafe import (
    DEFAULT_PERSONALITY,
    PERSONALITIES,
    SPEED_UNIT_NAMES,
    CsafeOptions,
    CsafeResponder,
)
from retrotread_sim.csafe import KMH_PER_SPEED_COUNT as CSAFE_KMH_PER_COUNT
from retrotread_sim.trackmaster import TrackmasterResponder
from retrotread_sim.wire import Responder


def machine_spec(args: argparse.Namespace) -> MachineSpec:
    """The simulated console's ranges: a club treadmill (CSAFE) or a clinical one (Trackmaster)."""
    if args.protocol == "csafe":
        increment = CSAFE_KMH_PER_COUNT[SPEED_UNIT_NAMES[args.speed_unit]]
        spec = MachineSpec(
            name="RetroTread SIM-C",
            model="SIM-C (CSAFE)",
            speed_min_kmh=0.5 * KMH_PER_MPH,
            speed_max_kmh=12.0 * KMH_PER_MPH,
            speed_increment_kmh=increment,
            incline_max_pct=15.0,
        )
    else:
        spec = MachineSpec(
            name="RetroTread SIM-T",
            model="SIM-T (Trackmaster)",
            speed_min_kmh=0.5 * KMH_PER_MPH,
            speed_max_kmh=12.0 * KMH_PER_MPH,
            speed_increment_kmh=0.1 * KMH_PER_MPH,
            incline_max_pct=25.0,
        )
    return spec.with_options(
        accel_kmh_per_s=args.accel,
        decel_kmh_per_s=args.decel,
        speed_needs_running=args.speed_needs_running,
    )


def make_responder(args: argparse.Namespace, machine: SimTreadmill) -> Responder:
    if args.protocol == "csafe":
        options = CsafeOptions(
            speed_unit=SPEED_UNIT_NAMES[args.speed_unit],
            read_only=args.read_only,
            address=args.address,
            personality=PERSONALITIES[args.personality or DEFAULT_PERSONALITY],
            odometer_m=args.odometer,
        )
        return CsafeResponder(machine, options)
    query = args.status_query or args.personality == "trackmaster-query"
    return TrackmasterResponder(machine, status_query=query)


def apply_profile(args: argparse.Namespace) -> str | None:
    """Shape the console as a retrotread device profile (a TOML file) describes it.

    Read with the standard library only (the simulator never imports retrotread): the
    protocol, the quirks a console answers by, and the personality the profile's name says.
    Returns a problem, or None.
    """
    try:
        data = tomllib.loads(args.profile.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        return f"cannot read profile {args.profile}: {err}"
    protocol, name = data.get("protocol"), str(data.get("name", ""))
    if protocol != args.protocol:
        return f"profile {name!r} is for {protocol}, not {args.protocol}"
    quirks = data.get("quirks", {})
    if args.protocol == "csafe":
        unit = str(quirks.get("speed_unit") or "0.1 mph").replace(" ", "").replace("/", "")
        if unit in SPEED_UNIT_NAMES:
            args.speed_unit = unit
        args.read_only = args.read_only or bool(quirks.get("read_only", False))
        named = next((p for p in PERSONALITIES if name.startswith(p)), None)
        args.personality = args.personality or named
    else:
        args.status_query = args.status_query or bool(quirks.get("status_query", False))
    return None
