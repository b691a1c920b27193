"""What a person asked for, as typed objects: the command line (and the settings file) turn
into these once, at the edge; nothing inward sees an ``argparse.Namespace``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # both load with the command that uses them, not for `retrotread --help`
    from retrotread.progression import NextSession
    from retrotread.speech.engine import SpeechSettings

DEFAULT_DEVICE = "sim://"  # the in-process simulator (the registry's default, too)


@dataclass(frozen=True)
class RecordOptions:
    """Where a session is recorded, and for whom."""

    client: str | None = None
    db: Path | str | None = None  # None: the platform data directory; str: a database URL
    enabled: bool = True  # False: --no-record


@dataclass(frozen=True)
class FloorOptions:
    """Where a console shows itself on the gym floor (an MQTT broker), and what it accepts
    from there (retrotread.floor)."""

    broker: str  # mqtt://[user:pass@]host[:port], or mqtts:// for TLS
    console_id: str
    client_name: str = "none"  # what the floor sees of the client: full, initials or none
    discovery_prefix: str = "homeassistant"  # Home Assistant discovery ("" for none)
    secret_file: str | None = None  # floor commands must be signed with this shared secret
    trust_broker: bool = False  # accept unsigned commands: the broker's ACL says who may send
    ca_file: str | None = None  # mqtts: the certificate authority that signed the broker's


@dataclass(frozen=True)
class RunOptions:
    """``retrotread run`` (and ``next --start``)."""

    program: str
    device: str = DEFAULT_DEVICE
    rehearse: bool = False
    unattended: bool = False
    allow_blind: bool = False
    quiet: bool = False
    speech: SpeechSettings | None = None  # None: no spoken cues
    record: RecordOptions = field(default_factory=RecordOptions)
    plan: NextSession | None = None  # the progression's session, when `next --start` plays it
    floor: FloorOptions | None = None  # publish to the gym floor (MQTT)

    @property
    def attended(self) -> bool:
        return not (self.unattended or self.rehearse)


@dataclass(frozen=True)
class ServeOptions:
    """The served console's listener and access settings."""

    host: str
    port: int
    allow_remote: bool
    certfile: str | None
    keyfile: str | None
    password_file: str | None
    allow_origin: tuple[str, ...]
    max_views: int


@dataclass(frozen=True)
class ConsoleOptions:
    """``retrotread tui`` (and ``retrotread`` alone)."""

    program: str | None = None
    device: str = DEFAULT_DEVICE
    mute: bool = False
    walker: bool = False
    speech: SpeechSettings | None = None  # None: the defaults
    record: RecordOptions = field(default_factory=RecordOptions)
    serve: ServeOptions | None = None  # serve it to browsers instead of this terminal
    floor: FloorOptions | None = None  # publish to the gym floor (MQTT)
