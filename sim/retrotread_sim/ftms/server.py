"""The simulated treadmill as an FTMS GATT server.

:class:`FtmsServer` puts a :class:`~retrotread_sim.belt.SimTreadmill` behind the Fitness
Machine Service and the Device Information Service, and enforces what every FTMS machine
enforces:

* indications on the control point must be enabled before it is written (ATT error 0xFD);
* one control point procedure at a time: a write while an answer is pending fails at the ATT
  layer (0xFE) and is discarded;
* control must be requested (``00``) before any other procedure; it lasts until the link
  drops, a Reset, or a Control Permission Lost status (``FF``);
* values must lie in the machine's range (``80 <op> 03``).

Personalities
-------------
Real machines read the rest of FTMS 1.0 / FTMP 1.0 differently, so the server is a family of
machines, chosen by :class:`FtmsOptions` (:data:`PERSONALITIES`, ``sim://?personality=``):

``lenient``
    Answers every Start and Stop with success, keeps its belt running when the app goes
    away, notifies Treadmill Data every second whatever changed, and needs no pairing. This
    is how Open Rowing Monitor's FTMS peripheral answers (``app/peripherals/ble/ftms/
    FitnessMachineControlPointCharacteristic.js``: start/stop always ``80 xx 01``, the
    indication sent with the write) and how KingSmith/WalkingPad FTMS treadmills are driven
    by mcdax/walkingpad-controller (no bonding, Treadmill Data streamed at about 1 Hz).
``strict``
    Written from the FTMS 1.0 / FTMP 1.0 text as summarised in the project's protocol notes
    (``../shared/protocols.md``): "Start" when started and "Stop" when stopped are answered
    ``80 <op> 04`` (operation failed; Pause when not running likewise); the control point
    needs an encrypted link (ATT 0x0F, insufficient encryption, until the client pairs;
    a bond survives reconnects); Treadmill Data is notified only when the record changed
    (a still belt sends nothing, also after a reconnect); the belt stops when the client
    that holds control disconnects (FTMS ends control at disconnect; the machine's own
    safety does the rest, issue 13 finding 2); Start, Stop and Pause by the control point
    are also announced on Machine Status, as the Garmin G.FIT FTMS module does for every
    change it makes (G.FIT guide rev 2.0, fig. 4-5) and as the KingSmith R3 does with
    ``02 01`` after a control point Stop (mcdax/walkingpad-controller v0.6.0 notes); and
    the console counts down 3 s after Start before the belt moves, as the TM11GY walking
    pad (qdomyos-zwift issue #5100) and the KingSmith R3 (walkingpad-controller v0.6.0) do.
    Late answers (``late`` faults, :meth:`FtmsServer.delay_answers`) stay within FTMS's
    30 s.
``pause-first``
    The KingSmith R3 (WalkingPad) as mcdax/walkingpad-controller v0.6.0 describes it: it
    answers STOP with 04 while the belt moves (also during its 3-2-1 countdown after
    Start) and must be paused first; it announces a control point Stop with ``02 01``.
    Otherwise lenient (no pairing, data every second, belt left running without the app).
    Here the FTMS text and a real machine disagree on what 04 to Stop means.

Every control point write is recorded in :attr:`FtmsServer.writes` (with when it was
answered); :attr:`FtmsServer.busy_refusals` counts 0xFE answers. A small test-facing API
injects faults: :meth:`force_result`, :meth:`delay_answers`, :meth:`deny_control`,
:meth:`disconnect`, :attr:`split_records`. A :class:`~retrotread_sim.faults.FaultPlan`
(``sim://?faults=...``) acts here too: ``drop`` takes the link down for its duration,
``reject``, ``ignore`` and ``late`` hit control point procedures, ``stale`` and ``freeze`` hit
Treadmill Data, ``split`` splits every record over two notifications.

A client reaches the server through a :class:`Central` — the client's end of one link. The
bleak backend in :mod:`retrotread_sim.ftms.bleak_backend` is one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from retrotread_sim.belt import (
    KMH_PER_MPH,
    BeltState,
    Refusal,
    SimRefused,
    SimTreadmill,
    StatusEvent,
    StatusKind,
)
from retrotread_sim.faults import FaultKind, FaultPlan
from retrotread_sim.faults import ResultCode as FaultResult
from retrotread_sim.ftms import codec
from retrotread_sim.ftms.codec import OpCode, ResultCode, StatusCode, TrainingStatus
from retrotread_sim.ftms.gatt import (
    AttError,
    Characteristic,
    GattError,
    Reader,
    Service,
    assign_handles,
)

log = logging.getLogger(__name__)


#: The control point procedures this treadmill supports (others: "op code not supported").
_PROCEDURES = frozenset(OpCode) - {OpCode.RESPONSE}

#: Fault plan command names of control point requests (op code, first parameter byte).
_COMMANDS: dict[tuple[int, int | None], str] = {
    (OpCode.START_OR_RESUME, None): "start",
    (OpCode.STOP_OR_PAUSE, codec.StopPause.STOP): "stop",
    (OpCode.STOP_OR_PAUSE, codec.StopPause.PAUSE): "pause",
    (OpCode.SET_TARGET_SPEED, None): "set-speed",
    (OpCode.SET_TARGET_INCLINATION, None): "set-incline",
}

_FAULT_RESULTS = {
    FaultResult.NOT_SUPPORTED: ResultCode.NOT_SUPPORTED,
    FaultResult.INVALID_PARAMETER: ResultCode.INVALID_PARAMETER,
    FaultResult.FAILED: ResultCode.OPERATION_FAILED,
    FaultResult.NOT_PERMITTED: ResultCode.CONTROL_NOT_PERMITTED,
}


@dataclass(frozen=True)
class FtmsOptions:
    """How this simulated FTMS treadmill behaves on the link (quirks included).

    The defaults are the ``lenient`` personality; :data:`PERSONALITIES` names the others.
    """

    data_interval_s: float = 1.0  # Treadmill Data notifications
    response_delay_s: float = 0.0  # control point write -> indication
    echo_targets: bool = True  # notify Target Speed/Incline Changed after a control point set
    control_per_command: bool = False  # quirk: control lapses after every procedure
    #: Start when started, Stop when stopped, Pause when not running: ``80 <op> 04``.
    redundant_fails: bool = False
    #: The belt stops when the link of the client holding control goes down.
    stop_on_disconnect: bool = False
    #: Treadmill Data only when the record differs from the last one sent.
    data_on_change: bool = False
    #: Control point writes need an encrypted (paired) link: ATT 0x0F until then.
    requires_encryption: bool = False
    #: Start, Stop and Pause by the control point are announced on Machine Status too.
    echo_state_changes: bool = False
    #: After Start, the console counts down this long before the belt moves.
    start_countdown_s: float = 0.0
    #: Stop is answered 04 while the belt moves (or counts down); Pause halts it.
    stop_refused_while_moving: bool = False
    # -- quirks of real machines (:data:`QUIRKS`; sources there) --------------------------
    #: The control point's speed field is read (and echoed) as 0.01 mph.
    target_speed_mph: bool = False
    #: Treadmill Data speed is sent in 0.01 mph.
    data_speed_mph: bool = False
    #: Speed and incline writes are answered success but ignored unless the two procedures
    #: before them were Request Control and Start.
    writes_need_start: bool = False
    #: The first Request Control on a link is lost (never answered, never pending).
    ignores_first_control_request: bool = False
    #: While the belt runs, no control point write for this long stops it (status 02 01).
    needs_keepalive_s: float = 0.0
    #: Inclines off this grid (percent) are answered 03 (invalid parameter).
    incline_grid_pct: float = 0.0
    #: The incline range declared starts here (percent), whatever the machine takes.
    declared_incline_min_pct: float | None = None
    #: Incline written and reported through a table of (percent, wire value) pairs.
    incline_table: tuple[tuple[float, int], ...] = ()
    #: Treadmill Data carries no incline.
    no_incline_data: bool = False
    #: While the belt runs, one record in this many seconds reports speed 0.
    stray_zero_every_s: float = 0.0
    #: A control point Start from standstill is answered, then announced as ``02 01``; the
    #: belt moves only with the next Start.
    start_handshake: bool = False
    #: No Treadmill Data while the belt stands still (and no record reads zero).
    quiet_when_still: bool = False
    #: A write closer than this to the previous answer is answered success but ignored.
    min_command_gap_s: float = 0.0
    #: No control point at all: a read-only FTMS machine.
    no_control_point: bool = False
    #: (characteristic UUID, bytes): a vendor characteristic (in :data:`VENDOR_SERVICE`) that
    #: must receive these bytes on a link before Request Control is granted there (05 until).
    unlock: tuple[str, bytes] | None = None
    #: Elapsed time counts only while someone walks: frozen while the fault plan has the
    #: walker off the belt (``off-belt@AT+FOR``); the belt runs on.
    elapsed_counts_walking: bool = False
    #: Target speeds below this (km/h) are answered success and ignored.
    drops_speeds_below_kmh: float = 0.0
    #: The speed range declared starts here (km/h), whatever the machine takes.
    declared_speed_min_kmh: float | None = None
    personality: str = "lenient"
    serial_number: str = "SIM-0001"
    hardware_revision: str = "1"
    software_revision: str = "retrotread-sim"


#: The machines the simulator can be (see the module docstring for the sources of each).
PERSONALITIES: dict[str, FtmsOptions] = {
    "lenient": FtmsOptions(),
    "strict": FtmsOptions(
        redundant_fails=True,
        stop_on_disconnect=True,
        data_on_change=True,
        requires_encryption=True,
        echo_state_changes=True,
        start_countdown_s=3.0,
        personality="strict",
    ),
    "pause-first": FtmsOptions(
        stop_refused_while_moving=True,
        echo_state_changes=True,
        start_countdown_s=3.0,
        personality="pause-first",
    ),
}


#: The service that holds a machine's vendor unlock characteristic. The simulator's choice:
#: the sources name only the characteristic, and the driver finds it by its UUID.
VENDOR_SERVICE = "0000fff0-0000-1000-8000-00805f9b34fb"
#: The Merach's unlock: qz btinit() writes these bytes to this characteristic before
#: control (``merachUnlock``), then waits 200 ms.
MERACH_UNLOCK = ("59554c55-0000-6666-8888-4d4552414348", bytes.fromhex("aa01000155"))

#: Quirks of real FTMS treadmills the simulator can play (``sim://?link=ble&quirks=a,b``),
#: each with its source. "qz" is cagnulein/qdomyos-zwift,
#: ``src/devices/horizontreadmill/horizontreadmill.cpp`` (its generic FTMS treadmill driver).
QUIRKS: dict[str, dict[str, Any]] = {
    # qz forceSpeed: "BOWFLEX_T9 ... this treadmill wants the speed in miles"; JFTM T202 too.
    "speed-field-mph": {"target_speed_mph": True},
    # qz characteristicChanged 0x2ACD: "BOWFLEX_T9 ... this treadmill sends the speed in
    # miles"; 3G Elite and TheRun T15 likewise.
    "data-speed-mph": {"data_speed_mph": True},
    # qz forceSpeed/forceIncline: Request Control + Start before every write, for all but
    # ANPLUS, TRX3500, WellFit, Mobvoi TMP, SW, iConcept, YPOO, 3G, FS.
    "start-each-command": {"writes_need_start": True},
    # qz btinit: WellFit, SW and YPOO get Request Control twice, 500 ms apart.
    "request-control-twice": {"ignores_first_control_request": True},
    # qz update(): the Xterra TRX3500 gets Start every second.
    "start-keepalive": {"needs_keepalive_s": 3.0},
    # qz minStepInclination(): 1 % on Kettler, TRX3500, Sole TT8/S77, 3G...; Sole F85:
    # "this treadmill doesn't handle 0.5 inclination".
    "incline-step-1": {"incline_grid_pct": 1.0},
    # qz deviceDiscovered: Sole TT8 min -6 %, F85/F89 -5 %, TM4500/TM6500 -3 %; Adidas 40 %.
    "declares-no-decline": {"declared_incline_min_pct": 0.0},
    # qz forceIncline/0x2ACD for ICONCEPT_FTMS_treadmill: 1 % is 0x3C, 2 % 0x82, ... 15 % 0x3E8.
    "incline-table": {
        "incline_table": (
            (0.0, 0),
            (1.0, 60),
            (2.0, 130),
            (3.0, 200),
            (4.0, 260),
            (5.0, 330),
            (6.0, 400),
            (7.0, 460),
            (8.0, 530),
            (9.0, 600),
            (10.0, 660),
            (11.0, 730),
            (12.0, 800),
            (13.0, 860),
            (14.0, 930),
            (15.0, 1000),
        )
    },
    # qz update(): "this treadmill doesn't send the incline" (Schwinn 810, FIT-TM).
    "no-incline-data": {"no_incline_data": True},
    # qz autoPauseWhenSpeedIsZero(): "Merach sometimes emits a single transient FTMS
    # speed=0 frame while the treadmill is still running".
    "stray-zero": {"stray_zero_every_s": 20.0},
    # qz characteristicChanged 0x2ADA for TP1: "received start packet from treadmill
    # (02 01), sending start command" (Request Control + Start).
    "start-handshake": {"start_handshake": True},
    # qz bowflext216treadmill.cpp: no data for a while means the belt stopped.
    "quiet-when-still": {"quiet_when_still": True},
    # Issue 17's table: WalkingPads (their proprietary protocol) and others drop commands
    # closer than about 0.7 s.
    "command-spacing": {"min_command_gap_s": 0.6},
    # Issue 17's table: "control point absent: read-only FTMS" (several machines).
    "read-only": {"no_control_point": True},
    # qz btinit() for MERACH_TREADMILL: "aa 01 00 01 55" to 59554c55-...-4d4552414348
    # before control. What a Merach does without it is not in the sources: this one
    # refuses control (05), the plainest way to need it.
    "vendor-unlock": {"unlock": MERACH_UNLOCK},
    # qz characteristicChanged 0x2ACD, elapsed time, for mobvoi_tmp_treadmill: "this
    # treadmill sends here if the user is really running" (frozen >= 2 s: speed 0); qz
    # issue #3404: stepping off, the belt runs on. Who steps off: ``off-belt@AT+FOR``.
    "elapsed-walking-only": {"elapsed_counts_walking": True},
    # qz update(): "this treadmill can't go below 1" (Mobvoi TMP); qz issue #3404: asked
    # below 1 km/h, "the treadmill keeps running at 1 km/h". What it declares is not in the
    # sources; declaring less is what lets a lower request reach it.
    "drops-slow-speeds": {"drops_speeds_below_kmh": 1.0, "declared_speed_min_kmh": 0.5},
}


def with_quirks(options: FtmsOptions, names: list[str] | tuple[str, ...]) -> FtmsOptions:
    """``options`` playing the named :data:`QUIRKS` too."""
    changes: dict[str, Any] = {}
    for name in names:
        try:
            changes.update(QUIRKS[name])
        except KeyError:
            known = ", ".join(QUIRKS)
            raise ValueError(f"unknown FTMS quirk {name!r}; known: {known}") from None
    return replace(options, **changes) if changes else options


def personality(name: str, **changes: Any) -> FtmsOptions:
    """The options of a named personality, with ``changes`` on top."""
    try:
        options = PERSONALITIES[name]
    except KeyError:
        known = ", ".join(PERSONALITIES)
        raise ValueError(f"unknown FTMS personality {name!r}; known: {known}") from None
    return replace(options, **changes) if changes else options


@dataclass
class ControlPointWrite:
    """One write to the control point as it reached the server, and how it was answered."""

    time: float
    data: bytes
    result: ResultCode | None  # None: not answered (ATT error, or a forced silence)
    att_error: AttError | None = None
    answered_at: float | None = None  # when the indication went out

    @property
    def hex(self) -> str:
        return self.data.hex(" ").upper()


class Central(Protocol):
    """The client's end of one link, as the server sees it."""

    def deliver(self, handle: int, data: bytes) -> None:
        """A notification or indication arrives at the client."""

    def dropped(self) -> None:
        """The link went down from the server's side (out of range, power, fault)."""


