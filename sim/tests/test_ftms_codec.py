"""The simulator's own FTMS codec, byte for byte against the specification's layouts."""

import pytest

from retrotread_sim.ftms import codec
from retrotread_sim.ftms.codec import ControlRequest, ResultCode, TreadmillRecord


def test_uuids_are_the_sig_ones() -> None:
    assert codec.FTMS_SERVICE == "00001826-0000-1000-8000-00805f9b34fb"
    assert codec.CONTROL_POINT == "00002ad9-0000-1000-8000-00805f9b34fb"


def test_response_indication() -> None:
    assert codec.encode_response(0x00, ResultCode.SUCCESS) == bytes.fromhex("80 00 01")
    assert codec.encode_response(0x02, ResultCode.INVALID_PARAMETER) == bytes.fromhex("80 02 03")


def test_control_requests_decode() -> None:
    assert ControlRequest.decode(bytes.fromhex("02 A3 01")).u16() == 419
    assert ControlRequest.decode(bytes.fromhex("03 14 00")).s16() == 20
    assert ControlRequest.decode(bytes.fromhex("03 EC FF")).s16() == -20
    assert ControlRequest.decode(bytes.fromhex("08 02")).u8() == 2
    with pytest.raises(codec.DecodeError, match="2-byte"):
        ControlRequest.decode(bytes.fromhex("02 A3")).u16()
    with pytest.raises(codec.DecodeError, match="empty"):
        ControlRequest.decode(b"")


RECORD = TreadmillRecord(speed=419, distance_m=1234, incline=20, elapsed_s=95)


def test_whole_treadmill_data_record() -> None:
    # flags 0x040C: distance, inclination, elapsed time; speed present (bit 0 clear)
    (whole,) = codec.encode_treadmill_data(RECORD)
    assert whole == bytes.fromhex("0C 04  A3 01  D2 04 00  14 00 FF 7F  5F 00")


def test_split_record_carries_more_data_until_the_last_fragment() -> None:
    first, last = codec.encode_treadmill_data(RECORD, parts=2)
    assert first == bytes.fromhex("0D 04  D2 04 00  14 00 FF 7F  5F 00")
    assert last == bytes.fromhex("00 00  A3 01")
    fragments = codec.encode_treadmill_data(RECORD, parts=4)
    assert [f[:2] for f in fragments] == [
        bytes.fromhex("05 00"),  # more data + distance
        bytes.fromhex("09 00"),  # more data + inclination
        bytes.fromhex("01 04"),  # more data + elapsed time
        bytes.fromhex("00 00"),  # speed, record complete
    ]


def test_ranges_feature_and_service_data() -> None:
    assert codec.encode_speed_range(80, 1930, 1) == bytes.fromhex("50 00 8A 07 01 00")
    assert codec.encode_inclination_range(-30, 150, 5) == bytes.fromhex("E2 FF 96 00 05 00")
    assert codec.encode_feature(0x100C, 0x3) == bytes.fromhex("0C 10 00 00 03 00 00 00")
    assert codec.encode_service_data() == bytes.fromhex("01 01 00")
    assert codec.encode_service_data(codec.MachineType.INDOOR_BIKE) == bytes.fromhex("01 20 00")


def test_status_and_training_status() -> None:
    assert codec.encode_status(codec.StatusCode.CONTROL_PERMISSION_LOST) == b"\xff"
    stopped = codec.encode_status(codec.StatusCode.STOPPED_OR_PAUSED_BY_USER, b"\x01")
    assert stopped == bytes.fromhex("02 01")
    assert codec.encode_training_status(codec.TrainingStatus.IDLE) == bytes.fromhex("00 01")
    assert codec.encode_training_status(codec.TrainingStatus.OTHER, "paused") == (
        bytes.fromhex("01 00") + b"paused"
    )
