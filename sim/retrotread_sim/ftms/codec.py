"""The treadmill's side of the FTMS wire format (Fitness Machine Service 1.0).

This is the simulator's own codec, written from the specification and independent of any
client library, so that a codec bug on either side shows up in tests the way a real machine
would show it. Integers are little-endian.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

BASE_UUID = "0000{:04x}-0000-1000-8000-00805f9b34fb"


def uuid16(short: int) -> str:
    """The full 128-bit UUID string of a 16-bit Bluetooth SIG UUID."""
    return BASE_UUID.format(short)


FTMS_SERVICE = uuid16(0x1826)
FEATURE = uuid16(0x2ACC)
TREADMILL_DATA = uuid16(0x2ACD)
TRAINING_STATUS = uuid16(0x2AD3)
SPEED_RANGE = uuid16(0x2AD4)
INCLINATION_RANGE = uuid16(0x2AD5)
CONTROL_POINT = uuid16(0x2AD9)
MACHINE_STATUS = uuid16(0x2ADA)

DEVICE_INFORMATION_SERVICE = uuid16(0x180A)
MANUFACTURER_NAME = uuid16(0x2A29)
MODEL_NUMBER = uuid16(0x2A24)
SERIAL_NUMBER = uuid16(0x2A25)
HARDWARE_REVISION = uuid16(0x2A27)
SOFTWARE_REVISION = uuid16(0x2A28)

CLIENT_CHARACTERISTIC_CONFIGURATION = uuid16(0x2902)


class OpCode(enum.IntEnum):
    """Fitness Machine Control Point request op codes this treadmill understands."""

    REQUEST_CONTROL = 0x00
    RESET = 0x01
    SET_TARGET_SPEED = 0x02
    SET_TARGET_INCLINATION = 0x03
    START_OR_RESUME = 0x07
    STOP_OR_PAUSE = 0x08
    RESPONSE = 0x80


class ResultCode(enum.IntEnum):
    SUCCESS = 0x01
    NOT_SUPPORTED = 0x02
    INVALID_PARAMETER = 0x03
    OPERATION_FAILED = 0x04
    CONTROL_NOT_PERMITTED = 0x05


class StopPause(enum.IntEnum):
    STOP = 0x01
    PAUSE = 0x02


class StatusCode(enum.IntEnum):
    """Fitness Machine Status op codes."""

    RESET = 0x01
    STOPPED_OR_PAUSED_BY_USER = 0x02
    STOPPED_BY_SAFETY_KEY = 0x03
    STARTED_OR_RESUMED_BY_USER = 0x04
    TARGET_SPEED_CHANGED = 0x05
    TARGET_INCLINE_CHANGED = 0x06
    CONTROL_PERMISSION_LOST = 0xFF


class TrainingStatus(enum.IntEnum):
    OTHER = 0x00
    IDLE = 0x01
    MANUAL_MODE = 0x0D
    POST_WORKOUT = 0x0F


class MachineType(enum.IntFlag):
    """Fitness Machine Type field of the advertised service data."""

    TREADMILL = 1 << 0
    CROSS_TRAINER = 1 << 1
    STEP_CLIMBER = 1 << 2
    STAIR_CLIMBER = 1 << 3
    ROWER = 1 << 4
    INDOOR_BIKE = 1 << 5


# Fitness Machine Feature bits (first word) and Target Setting bits (second word).
FEATURE_TOTAL_DISTANCE = 1 << 2
FEATURE_INCLINATION = 1 << 3
FEATURE_ELAPSED_TIME = 1 << 12
TARGET_SETTING_SPEED = 1 << 0
TARGET_SETTING_INCLINATION = 1 << 1

# Treadmill Data flags.
MORE_DATA = 1 << 0  # instantaneous speed absent here: more of this record follows
FLAG_TOTAL_DISTANCE = 1 << 2
FLAG_INCLINATION = 1 << 3
FLAG_ELAPSED_TIME = 1 << 10

RAMP_ANGLE_NOT_AVAILABLE = 0x7FFF


class DecodeError(ValueError):
    """A control point write that is not a well-formed request."""


@dataclass(frozen=True)
class ControlRequest:
    op: int
    parameter: bytes

    @classmethod
    def decode(cls, data: bytes) -> ControlRequest:
        if not data:
            raise DecodeError("empty control point write")
        return cls(data[0], bytes(data[1:]))

    def u16(self) -> int:
        if len(self.parameter) != 2:
            raise DecodeError(f"op {self.op:#04x} needs a 2-byte parameter")
        value: int = struct.unpack("<H", self.parameter)[0]
        return value

    def s16(self) -> int:
        if len(self.parameter) != 2:
            raise DecodeError(f"op {self.op:#04x} needs a 2-byte parameter")
        value: int = struct.unpack("<h", self.parameter)[0]
        return value

    def u8(self) -> int:
        if len(self.parameter) != 1:
            raise DecodeError(f"op {self.op:#04x} needs a 1-byte parameter")
        return self.parameter[0]


def encode_response(op: int, result: ResultCode) -> bytes:
    """The indication that answers a control point write: ``80 <op> <result>``."""
    return bytes([OpCode.RESPONSE, op & 0xFF, result])


@dataclass(frozen=True)
class TreadmillRecord:
    """One Treadmill Data record, in wire units."""

    speed: int  # 0.01 km/h
    distance_m: int
    incline: int | None  # 0.1 %; None: a machine that does not report its incline
    elapsed_s: int


def encode_treadmill_data(record: TreadmillRecord, parts: int = 1) -> list[bytes]:
    """The record as ``parts`` notifications (1, 2 or 3); all but the last carry More Data.

    FTMS lets a server split a record that does not fit one notification: every fragment
    has its own flags, fragments before the last set bit 0 (so they carry no instantaneous
    speed), and the last fragment clears it and carries the speed.
    """
    distance = min(max(record.distance_m, 0), 0xFFFFFF)
    fields: list[tuple[int, bytes]] = [(FLAG_TOTAL_DISTANCE, distance.to_bytes(3, "little"))]
    if record.incline is not None:
        fields.append(
            (FLAG_INCLINATION, struct.pack("<hh", record.incline, RAMP_ANGLE_NOT_AVAILABLE))
        )
    fields.append((FLAG_ELAPSED_TIME, struct.pack("<H", min(max(record.elapsed_s, 0), 0xFFFF))))
    speed = struct.pack("<H", min(max(record.speed, 0), 0xFFFF))
    parts = min(max(parts, 1), len(fields) + 1)
    if parts == 1:
        flags = 0
        body = speed
        for flag, data in fields:
            flags |= flag
            body += data
        return [struct.pack("<H", flags) + body]
    # Spread the optional fields over the first parts-1 fragments; speed goes last.
    fragments: list[bytes] = []
    groups = [fields[i :: parts - 1] for i in range(parts - 1)]
    for group in groups:
        flags = MORE_DATA
        body = b""
        for flag, data in sorted(group):
            flags |= flag
            body += data
        fragments.append(struct.pack("<H", flags) + body)
    fragments.append(struct.pack("<H", 0) + speed)
    return fragments


def encode_feature(features: int, target_settings: int) -> bytes:
    return struct.pack("<II", features, target_settings)


def encode_speed_range(minimum: int, maximum: int, increment: int) -> bytes:
    """Supported Speed Range, each value in 0.01 km/h."""
    return struct.pack("<HHH", minimum, maximum, increment)


def encode_inclination_range(minimum: int, maximum: int, increment: int) -> bytes:
    """Supported Inclination Range, each value in 0.1 %."""
    return struct.pack("<hhH", minimum, maximum, increment)


def encode_training_status(status: TrainingStatus, text: str = "") -> bytes:
    if text:
        return bytes([0x01, status]) + text.encode("utf-8")
    return bytes([0x00, status])


def encode_status(code: StatusCode, parameter: bytes = b"") -> bytes:
    return bytes([code]) + parameter


def encode_service_data(machine_type: MachineType = MachineType.TREADMILL) -> bytes:
    """FTMS advertising service data: Flags (fitness machine available), Machine Type (u16)."""
    return bytes([0x01]) + struct.pack("<H", machine_type)
