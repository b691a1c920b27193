"""Every error retrotread raises on purpose, in one hierarchy::

    RetrotreadError
     ├── ProgramError            a program file is wrong (file, line, field)  [program.loader]
     ├── ProfileError            a device profile is wrong or unknown
     ├── SafetyError             the governor refused a command: nothing was sent
     ├── SpeechError             spoken cues: bad settings, or no engine or audio output
     ├── PlaceError              a folder retrotread keeps its files in cannot be used
     ├── ConfigError             the settings file or a setting's variable is wrong  [config]
     ├── StoreError              the records cannot be read or written  [store]
     └── DeviceError             anything between retrotread and a treadmill
          ├── DeviceUrlError     a device URL names an unknown scheme or option
          ├── DeviceUnavailable  the device cannot be found or opened (reason: Unavailable)
          ├── LinkLost           the link dropped while in use
          ├── CommandRejected    the treadmill answered "no" (reason: Rejection)
          ├── CommandTimeout     no answer in time: the outcome is unknown, never resend blindly
          └── ProtocolError      bytes that do not decode (logged and survived by drivers)

Errors from other libraries (bleak, pyftms, pyserial) are wrapped with ``raise ... from err``
so callers handle one family and the original stays in ``__cause__``.
"""

from __future__ import annotations

import enum


class RetrotreadError(Exception):
    """Base of every error retrotread raises on purpose."""


class ProfileError(RetrotreadError):
    pass


class SafetyError(RetrotreadError):
    pass


class PlaceError(RetrotreadError):
    """A folder for retrotread's own files (data, logs) cannot be made or used."""


class SpeechError(RetrotreadError):
    pass


class DeviceError(RetrotreadError):
    pass


class DeviceUrlError(DeviceError, ValueError):
    pass


class DriverUnavailable(RetrotreadError):
    """The driver a URL scheme names cannot be loaded: the pip extra it needs is not installed
    (the message names it), or a third-party driver is broken."""


class Unavailable(enum.Enum):
    NOT_FOUND = "not found"
    ADAPTER_MISSING = "no Bluetooth adapter or serial port"
    ADAPTER_OFF = "Bluetooth is turned off"
    NOT_PERMITTED = "permission denied"
    CONNECT_FAILED = "connection failed"
    NOT_A_TREADMILL = "not a treadmill"


class DeviceUnavailable(DeviceError):
    def __init__(self, reason: Unavailable, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class LinkLost(DeviceError):
    pass


class Rejection(enum.Enum):
    """Why a treadmill refused a command (FTMS result codes, CSAFE and Trackmaster answers)."""

    NOT_SUPPORTED = "not supported"
    INVALID_PARAMETER = "invalid parameter"
    FAILED = "operation failed"
    NOT_PERMITTED = "control not permitted"
    SAFETY_KEY = "safety key pulled"
    NOT_READY = "machine not ready"
    OUT_OF_RANGE = "value out of range"
    ILLEGAL_COMMAND = "illegal command"
    READ_ONLY = "machine is read-only"
    NOT_DURING_WORKOUT = "the console takes this only before a workout starts"


class CommandRejected(DeviceError):
    def __init__(self, command: str, reason: Rejection, detail: str = "") -> None:
        text = f"{command}: {reason.value}"
        super().__init__(f"{text} ({detail})" if detail else text)
        self.command = command
        self.reason = reason
        self.detail = detail


class CommandTimeout(DeviceError):
    def __init__(self, command: str, seconds: float) -> None:
        super().__init__(f"{command}: no answer within {seconds:g} s; outcome unknown")
        self.command = command
        self.seconds = seconds


class ProtocolError(DeviceError):
    pass