@dataclass(eq=False)
class Connection:
    """One client's link to the server: its subscriptions and control permission."""

    server: FtmsServer
    central: Central
    notifying: set[int] = field(default_factory=set)
    has_control: bool = False
    pending: bool = False  # a control point procedure awaits its indication
    open: bool = True
    encrypted: bool = False  # paired now, or bonded before
    asked_control: bool = False  # a Request Control reached the machine on this link
    unlocked: bool = False  # the vendor unlock arrived on this link (quirk ``unlock``)

    def pair(self) -> None:
        """The client pairs (or re-encrypts with its bond): the link is encrypted."""
        self.server._pair(self)

    def read(self, handle: int) -> bytes:
        return self.server._read(self, handle)

    def write(self, handle: int, data: bytes) -> None:
        self.server._write(self, handle, data)

    def set_notify(self, handle: int, enabled: bool) -> None:
        self.server._set_notify(self, handle, enabled)

    def read_cccd(self, handle: int) -> bytes:
        """The CCCD value: 01 00 notifications, 02 00 indications, 00 00 off."""
        characteristic = self.server._characteristic(handle)
        if handle not in self.notifying:
            return b"\x00\x00"
        return b"\x02\x00" if "indicate" in characteristic.properties else b"\x01\x00"

    def close(self) -> None:
        """The client disconnects."""
        self.server._detach(self)

    def notify(self, handle: int, data: bytes) -> None:
        if self.open and handle in self.notifying:
            self.central.deliver(handle, data)


