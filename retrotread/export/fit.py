"""FIT activity files, written with Garmin's own FIT SDK (``garmin-fit-sdk``).

The file follows the FIT SDK's activity-file recipe, which Garmin Connect and Strava import:
File ID, Device Info, a timer-start Event, one Record per second (distance, speed, incline as
grade), one Lap per block, a timer-stop Event, one Session and one Activity. A retro walk is
sport *walking* on sub-sport *indoor_walking*, a session with retro-run blocks *running* on
*treadmill* (the FIT profile's sub-sports for walking and running on fitness equipment).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from garmin_fit_sdk import FIT_EPOCH_S, Encoder, Profile

from retrotread.export.common import ExportData, Lap, meters_per_second
from retrotread.progression import Phase

MESG = Profile["mesg_num"]

#: FIT intensity for each block kind
_INTENSITY = {
    "warm-up": "warmup",
    "cool-down": "cooldown",
    "recovery": "recovery",
    "retro": "interval",
    "retro-run": "interval",
    "turn-around": "rest",
    "forward": "active",
}


def fit_time(at: float) -> int:
    """Unix seconds to FIT seconds (since 1989-12-31 UTC)."""
    return int(at) - FIT_EPOCH_S


def _lap_message(index: int, lap: Lap, data: ExportData, sport: tuple[str, str]) -> dict[str, Any]:
    moving = [s.speed_mph for s in lap.samples]
    average = sum(moving) / len(moving) if moving else 0.0
    start = fit_time(lap.start)
    end = max(start, fit_time(lap.end))
    return {
        "mesg_num": MESG["LAP"],
        "message_index": index,
        "timestamp": end,
        "start_time": start,
        "total_elapsed_time": float(end - start),
        "total_timer_time": float(lap.seconds),
        "total_distance": lap.distance_m,
        "enhanced_avg_speed": meters_per_second(average),
        "enhanced_max_speed": meters_per_second(max(moving, default=0.0)),
        "event": "lap",
        "event_type": "stop",
        "lap_trigger": "time",
        "sport": sport[0],
        "sub_sport": sport[1],
        "intensity": _INTENSITY.get(lap.block.kind, "active"),
    }


def render_fit(data: ExportData) -> bytes:
    session = data.session
    sport = (
        ("running", "treadmill") if session.phase is Phase.RUN else ("walking", "indoor_walking")
    )
    start, end = fit_time(data.start), fit_time(data.end)
    end = max(end, start)
    offset = datetime.fromtimestamp(data.start).astimezone().utcoffset()
    local_offset = int(offset.total_seconds()) if offset else 0
    messages: list[dict[str, Any]] = [
        {
            "mesg_num": MESG["FILE_ID"],
            "type": "activity",
            "manufacturer": "development",
            "product": 0,
            "time_created": start,
            "serial_number": session.id,
        },
        {
            "mesg_num": MESG["DEVICE_INFO"],
            "device_index": "creator",
            "manufacturer": "development",
            "product": 0,
            "product_name": "retrotread",
            "serial_number": session.id,
            "timestamp": start,
        },
        {"mesg_num": MESG["EVENT"], "timestamp": start, "event": "timer", "event_type": "start"},
    ]
    for index, lap in enumerate(data.laps):
        for sample in lap.samples:
            messages.append(
                {
                    "mesg_num": MESG["RECORD"],
                    "timestamp": fit_time(sample.at),
                    "distance": data.distance(sample),
                    "enhanced_speed": meters_per_second(sample.speed_mph),
                    "grade": sample.incline_pct,
                }
            )
        messages.append(_lap_message(index, lap, data, sport))
    total_timer = float(session.elapsed_s or (end - start))
    messages += [
        {"mesg_num": MESG["EVENT"], "timestamp": end, "event": "timer", "event_type": "stop_all"},
        {
            "mesg_num": MESG["SESSION"],
            "message_index": 0,
            "timestamp": end,
            "start_time": start,
            "total_elapsed_time": float(end - start),
            "total_timer_time": total_timer,
            "total_distance": data.total_distance,
            "sport": sport[0],
            "sub_sport": sport[1],
            "first_lap_index": 0,
            "num_laps": len(data.laps),
            "event": "session",
            "event_type": "stop",
            "trigger": "activity_end",
        },
        {
            "mesg_num": MESG["ACTIVITY"],
            "timestamp": end,
            "num_sessions": 1,
            "type": "manual",
            "event": "activity",
            "event_type": "stop",
            "local_timestamp": end + local_offset,
            "total_timer_time": total_timer,
        },
    ]
    encoder = Encoder()
    for message in messages:
        encoder.write_mesg(message)
    return encoder.close()
