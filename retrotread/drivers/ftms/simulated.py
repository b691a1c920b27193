"""The simulator's FTMS machine for a device profile: its quirks, played by retrotread-sim.

``sim://?link=ble&profile=NAME`` plays the machine the profile describes, quirks included;
``&quirks=a,b`` adds named quirks of the simulator (:data:`retrotread_sim.ftms.QUIRKS`).
Each profile quirk maps to the simulator's behaviour that makes it necessary, so a profile
whose quirk does not match the machine fails the way it would on the real one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from retrotread.profiles import Profile
from retrotread_sim.ftms import QUIRKS, FtmsOptions, with_quirks

#: A machine that wants a keep-alive gives up after this many of the profile's intervals.
KEEPALIVE_LIMIT_INTERVALS = 3
#: A machine that drops close writes drops those within this share of the profile's spacing.
SPACING_SHARE = 0.85
#: How often a machine with the stray-zero quirk sends its lone zero.
STRAY_ZERO_EVERY_S = 20.0
#: A profile's speed floor from which, with ``ranges_from_profile``, the simulated machine
#: declares :data:`DECLARED_SPEED_MIN_KMH` and drops requests below the floor (Mobvoi TMP).
RAISED_SPEED_FLOOR_KMH = 1.0
DECLARED_SPEED_MIN_KMH = 0.5


def simulated_changes(profile: Profile) -> dict[str, Any]:
    """The simulator's options that play this profile's quirks."""
    q = profile.quirks
    changes: dict[str, Any] = {}
    if q.speed_field_mph:
        changes["target_speed_mph"] = True
    if q.telemetry_speed_mph:
        changes["data_speed_mph"] = True
    if q.start_each_command:
        changes["writes_need_start"] = True
    if q.request_control_again_s is not None:
        changes["ignores_first_control_request"] = True
    if q.start_keepalive_s:
        changes["needs_keepalive_s"] = KEEPALIVE_LIMIT_INTERVALS * q.start_keepalive_s
    if q.incline_step:
        changes["incline_grid_pct"] = q.incline_step
    if q.ranges_from_profile and profile.incline.min.value < 0:
        changes["declared_incline_min_pct"] = 0.0  # it hides its decline
    if q.incline_table:
        changes["incline_table"] = q.incline_table
    if q.incline_unreported:
        changes["no_incline_data"] = True
    if q.zero_speed_debounce_s:
        changes["stray_zero_every_s"] = STRAY_ZERO_EVERY_S
    if q.start_handshake:
        changes["start_handshake"] = True
    if q.silence_means_stopped_s:
        changes["quiet_when_still"] = True
    if q.min_command_interval_s:
        changes["min_command_gap_s"] = SPACING_SHARE * q.min_command_interval_s
    if q.read_only:
        changes["no_control_point"] = True
    if q.unlock_write is not None:
        changes["unlock"] = (q.unlock_write.characteristic, q.unlock_write.value)
    if q.elapsed_frozen_means_stopped_s:
        changes["elapsed_counts_walking"] = True
    if q.ranges_from_profile and profile.speed.min.kmh >= RAISED_SPEED_FLOOR_KMH:
        # A floor this high is the machine's own: it declares lower and drops what is below
        # (Mobvoi TMP; the profile's range is what keeps those requests from it).
        changes["drops_speeds_below_kmh"] = float(profile.speed.min.kmh)
        changes["declared_speed_min_kmh"] = DECLARED_SPEED_MIN_KMH
    return changes


def simulated_options(
    options: FtmsOptions, profile: Profile, quirk_names: list[str] | tuple[str, ...] = ()
) -> FtmsOptions:
    """``options`` playing the profile's quirks and the named simulator quirks."""
    changes = simulated_changes(profile)
    return with_quirks(replace(options, **changes) if changes else options, quirk_names)


__all__ = ["QUIRKS", "simulated_changes", "simulated_options"]