class FtmsServer:
    """A treadmill's GATT server: FTMS (0x1826) and Device Information (0x180A)."""

    def __init__(
        self,
        machine: SimTreadmill,
        options: FtmsOptions | None = None,
        *,
        plan: FaultPlan | None = None,
    ) -> None:
        self.machine = machine
        self.options = options or FtmsOptions()
        self.plan = plan or FaultPlan()
        self.connections: list[Connection] = []
        self.writes: list[ControlPointWrite] = []
        #: Split every Treadmill Data record over this many notifications (1 = whole).
        self.split_records = 2 if self.plan.split else 1
        self._frozen: codec.TreadmillRecord | None = None
        self._last_sent: codec.TreadmillRecord | None = None
        self._late_s = 0.0
        self._delays: dict[int, list[float]] = {}
        self._write_watchers: list[Callable[[ControlPointWrite], None]] = []
        self._bonded = False
        self._countdown: asyncio.Task[None] | None = None
        self._watching_link: asyncio.Task[None] | None = None
        self._forced: dict[int, list[ResultCode | None]] = {}
        self._control_denied = False
        self._recent_ops: list[int] = []  # the last procedures acted on (start-each-command)
        self._last_answer_at = -float("inf")  # when the last write was answered (spacing)
        self._last_write_at = self.machine.clock.now()  # keep-alive
        self._handshake_armed = False
        self._keepalive: asyncio.Task[None] | None = None
        self._next_stray_zero_at: float | None = None
        self._training_status: bytes | None = None
        #: Vendor characteristic writes: (time, characteristic UUID, bytes).
        self.vendor_writes: list[tuple[float, str, bytes]] = []
        self._walked_s: float | None = None  # elapsed time counted while someone walks
        self._elapsed_seen_s = 0.0  # the belt's own elapsed time when last reported
        self._tasks: set[asyncio.Task[None]] = set()
        self._telemetry: asyncio.Task[None] | None = None
        self.services = self._build_services()
        self._by_handle = assign_handles(self.services)
        self._handles = {c.uuid: h for h, c in self._by_handle.items()}
        self._unsubscribe = machine.subscribe(self._on_machine_status)

    # -- the attribute table ------------------------------------------------------------------

    def _build_services(self) -> list[Service]:
        spec = self.machine.spec
        text = {
            codec.MANUFACTURER_NAME: spec.manufacturer,
            codec.MODEL_NUMBER: spec.model,
            codec.SERIAL_NUMBER: self.options.serial_number,
            codec.HARDWARE_REVISION: self.options.hardware_revision,
            codec.SOFTWARE_REVISION: self.options.software_revision,
        }

        def constant(value: str) -> Reader:
            return lambda: value.encode("utf-8")

        dis = Service(
            codec.DEVICE_INFORMATION_SERVICE,
            [Characteristic(uuid, ("read",), constant(value)) for uuid, value in text.items()],
        )
        ftms = Service(
            codec.FTMS_SERVICE,
            [
                Characteristic(codec.FEATURE, ("read",), self._feature),
                Characteristic(codec.TREADMILL_DATA, ("notify",)),
                Characteristic(
                    codec.TRAINING_STATUS, ("read", "notify"), self._current_training_status
                ),
                Characteristic(codec.SPEED_RANGE, ("read",), self._speed_range),
                Characteristic(codec.INCLINATION_RANGE, ("read",), self._inclination_range),
                Characteristic(codec.CONTROL_POINT, ("write", "indicate")),
                Characteristic(codec.MACHINE_STATUS, ("notify",)),
            ],
        )
        if self.options.no_control_point:
            ftms.characteristics = [
                c for c in ftms.characteristics if c.uuid != codec.CONTROL_POINT
            ]
        if self.options.unlock is not None:
            uuid, _ = self.options.unlock
            vendor = Service(VENDOR_SERVICE, [Characteristic(uuid, ("write", "indicate"))])
            return [ftms, dis, vendor]
        return [ftms, dis]

    def handle(self, uuid: str) -> int:
        """The value handle of the characteristic with this UUID."""
        return self._handles[uuid]

    def _characteristic(self, handle: int) -> Characteristic:
        try:
            return self._by_handle[handle]
        except KeyError:
            raise GattError(AttError.REQUEST_NOT_SUPPORTED, f"no attribute {handle}") from None

    def _feature(self) -> bytes:
        features = (
            codec.FEATURE_TOTAL_DISTANCE | codec.FEATURE_INCLINATION | codec.FEATURE_ELAPSED_TIME
        )
        targets = codec.TARGET_SETTING_SPEED | codec.TARGET_SETTING_INCLINATION
        if self.options.no_control_point:
            targets = 0
        return codec.encode_feature(features, targets)

    def _speed_range(self) -> bytes:
        spec = self.machine.spec
        declared_min = self.options.declared_speed_min_kmh
        return codec.encode_speed_range(
            round((spec.speed_min_kmh if declared_min is None else declared_min) * 100),
            round(spec.speed_max_kmh * 100),
            max(1, round(spec.speed_increment_kmh * 100)),
        )

    def _inclination_range(self) -> bytes:
        spec = self.machine.spec
        declared_min = self.options.declared_incline_min_pct
        low = spec.incline_min_pct if declared_min is None else declared_min
        return codec.encode_inclination_range(
            round(low * 10),
            round(spec.incline_max_pct * 10),
            max(1, round(spec.incline_increment_pct * 10)),
        )

    # -- units on the wire --------------------------------------------------------------------

    def target_to_wire(self, kmh: float) -> int:
        """A target speed as the machine writes it in its status fields.

        A machine with the mph quirk (``MachineSpec.speed_field_mph``) reads and writes the
        control point's speed fields as 0.01 mph, while its Treadmill Data and its range are
        true 0.01 km/h (so comparing what it reports with what was sent reveals the quirk).
        """
        if self.machine.spec.speed_field_mph or self.options.target_speed_mph:
            return round(kmh / KMH_PER_MPH * 100)
        return round(kmh * 100)

    # -- links --------------------------------------------------------------------------------

    @property
    def reachable(self) -> bool:
        """False while the fault plan has the link down: no adverts, no connections."""
        return not self.plan.link_down(self._elapsed())

    def _elapsed(self) -> float:
        return self.machine.clock.now() - self.machine.created_at

    def connect(self, central: Central) -> Connection:
        """A client connects (the radio decides whether it may)."""
        # A bonded client's link is encrypted again with the stored keys, without pairing.
        connection = Connection(self, central, encrypted=self._bonded)
        self.connections.append(connection)
        if self.plan.link_changes() and self._watching_link is None:
            self._watching_link = self._spawn(self._watch_link())
        return connection

    async def _watch_link(self) -> None:
        clock = self.machine.clock
        for when in self.plan.link_changes():
            await clock.sleep_until(self.machine.created_at + when)
            if not self.reachable:
                self.disconnect()

    def disconnect(self) -> None:
        """Test API: every link drops at once, as when the radio link is lost."""
        for connection in list(self.connections):
            self._detach(connection)
            connection.central.dropped()

    def _detach(self, connection: Connection, *, lost: bool = True) -> None:
        if connection in self.connections:
            self.connections.remove(connection)
        had_control = connection.has_control and connection.open
        connection.open = False
        connection.has_control = False
        connection.pending = False
        connection.notifying.clear()
        data = self.handle(codec.TREADMILL_DATA)
        # A machine that reports changes keeps sampling its belt with nobody listening, so
        # what changed while the link was down is not "new" after a reconnect.
        listened = any(data in c.notifying for c in self.connections)
        if not listened and not self.options.data_on_change:
            self._stop_telemetry()
        if lost and had_control and self.options.stop_on_disconnect:
            self._cancel_countdown()
            if self.machine.state in (BeltState.RUNNING, BeltState.PAUSED):
                self.machine.stop_on_link_loss()
                self._refresh_training_status()

    def _pair(self, connection: Connection) -> None:
        connection.encrypted = True
        self._bonded = True

    def forget_bond(self) -> None:
        """Test API: the machine forgets its bonds (a factory reset); clients pair again."""
        self._bonded = False

    def close(self) -> None:
        """Stop notifying and forget every link (the machine itself stays as it is)."""
        for connection in list(self.connections):
            self._detach(connection, lost=False)
        self._cancel_countdown()
        self._unsubscribe()
        self._stop_telemetry()
        for task in list(self._tasks):
            task.cancel()

    # -- test-facing fault injection ----------------------------------------------------------

    def force_result(self, op: int, result: ResultCode | None, times: int = 1) -> None:
        """Answer the next ``times`` writes of ``op`` with ``result`` without acting on them.

        ``None`` means no answer at all: the procedure stays pending, as on a machine that
        hung (a client should give up after 30 s and reconnect).
        """
        self._forced.setdefault(op, []).extend([result] * times)

    def delay_answers(self, op: int, seconds: float, times: int = 1) -> None:
        """Answer the next ``times`` writes of ``op`` ``seconds`` late (they act at once)."""
        self._delays.setdefault(op, []).extend([seconds] * times)

    def deny_control(self, deny: bool = True) -> None:
        """While set, Request Control is answered ``80 00 05`` (another client holds it)."""
        self._control_denied = deny

    def revoke_control(self) -> None:
        """The console (or another client) takes control: status ``FF`` to every client."""
        self.machine.revoke_control()

    @property
    def control_writes(self) -> list[bytes]:
        """The bytes of every control point write, in order."""
        return [w.data for w in self.writes]

    def watch_writes(self, watcher: Callable[[ControlPointWrite], None]) -> Callable[[], None]:
        """Test API: call ``watcher`` with every control point write as it arrives."""
        self._write_watchers.append(watcher)
        return lambda: self._write_watchers.remove(watcher)

    def _log_write(self, write: ControlPointWrite) -> None:
        self.writes.append(write)
        for watcher in list(self._write_watchers):
            watcher(write)

    @property
    def busy_refusals(self) -> int:
        """How many writes came while a procedure was pending (answered ATT 0xFE)."""
        return sum(w.att_error is AttError.PROCEDURE_ALREADY_IN_PROGRESS for w in self.writes)

    # -- ATT requests -------------------------------------------------------------------------

    def _read(self, connection: Connection, handle: int) -> bytes:
        characteristic = self._characteristic(handle)
        if characteristic.read is None:
            raise GattError(AttError.READ_NOT_PERMITTED, f"{characteristic.uuid} is not readable")
        return characteristic.read()

    def _set_notify(self, connection: Connection, handle: int, enabled: bool) -> None:
        characteristic = self._characteristic(handle)
        if not characteristic.notifies:
            raise GattError(
                AttError.REQUEST_NOT_SUPPORTED, f"{characteristic.uuid} does not notify"
            )
        if enabled:
            connection.notifying.add(handle)
            if handle == self.handle(codec.TREADMILL_DATA):
                self._start_telemetry()
        else:
            connection.notifying.discard(handle)

    def _write(self, connection: Connection, handle: int, data: bytes) -> None:
        characteristic = self._characteristic(handle)
        unlock = self.options.unlock
        if unlock is not None and characteristic.uuid == unlock[0]:
            self._unlock(connection, data)
            return
        if characteristic.uuid != codec.CONTROL_POINT:
            raise GattError(AttError.WRITE_NOT_PERMITTED, f"{characteristic.uuid} is read-only")
        now = self.machine.clock.now()
        if self.options.requires_encryption and not connection.encrypted:
            # The attribute's security comes first, before any FTMS rule (Core Vol 3 Part F
            # 3.4.1.1: insufficient encryption); nothing of the write reaches the machine.
            self._refused(
                now, data, AttError.INSUFFICIENT_ENCRYPTION, "the control point needs pairing"
            )
        if handle not in connection.notifying:
            self._refused(
                now,
                data,
                AttError.CCCD_IMPROPERLY_CONFIGURED,
                "enable indications on the control point before writing to it",
            )
        if connection.pending:
            self._refused(
                now,
                data,
                AttError.PROCEDURE_ALREADY_IN_PROGRESS,
                "a control point procedure is pending",
            )
        if not data:
            raise GattError(AttError.INVALID_ATTRIBUTE_VALUE_LENGTH, "empty control point write")
        request = codec.ControlRequest.decode(data)
        if (
            self.options.ignores_first_control_request
            and request.op == OpCode.REQUEST_CONTROL
            and not connection.asked_control
        ):
            # Lost while the machine's control point wakes up: no answer, nothing pending.
            connection.asked_control = True
            self._log_write(ControlPointWrite(now, bytes(data), None))
            return
        connection.asked_control = True
        too_soon = now - self._last_answer_at < self.options.min_command_gap_s
        self._last_write_at = now
        connection.pending = True
        result: ResultCode | None
        echo: bytes | None
        if too_soon and request.op != OpCode.REQUEST_CONTROL:
            # Dropped by a machine that needs time between commands, yet answered success.
            self.machine.note("link", f"op {request.op:#04x}", "dropped: too soon after the last")
            result, echo = ResultCode.SUCCESS, None
        else:
            result, echo = self._execute(connection, request)
        record = ControlPointWrite(now, bytes(data), result)
        self._log_write(record)
        if result is not None:
            delay, self._late_s = self.options.response_delay_s + self._late_s, 0.0
            if delays := self._delays.get(request.op):
                delay += delays.pop(0)
            due = now + delay
            self._spawn(self._answer(connection, record, request.op, result, echo, due))

    def _unlock(self, connection: Connection, data: bytes) -> None:
        """A write to the vendor unlock characteristic: the right bytes unlock this link."""
        assert self.options.unlock is not None
        uuid, wanted = self.options.unlock
        self.vendor_writes.append((self.machine.clock.now(), uuid, bytes(data)))
        if bytes(data) == wanted:
            connection.unlocked = True
            self.machine.note("link", "unlock", "vendor unlock written: control may be granted")
        else:
            self.machine.note("link", "unlock", f"vendor write {data.hex(' ')}: not the unlock")

    def _refused(self, now: float, data: bytes, code: AttError, detail: str) -> None:
        self._log_write(ControlPointWrite(now, bytes(data), None, code))
        raise GattError(code, detail)

    async def _answer(
        self,
        connection: Connection,
        record: ControlPointWrite,
        op: int,
        result: ResultCode,
        echo: bytes | None,
        due: float,
    ) -> None:
        # The indication follows the write's ATT response, never precedes it.
        clock = self.machine.clock
        await clock.sleep_until(due)
        if not connection.open:
            return
        connection.pending = False
        record.answered_at = self._last_answer_at = clock.now()
        connection.notify(self.handle(codec.CONTROL_POINT), codec.encode_response(op, result))
        if echo is not None:
            self._notify_all(codec.MACHINE_STATUS, echo)
        self._refresh_training_status()

    # -- control point procedures -------------------------------------------------------------

    def _execute(
        self, connection: Connection, request: codec.ControlRequest
    ) -> tuple[ResultCode | None, bytes | None]:
        forced = self._forced.get(request.op)
        if forced:
            return forced.pop(0), None
        if request.op == OpCode.REQUEST_CONTROL:
            holder = any(c.has_control for c in self.connections if c is not connection)
            if self._control_denied or holder:
                return ResultCode.CONTROL_NOT_PERMITTED, None
            if self.options.unlock is not None and not connection.unlocked:
                self.machine.note("link", "request control", "refused: no vendor unlock first")
                return ResultCode.CONTROL_NOT_PERMITTED, None
            connection.has_control = True
            self._recent_ops = [*self._recent_ops[-1:], request.op]
            return ResultCode.SUCCESS, None
        if request.op not in _PROCEDURES:
            return ResultCode.NOT_SUPPORTED, None
        if not connection.has_control:
            return ResultCode.CONTROL_NOT_PERMITTED, None
        planned = self._planned_fault(request)
        if planned is not None:
            return planned
        try:
            echo = self._procedure(request)
        except codec.DecodeError:
            return ResultCode.INVALID_PARAMETER, None
        except SimRefused as refused:
            if refused.reason is Refusal.OUT_OF_RANGE:
                return ResultCode.INVALID_PARAMETER, None
            return ResultCode.OPERATION_FAILED, None
        except _Failed as failed:
            self.machine.note("link", failed.name, f"{failed.why}: answered operation failed")
            return ResultCode.OPERATION_FAILED, None
        self._recent_ops = [*self._recent_ops[-1:], request.op]
        if request.op == OpCode.RESET:
            for each in self.connections:
                each.has_control = False
        elif self.options.control_per_command:
            connection.has_control = False
        if request.op in (OpCode.SET_TARGET_SPEED, OpCode.SET_TARGET_INCLINATION):
            return ResultCode.SUCCESS, echo if self.options.echo_targets else None
        if self.options.start_handshake and request.op == OpCode.START_OR_RESUME and echo:
            return ResultCode.SUCCESS, echo if self._handshake_armed else None
        return ResultCode.SUCCESS, echo if self.options.echo_state_changes else None

    def _planned_fault(
        self, request: codec.ControlRequest
    ) -> tuple[ResultCode | None, bytes | None] | None:
        """What the fault plan does to this request: refuse it, ignore it, or nothing."""
        first = (
            request.parameter[0]
            if request.op == OpCode.STOP_OR_PAUSE and request.parameter
            else None
        )
        name = _COMMANDS.get((request.op, first))
        if name is None or (fault := self.plan.command_fault(name, self._elapsed())) is None:
            return None
        if fault.kind is FaultKind.IGNORE:
            self.machine.note("link", name, "ignored by fault plan")
            return None, None
        if fault.kind is FaultKind.REJECT:
            code = FaultResult(fault.value or FaultResult.FAILED.value)
            self.machine.note("link", name, f"refused by fault plan: {code.value}")
            return _FAULT_RESULTS[code], None
        self._late_s = float(fault.value or 0)  # FaultKind.LATE: act now, answer later
        return None

    def _procedure(self, request: codec.ControlRequest) -> bytes | None:
        """Act on one request; returns the Machine Status a real machine echoes, if any.

        Raises :class:`_Failed` when the machine answers "operation failed": a strict one
        because it already is where the request would take it, a pause-first one for a Stop
        while its belt moves.
        """
        machine = self.machine
        strict = self.options.redundant_fails
        state = machine.snapshot().state
        counting = self._countdown is not None
        match request.op:
            case OpCode.RESET:
                if request.parameter:
                    raise codec.DecodeError("reset takes no parameter")
                self._cancel_countdown()
                machine.reset()
            case OpCode.SET_TARGET_SPEED:
                if self._ignores_unprepared_write():
                    return None
                # The machine itself reads the value as mph if it has that quirk.
                value = request.u16() / 100
                if self.options.target_speed_mph and not machine.spec.speed_field_mph:
                    value *= KMH_PER_MPH
                if value < self.options.drops_speeds_below_kmh - 1e-9:
                    # The Mobvoi TMP: answered, and its belt keeps the speed it had.
                    machine.note("link", "set-speed", f"{value:.2f} km/h dropped: below its floor")
                    return None
                machine.set_target_speed(value)
                target = self.target_to_wire(machine.target_speed_kmh)
                return codec.encode_status(
                    StatusCode.TARGET_SPEED_CHANGED, target.to_bytes(2, "little")
                )
            case OpCode.SET_TARGET_INCLINATION:
                if self._ignores_unprepared_write():
                    return None
                machine.set_target_incline(self._incline_from_wire(request.s16()))
                target = round(machine.target_incline_pct * 10)
                return codec.encode_status(
                    StatusCode.TARGET_INCLINE_CHANGED, target.to_bytes(2, "little", signed=True)
                )
            case OpCode.START_OR_RESUME:
                if request.parameter:
                    raise codec.DecodeError("start takes no parameter")
                if self.options.start_handshake and state is not BeltState.RUNNING:
                    self._handshake_armed = not self._handshake_armed
                    if self._handshake_armed:
                        # The TP1 announces a Start as 02 01 and waits for control + Start.
                        return codec.encode_status(StatusCode.STOPPED_OR_PAUSED_BY_USER, b"\x01")
                if strict and (state is BeltState.RUNNING or counting):
                    raise _Failed("start", _ALREADY)
                countdown = self.options.start_countdown_s
                if countdown > 0 and state is not BeltState.RUNNING:
                    if state is BeltState.SAFETY_KEY:
                        raise SimRefused(Refusal.SAFETY_KEY_PULLED, "insert the safety key first")
                    if not counting:
                        self._countdown = self._spawn(self._count_down(countdown))
                else:
                    machine.start()
                return codec.encode_status(StatusCode.STARTED_OR_RESUMED_BY_USER)
            case OpCode.STOP_OR_PAUSE:
                code = request.u8()
                if code == codec.StopPause.STOP:
                    if strict and not counting and state in _STILL:
                        raise _Failed("stop", _ALREADY)
                    if self.options.stop_refused_while_moving and (
                        counting or state is BeltState.RUNNING
                    ):
                        raise _Failed("stop", "refused while the belt moves: pause first")
                    self._cancel_countdown()
                    machine.stop()
                    return codec.encode_status(StatusCode.STOPPED_OR_PAUSED_BY_USER, b"\x01")
                if code == codec.StopPause.PAUSE:
                    if strict and not counting and state is not BeltState.RUNNING:
                        raise _Failed("pause", _ALREADY)
                    self._cancel_countdown()
                    machine.pause()
                    return codec.encode_status(StatusCode.STOPPED_OR_PAUSED_BY_USER, b"\x02")
                raise codec.DecodeError(f"stop/pause parameter {code:#04x}")
        return None

    def _ignores_unprepared_write(self) -> bool:
        """A set not preceded by Request Control and Start is ignored (start-each-command)."""
        if not self.options.writes_need_start:
            return False
        if self._recent_ops == [OpCode.REQUEST_CONTROL, OpCode.START_OR_RESUME]:
            return False
        self.machine.note("link", "set", "ignored: no Request Control + Start before it")
        return True

    def _incline_from_wire(self, wire: int) -> float:
        table = self.options.incline_table
        if table:
            # The largest table entry not above the value (qz reads unknown values as 0 %).
            return max((pct for pct, code in table if code <= wire), default=0.0)
        pct = wire / 10
        grid = self.options.incline_grid_pct
        if grid and abs(pct / grid - round(pct / grid)) > 1e-6:
            raise SimRefused(Refusal.OUT_OF_RANGE, f"{pct} % is not a multiple of {grid} %")
        return pct

    def _incline_to_wire(self, pct: float) -> int:
        table = self.options.incline_table
        if table:
            return min(table, key=lambda entry: abs(entry[0] - pct))[1]
        return round(pct * 10)

    async def _count_down(self, seconds: float) -> None:
        """The console's 3-2-1 after Start: the belt moves when it ends."""
        clock = self.machine.clock
        await clock.sleep_until(clock.now() + seconds)
        self._countdown = None
        try:
            self.machine.start()
        except SimRefused as refused:
            log.info("start after the countdown refused: %s", refused)
        self._refresh_training_status()

    def _cancel_countdown(self) -> None:
        if self._countdown is not None:
            self._countdown.cancel()
            self._countdown = None

    # -- what the machine announces -----------------------------------------------------------

    def _on_machine_status(self, event: StatusEvent) -> None:
        status = _status_payload(event, self)
        if event.kind in _ENDS_COUNTDOWN:
            self._cancel_countdown()
        if event.kind is StatusKind.CONTROL_LOST:
            for connection in self.connections:
                connection.has_control = False
        if status is not None:
            self._notify_all(codec.MACHINE_STATUS, status)
        self._refresh_training_status()

    def _current_training_status(self) -> bytes:
        state = self.machine.snapshot().state
        if state is BeltState.RUNNING:
            return codec.encode_training_status(TrainingStatus.MANUAL_MODE)
        if state is BeltState.PAUSED:
            return codec.encode_training_status(TrainingStatus.OTHER, "paused")
        if state is BeltState.SAFETY_KEY:
            return codec.encode_training_status(TrainingStatus.OTHER, "safety key")
        if state is BeltState.STOPPED:
            return codec.encode_training_status(TrainingStatus.POST_WORKOUT)
        return codec.encode_training_status(TrainingStatus.IDLE)

    def _refresh_training_status(self) -> None:
        current = self._current_training_status()
        if current != self._training_status:
            self._training_status = current
            self._notify_all(codec.TRAINING_STATUS, current)

    def _notify_all(self, uuid: str, data: bytes) -> None:
        handle = self.handle(uuid)
        for connection in list(self.connections):
            connection.notify(handle, data)

    # -- telemetry ----------------------------------------------------------------------------

    def record(self) -> codec.TreadmillRecord:
        snap = self.machine.snapshot()
        options = self.options
        speed = snap.speed_kmh / KMH_PER_MPH if options.data_speed_mph else snap.speed_kmh
        if options.stray_zero_every_s and snap.speed_kmh > 0:
            due = self._next_stray_zero_at
            if due is None:
                self._next_stray_zero_at = snap.time + options.stray_zero_every_s
            elif snap.time >= due:
                self._next_stray_zero_at = snap.time + options.stray_zero_every_s
                speed = 0.0  # the Merach's lone zero: the belt runs on
        return codec.TreadmillRecord(
            speed=round(speed * 100),
            distance_m=int(snap.distance_m),
            incline=None if options.no_incline_data else self._incline_to_wire(snap.incline_pct),
            elapsed_s=int(self._reported_elapsed(snap.elapsed_s)),
        )

    def _reported_elapsed(self, elapsed_s: float) -> float:
        """The elapsed time the machine reports: all of it, or (``elapsed_counts_walking``)
        only the time someone walked, frozen while the walker is off the belt."""
        if not self.options.elapsed_counts_walking:
            return elapsed_s
        if self._walked_s is None:
            self._walked_s = elapsed_s
        elif not self.plan.off_belt(self._elapsed()):
            self._walked_s += elapsed_s - self._elapsed_seen_s
        self._elapsed_seen_s = elapsed_s
        return self._walked_s

    def notify_treadmill_data(self) -> None:
        mode = self.plan.telemetry_mode(self._elapsed())
        if mode is FaultKind.STALE:
            return
        record = self.record()
        if mode is FaultKind.FREEZE:
            self._frozen = record = self._frozen or record
        else:
            self._frozen = None
        if self.options.data_on_change and record == self._last_sent:
            return  # nothing changed: a strict machine stays quiet (a still belt says nothing)
        if self.options.quiet_when_still and self.machine.snapshot().speed_kmh == 0:
            return  # the Bowflex T216: no final zero record, just silence
        self._check_keepalive()
        self._last_sent = record
        for fragment in codec.encode_treadmill_data(record, self.split_records):
            self._notify_all(codec.TREADMILL_DATA, fragment)
        self._refresh_training_status()

    def _check_keepalive(self) -> None:
        """A machine that wants a keep-alive stops its belt when writes stop coming."""
        limit = self.options.needs_keepalive_s
        machine = self.machine
        if not limit or machine.state is not BeltState.RUNNING:
            return
        if machine.clock.now() - self._last_write_at >= limit:
            machine.note("link", "keep-alive", f"no write for {limit:g} s: belt stopped")
            machine.console_stop()

    def _start_telemetry(self) -> None:
        if self._telemetry is None or self._telemetry.done():
            self._telemetry = self._spawn(self._report())

    def _stop_telemetry(self) -> None:
        if self._telemetry is not None:
            self._telemetry.cancel()
            self._telemetry = None

    async def _report(self) -> None:
        clock = self.machine.clock
        next_at = clock.now()
        while True:
            self.notify_treadmill_data()
            next_at += self.options.data_interval_s
            await clock.sleep_until(next_at)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)
        return task


