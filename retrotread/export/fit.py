"""FIT activity files, written with Garmin's own FIT SDK (``garmin-fit-sdk``).

The file follows the FIT SDK's activity-file recipe, which Garmin Connect and Strava import:
File ID, Device Info, a timer-start Event, one Record per second (distance, speed, incline as
grade), one Lap per block, a timer-stop Event, one Session and one Activity. A retro walk is
sport *walking* on sub-sport *indoor_walking*, a session with retro-run blocks *running* on
*treadmill* (the FIT profile's sub-sports for walking and running on fitness equipment).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from garmin_fit_sdk import FIT_EPOCH_S, CrcCalculator, Encoder, Profile
from garmin_fit_sdk import fit as sdk_fit

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


class _RecordLayout:
    """How the SDK lays out one Record message's data, as a struct: the fields of the SDK's
    own definition, in its order, scaled and rounded the way its encoder does."""

    def __init__(self, definition: Any, keys: tuple[str, ...]) -> None:
        self.definition = definition
        self.keys = keys
        self.fields: list[tuple[str, float, float, bool]] = []
        codes = ["<B"]
        for field in definition.field_definitions:
            base = sdk_fit.BASE_TYPE_DEFINITIONS[field["base_type"]]
            if base["type_code"] in "sfd" or field["size"] != base["size"]:
                raise ValueError(f"{field['name']}: not a single integer")
            scaled = field["scale"] != sdk_fit.FIELD_DEFAULT_SCALE or (
                field["offset"] != sdk_fit.FIELD_DEFAULT_OFFSET
            )
            self.fields.append((field["name"], field["scale"], field["offset"], scaled))
            codes.append(base["type_code"])
        self.packer = struct.Struct("".join(codes))
        self.header = definition.local_mesg_num

    def pack(self, mesg: Mapping[str, Any]) -> bytes:
        values = [
            round((mesg[name] + offset) * scale) if scaled else int(mesg[name])
            for name, scale, offset, scaled in self.fields
        ]
        return self.packer.pack(self.header, *values)


#: The FIT CRC a byte at a time, from the SDK's own nibble-wise update: a 24 h file is 1.4 MB,
#: and the SDK's loop takes two table steps and a call per byte.
_CRC_BY_BYTE = tuple(CrcCalculator.calculate_crc(bytes([byte]), 0, 1) for byte in range(256))


def _file_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = (crc >> 8) ^ _CRC_BY_BYTE[(crc ^ byte) & 0xFF]
    return crc


class _FastRecordEncoder(Encoder):
    """Garmin's encoder, except that a Record with the fields of the last one is packed with
    the SDK's own layout for it instead of the SDK building and comparing a new definition
    for each (~100 µs a Record; a 24 h session has 86,400). Anything else, and any Record
    whose definition is no longer the active one, goes through the SDK. A test checks that
    the bytes are the SDK's, byte for byte."""

    def __init__(self) -> None:
        super().__init__()
        self._layout: _RecordLayout | None = None

    def on_mesg(self, mesg_num: int, mesg: dict[str, Any]) -> Encoder:
        sdk: Any = self  # the SDK's own (private) state: its stream and active definitions
        layout = self._layout
        if (
            mesg_num == MESG["RECORD"]
            and layout is not None
            and sdk._local_mesg_definitions[layout.header] is layout.definition
            and tuple(mesg) == layout.keys
        ):
            try:
                packed = layout.pack(mesg)
            except (TypeError, struct.error):  # a missing or out-of-range value: the SDK's way
                pass
            else:
                sdk._output_stream._buffer.extend(packed)
                return self
        super().on_mesg(mesg_num, mesg)
        if mesg_num == MESG["RECORD"] and all(value is not None for value in mesg.values()):
            definition = sdk._find_local_mesg_definition(
                sdk._create_mesg_definition(mesg_num, mesg)
            )
            try:
                self._layout = _RecordLayout(definition, tuple(mesg))
            except ValueError:
                self._layout = None
        return self

    def _write_file_crc(self) -> None:
        stream: Any = getattr(self, "_output_stream")  # noqa: B009 - the SDK's private stream
        stream.write_uint16(_file_crc(stream.data))


def render_fit(data: ExportData, *, fast_records: bool = True) -> bytes:
    """The FIT file; ``fast_records=False`` has the SDK encode every Record itself."""
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
            record = {
                "mesg_num": MESG["RECORD"],
                "timestamp": fit_time(sample.at),
                "distance": data.distance(sample),
                "enhanced_speed": meters_per_second(sample.speed_mph),
                "grade": sample.incline_pct,
            }
            bpm = data.bpm(sample)
            if bpm is not None:  # the strap's reading (retrotread.clinic.heart)
                record["heart_rate"] = bpm
            messages.append(record)
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
    make_encoder: Callable[[], Encoder] = _FastRecordEncoder if fast_records else Encoder
    encoder = make_encoder()
    for message in messages:
        encoder.write_mesg(message)
    return encoder.close()