class _Failed(Exception):
    """The machine answers a procedure "operation failed" (04), for ``why``."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"{name}: {why}")
        self.name = name
        self.why = why


_ALREADY = "already so"


_STILL = (BeltState.IDLE, BeltState.STOPPED, BeltState.SAFETY_KEY)
_ENDS_COUNTDOWN = {
    StatusKind.STOPPED_BY_USER,
    StatusKind.PAUSED_BY_USER,
    StatusKind.STOPPED_BY_SAFETY_KEY,
    StatusKind.RESET,
}


def _status_payload(event: StatusEvent, server: FtmsServer) -> bytes | None:
    kind = event.kind
    if kind is StatusKind.RESET:
        return codec.encode_status(StatusCode.RESET)
    if kind is StatusKind.STOPPED_BY_USER:
        return codec.encode_status(StatusCode.STOPPED_OR_PAUSED_BY_USER, b"\x01")
    if kind is StatusKind.PAUSED_BY_USER:
        return codec.encode_status(StatusCode.STOPPED_OR_PAUSED_BY_USER, b"\x02")
    if kind is StatusKind.STOPPED_BY_SAFETY_KEY:
        return codec.encode_status(StatusCode.STOPPED_BY_SAFETY_KEY)
    if kind is StatusKind.STARTED_BY_USER:
        return codec.encode_status(StatusCode.STARTED_OR_RESUMED_BY_USER)
    if kind is StatusKind.TARGET_SPEED_CHANGED and event.value is not None:
        wire = server.target_to_wire(event.value)
        return codec.encode_status(StatusCode.TARGET_SPEED_CHANGED, wire.to_bytes(2, "little"))
    if kind is StatusKind.TARGET_INCLINE_CHANGED and event.value is not None:
        wire = round(event.value * 10)
        return codec.encode_status(
            StatusCode.TARGET_INCLINE_CHANGED, wire.to_bytes(2, "little", signed=True)
        )
    if kind is StatusKind.CONTROL_LOST:
        return codec.encode_status(StatusCode.CONTROL_PERMISSION_LOST)
    return None


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("simulated FTMS server task failed", exc_info=error)
