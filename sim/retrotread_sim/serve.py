"""``retrotread-sim serve``: the simulated treadmill on a serial line (a pty) or a TCP port.

The treadmill runs in its own process, as a real one would, and speaks CSAFE or Trackmaster
through the responders in :mod:`retrotread_sim.csafe` and :mod:`retrotread_sim.trackmaster`.
The first line on stdout is where to reach it: a pty path (``/dev/pts/7``) or ``HOST:PORT``.
It serves until SIGTERM or SIGINT.

``--personality`` picks which console answers (each written from public sources, see
:mod:`retrotread_sim.csafe` and :mod:`retrotread_sim.trackmaster`): ``matrix`` or ``concept2``
for CSAFE (``concept2`` by default), ``trackmaster`` (no status requests, the default) or
``trackmaster-query`` for Trackmaster. ``--profile FILE`` takes it from a retrotread device
profile instead: its protocol, its quirks (speed unit, read-only, status queries) and the
console its name says (``matrix-...``, ``concept2-...``).

``--line-rate`` makes the link as slow as the wire it stands for: a byte takes 10 bit times (8N1)
at ``--baud`` (CSAFE 9600, Trackmaster 4800 by default) to arrive, both ways, so round trips
measure what a real RS-232 link would give.

``--record FILE`` appends one JSON line per frame received — its bytes in hex, the answer, and
the machine's state after it — and per console action, flushed as they happen, so a test in
another process can check the exact wire bytes and that the belt ended stopped.

A person at the machine is simulated on stdin, one command per line, each answered on stdout
with ``ok ...`` or ``error ...``::

    start | pause | stop | key-out | key-in | speed MPH | grade PERCENT | state
    unplug [SECONDS]   drop the link (the pty disappears; the TCP client is cut) and come back
    mute | unmute      stop / resume answering (a console that went quiet)
    corrupt [N]        garble the next N answers on the wire

``--faults PLAN`` (or ``@scenario.toml``) injects the faults of :mod:`retrotread_sim.faults`,
timed from when the simulator starts: ``reject`` answers with the protocol's own refusal,
``ignore`` and ``late`` withhold or delay the answer (the machine has acted: the outcome is
unknown to the controller), ``stale`` stops all answers, ``freeze`` repeats the first poll
answer, ``drop`` unplugs the port, ``garble=RATE`` flips bytes, ``split`` sends each answer in
two pieces, ``duplicate`` sends it twice, and the console faults press the machine's buttons.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import select
import signal
import stat
import subprocess
import sys
import time
import tomllib
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol

from retrotread_sim.belt import KMH_PER_MPH, MachineSpec, SimTreadmill
from retrotread_sim.csafe import (
    DEFAULT_PERSONALITY,
    PERSONALITIES,
    SPEED_UNIT_NAMES,
    CsafeOptions,
    CsafeResponder,
)
from retrotread_sim.csafe import KMH_PER_SPEED_COUNT as CSAFE_KMH_PER_COUNT
from retrotread_sim.faults import (
    FaultKind,
    FaultPlan,
    FaultPlanError,
    refusal_hook,
    run_console_faults,
)
from retrotread_sim.trackmaster import PERSONALITIES as TRACKMASTER_PERSONALITIES
from retrotread_sim.trackmaster import TrackmasterResponder, describe

DEFAULT_BAUD = {"csafe": 9600, "trackmaster": 4800}
#: What each protocol's commands are, in the fault plan's words.
PLAN_COMMANDS = {
    "SET_SPEED": "set-speed",
    "SET_GRADE": "set-incline",
    "GO_IN_USE": "start",
    "GO_FINISHED": "stop",
    "A1": "start",
    "A2": "stop",
    "A3": "set-speed",
    "A4": "set-incline",
}
POLLS = {"GET_STATUS", "GET_SPEED", "GET_GRADE", "GET_HORIZONTAL", "GET_TWORK", "C1", "C2"}
SPLIT_GAP_S = 0.003
BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit


class Exchange(Protocol):
    @property
    def request(self) -> bytes: ...
    @property
    def reply(self) -> bytes | None: ...
    @property
    def note(self) -> str: ...
    @property
    def commands(self) -> tuple[str, ...]: ...


class Responder(Protocol):
    protocol: str

    def feed(self, data: bytes) -> Sequence[Exchange]: ...

    def snapshot(self) -> dict[str, object]: ...


def hex_bytes(data: bytes) -> str:
    return " ".join(f"{value:02X}" for value in data)


# -- the machine ------------------------------------------------------------------------------


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


def machine_state(machine: SimTreadmill, responder: Responder) -> dict[str, object]:
    snap = machine.snapshot()
    return {
        "belt": snap.state.value,
        "speed_kmh": round(snap.speed_kmh, 4),
        "target_speed_kmh": round(snap.target_speed_kmh, 4),
        "incline_pct": round(snap.incline_pct, 3),
        "target_incline_pct": round(snap.target_incline_pct, 3),
        "distance_m": round(snap.distance_m, 2),
        "stopped": machine.belt_stopped,
        **responder.snapshot(),
    }


# -- where the bytes come and go --------------------------------------------------------------


class Endpoint(Protocol):
    async def open(self, on_data: Callable[[bytes], None]) -> str: ...

    def send(self, data: bytes) -> None: ...

    async def unplug(self, seconds: float) -> str: ...

    def close(self) -> None: ...


class PtyEndpoint:
    """A pseudo-terminal: the client opens its slave side like any serial port.

    The simulator keeps its own handle on the slave side so the pty stays usable while no
    client has it open. ``link`` names a symlink that always points at the current pty, the way
    udev's ``/dev/serial/by-id`` names survive a USB adapter being replugged.
    """

    def __init__(self, link: Path | None) -> None:
        self.link = link
        self._path = ""
        self._fds: tuple[int, int] | None = None
        self._on_data: Callable[[bytes], None] = lambda _: None

    async def open(self, on_data: Callable[[bytes], None]) -> str:
        self._on_data = on_data
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing: the bytes as sent
        os.set_blocking(master, False)
        self._fds = (master, slave)
        asyncio.get_running_loop().add_reader(master, self._readable)
        path = os.ttyname(slave)
        self._path = path
        if self.link is not None:
            temporary = self.link.with_name(self.link.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            temporary.symlink_to(path)
            temporary.replace(self.link)
            return str(self.link)
        return path

    def _readable(self) -> None:
        assert self._fds is not None
        try:
            data = os.read(self._fds[0], 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # no client side any more (EIO): nothing to read
            return
        if data:
            self._on_data(data)

    def send(self, data: bytes) -> None:
        if self._fds is None:
            return
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fds[0], view)
            except BlockingIOError:
                return  # the client is not reading and its buffer is full: the bytes are lost
            except OSError:
                return
            view = view[written:]

    async def unplug(self, seconds: float) -> str:
        self.close()
        await asyncio.sleep(seconds)
        return await self.open(self._on_data)

    def close(self) -> None:
        if self._fds is None:
            return
        master, slave = self._fds
        self._fds = None
        # The name goes with the device, as udev's does: a name left pointing at a closed pty
        # would lead a client that reopens it to whatever pty the system hands out next under
        # that number (another program's).
        if self.link is not None:
            with contextlib.suppress(OSError):
                if os.readlink(self.link) == self._path:
                    self.link.unlink()
        with contextlib.suppress(ValueError, RuntimeError):
            asyncio.get_running_loop().remove_reader(master)
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class TcpEndpoint:
    """A TCP port, like a serial-to-Ethernet bridge: one client at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._on_data: Callable[[bytes], None] = lambda _: None
        self.on_connect: Callable[[str], None] = lambda _: None

    async def open(self, on_data: Callable[[bytes], None]) -> str:
        self._on_data = on_data
        self._server = await asyncio.start_server(
            self._client, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return f"{self.host}:{self.port}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._writer is not None:  # a new cable replaces the old one
            self._writer.close()
        self._writer = writer
        self.on_connect("connected")
        try:
            while data := await reader.read(4096):
                self._on_data(data)
        except OSError:
            pass
        finally:
            if self._writer is writer:
                self._writer = None
                self.on_connect("disconnected")
            writer.close()

    def send(self, data: bytes) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)

    async def unplug(self, seconds: float) -> str:
        self.close()
        await asyncio.sleep(seconds)
        return await self.open(self._on_data)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._server is not None:
            self._server.close()
            self._server = None


# -- the server -------------------------------------------------------------------------------


class Recorder:
    def __init__(self, path: Path | None) -> None:
        self._file: IO[str] | None = path.open("a", encoding="utf-8") if path else None
        self._origin = time.monotonic()

    def write(self, entry: dict[str, object]) -> None:
        if self._file is None:
            return
        line = {"t": round(time.monotonic() - self._origin, 4), **entry}
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class WireTiming:
    """Line-rate emulation: when each burst of bytes has finished crossing the wire."""

    seconds_per_byte: float
    rx_free: float = 0.0
    tx_free: float = 0.0

    def arrival(self, now: float, size: int) -> float:
        self.rx_free = max(self.rx_free, now) + size * self.seconds_per_byte
        return self.rx_free

    def departure(self, now: float, size: int) -> float:
        self.tx_free = max(self.tx_free, now) + size * self.seconds_per_byte
        return self.tx_free


class SerialServer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.plan: FaultPlan = args.faults
        self.machine = SimTreadmill(self.plan.spec(machine_spec(args)))
        self.machine.refusal_hook = refusal_hook(self.plan, self.machine)
        self._random = random.Random(20957)  # garbling is repeatable run to run
        self._frozen: dict[bytes, bytes] = {}
        self.responder = make_responder(args, self.machine)
        self.recorder = Recorder(args.record)
        baud = args.baud or DEFAULT_BAUD[args.protocol]
        self.timing = WireTiming(BITS_PER_BYTE / baud) if args.line_rate else None
        self.endpoint: Endpoint
        if args.tcp:
            host, _, port = args.tcp.rpartition(":")
            tcp = TcpEndpoint(host or "127.0.0.1", int(port))
            tcp.on_connect = lambda what: self.recorder.write({"event": what})
            self.endpoint = tcp
        else:
            self.endpoint = PtyEndpoint(args.link)
        self.muted = False
        self.corrupt_next = 0
        self._stop = asyncio.Event()
        self._console_tasks: set[asyncio.Task[None]] = set()

    def state(self) -> dict[str, object]:
        return machine_state(self.machine, self.responder)

    # -- bytes in, bytes out ------------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        if self.timing is None:
            self._process(data)
            return
        loop = asyncio.get_running_loop()
        loop.call_at(self.timing.arrival(loop.time(), len(data)), self._process, data)

    def _elapsed(self) -> float:
        return self.machine.clock.now() - self.machine.created_at

    def _planned_reply(self, exchange: Exchange) -> tuple[bytes | None, float, str]:
        """The reply after the fault plan: (bytes or None, delay in s, what happened)."""
        reply, now = exchange.reply, self._elapsed()
        if reply is None or not self.plan:
            return reply, 0.0, ""
        mode = self.plan.telemetry_mode(now)
        if mode is FaultKind.STALE:
            return None, 0.0, "fault plan: stale (no answers)"
        polls = bool(exchange.commands) and set(exchange.commands) <= POLLS
        if mode is FaultKind.FREEZE and polls:
            frozen = self._frozen.setdefault(exchange.request, reply)
            return frozen, 0.0, "fault plan: frozen answer"
        if mode is None:
            self._frozen.clear()
        for name in exchange.commands:
            planned = PLAN_COMMANDS.get(name)
            kinds = {FaultKind.IGNORE, FaultKind.LATE}
            fault = self.plan.command_fault(planned, now, kinds) if planned else None
            if fault is not None and fault.kind is FaultKind.IGNORE:
                return None, 0.0, f"fault plan: {planned} acted on but never answered"
            if fault is not None:
                return reply, float(fault.value or 0), f"fault plan: {planned} answered late"
        return reply, 0.0, ""

    def _process(self, data: bytes) -> None:
        if self.plan.silent(self._elapsed()):
            # A console gone quiet: it neither acts on nor answers what it receives.
            unheard = {"event": "unheard", "rx": hex_bytes(data), "note": "fault plan: silent"}
            self.recorder.write({**unheard, "state": self.state()})
            return
        for exchange in self.responder.feed(data):
            reply, delay, planned_note = self._planned_reply(exchange)
            sent: bytes | None = None
            if reply is not None and not self.muted:
                sent = self._garble(reply) if self.corrupt_next else self._noisy(reply)
                if delay:
                    asyncio.get_running_loop().call_later(
                        delay, self._send_late, sent, exchange.request
                    )
                else:
                    self._send(sent)
            entry: dict[str, object] = {
                "event": "frame",
                "rx": hex_bytes(exchange.request),
                "tx": hex_bytes(sent) if sent is not None else None,
                "note": planned_note
                or (exchange.note if sent is not None or reply is None else "muted"),
                "commands": list(exchange.commands),
            }
            if self.responder.protocol == "trackmaster":
                entry["text"] = describe(exchange.request)
            self.recorder.write({**entry, "state": self.state()})

    def _send_late(self, reply: bytes, request: bytes) -> None:
        self.recorder.write({"event": "answer", "tx": hex_bytes(reply), "to": hex_bytes(request)})
        self._send(reply)

    def _garble(self, reply: bytes) -> bytes:
        self.corrupt_next -= 1
        if self.responder.protocol == "trackmaster":
            return b"\x8e" + reply  # not ASCII: the line cannot be read
        garbled = bytearray(reply)
        garbled[3 if reply[0] == 0xF0 else 1] ^= 0x01  # the checksum no longer matches
        return bytes(garbled)

    def _noisy(self, reply: bytes) -> bytes:
        """``garble=RATE``: each byte is flipped with that probability."""
        rate = self.plan.garble_rate
        if not rate:
            return reply
        return bytes(b ^ 0x55 if self._random.random() < rate else b for b in reply)

    def _send(self, reply: bytes) -> None:
        pieces = (
            [reply[: len(reply) // 2], reply[len(reply) // 2 :]] if self.plan.split else [reply]
        )
        if self.plan.duplicate:
            pieces = pieces * 2
        loop = asyncio.get_running_loop()
        at = loop.time()
        for piece in pieces:
            if self.timing is not None:
                at = self.timing.departure(at, len(piece))
            loop.call_at(at, self.endpoint.send, piece)
            at += SPLIT_GAP_S if self.plan.split else 0.0

    # -- the console --------------------------------------------------------------------------

    def _console_line(self, line: str) -> None:
        words = line.split()
        if not words:
            return
        command, rest = words[0], words[1:]
        try:
            answer = self._console(command, rest)
        except (ValueError, IndexError) as err:
            print(f"error {line.strip()}: {err}", flush=True)
            return
        if answer is not None:
            self._reply_console(command, answer)

    def _reply_console(self, command: str, answer: str) -> None:
        self.recorder.write({"event": "console", "command": command, "state": self.state()})
        print(f"ok {answer}".rstrip(), flush=True)

    def _console(self, command: str, rest: list[str]) -> str | None:
        machine = self.machine
        simple: dict[str, Callable[[], None]] = {
            "start": machine.console_start,
            "pause": machine.console_pause,
            "stop": machine.console_stop,
            "key-out": machine.pull_safety_key,
            "key-in": machine.insert_safety_key,
        }
        if command in simple:
            simple[command]()
            return command
        if command == "speed":
            machine.console_set_speed(float(rest[0]) * KMH_PER_MPH)
            return f"speed {rest[0]}"
        if command == "grade":
            machine.console_set_incline(float(rest[0]))
            return f"grade {rest[0]}"
        if command == "state":
            return json.dumps(self.state())
        if command in ("mute", "unmute"):
            self.muted = command == "mute"
            return command
        if command == "corrupt":
            self.corrupt_next = int(rest[0]) if rest else 1
            return f"corrupt {self.corrupt_next}"
        if command == "unplug":
            seconds = float(rest[0]) if rest else 1.0
            task = asyncio.create_task(self._unplug(seconds))
            self._console_tasks.add(task)
            task.add_done_callback(self._console_tasks.discard)
            return None  # answered once the link is back
        raise ValueError(f"unknown console command {command!r}")

    async def _unplug(self, seconds: float, *, asked: bool = True) -> None:
        self.recorder.write({"event": "unplugged", "state": self.state()})
        address = await self.endpoint.unplug(seconds)
        self.recorder.write({"event": "replugged", "address": address})
        if asked:  # a planned drop was asked for by nobody on stdin: no answer there
            self._reply_console("unplug", f"unplug {address}")

    async def _planned_drops(self) -> None:
        """``drop@T+D``: the port disappears at T for D seconds (a USB adapter unplugged)."""
        for fault in (f for f in self.plan.faults if f.kind is FaultKind.DROP):
            await self.machine.clock.sleep_until(self.machine.created_at + fault.at)
            await self._unplug(fault.duration or 5.0, asked=False)

    async def _read_console(self) -> None:
        try:
            mode = os.fstat(0).st_mode
        except OSError:
            return
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(0)):
            return  # stdin is a file or /dev/null: no person at the console
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        try:
            await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", closefd=False)
            )
        except (OSError, ValueError):
            return
        while line := await reader.readline():
            self._console_line(line.decode("utf-8", errors="replace"))

    # -- lifetime -----------------------------------------------------------------------------

    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        address = await self.endpoint.open(self._on_data)
        self.recorder.write(
            {"event": "serving", "protocol": self.args.protocol, "address": address}
        )
        print(address, flush=True)
        device = f"serial://{address}" if not self.args.tcp else f"socket://{address}"
        print(
            f"retrotread-sim: {self.args.protocol} treadmill on {address}; "
            f"try --device '{device}?protocol={self.args.protocol}'",
            file=sys.stderr,
            flush=True,
        )
        console = asyncio.create_task(self._read_console())
        planned = [
            asyncio.create_task(run_console_faults(self.machine, self.plan, self.machine.clock)),
            asyncio.create_task(self._planned_drops()),
        ]
        try:
            await self._stop.wait()
        finally:
            console.cancel()
            for task in planned:
                task.cancel()
            for task in list(self._console_tasks):
                task.cancel()
            self.recorder.write({"event": "closed", "state": self.state()})
            self.endpoint.close()
            self.recorder.close()
        return 0


# -- command line -----------------------------------------------------------------------------


def _fault_plan(text: str) -> FaultPlan:
    try:
        return FaultPlan.load(Path(text[1:])) if text.startswith("@") else FaultPlan.parse(text)
    except (FaultPlanError, OSError, KeyError) as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _address(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return f"{host or '127.0.0.1'}:{port}"


def _byte(text: str) -> int:
    value = int(text, 0)
    if not 0 <= value <= 0xFF:
        raise argparse.ArgumentTypeError(f"an address is one byte (0-255), got {text}")
    return value


def add_parser(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve the simulated treadmill over CSAFE or Trackmaster on a pty or TCP port",
        description=(__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--protocol", required=True, choices=("csafe", "trackmaster"))
    serve.add_argument(
        "--personality",
        choices=(*PERSONALITIES, *TRACKMASTER_PERSONALITIES),
        help=f"which console answers (csafe: {', '.join(PERSONALITIES)}, "
        f"default {DEFAULT_PERSONALITY}; trackmaster: {', '.join(TRACKMASTER_PERSONALITIES)})",
    )
    serve.add_argument(
        "--profile", type=Path, metavar="FILE", help="be the console this device profile describes"
    )
    serve.add_argument("--tcp", type=_address, metavar="HOST:PORT", help="serve on TCP, not a pty")
    serve.add_argument("--link", type=Path, metavar="PATH", help="keep a symlink to the pty here")
    serve.add_argument(
        "--baud", type=int, metavar="N", help="line rate (csafe 9600, trackmaster 4800)"
    )
    serve.add_argument(
        "--line-rate", action="store_true", help="take as long as the wire would at --baud"
    )
    serve.add_argument("--record", type=Path, metavar="FILE", help="append frames as JSON lines")
    serve.add_argument("--accel", type=float, default=2.0, help="belt km/h per second (2.0)")
    serve.add_argument("--decel", type=float, default=3.0, help="belt km/h per second (3.0)")
    serve.add_argument(
        "--speed-needs-running", action="store_true", help="refuse speed until the belt moves"
    )
    csafe = serve.add_argument_group("CSAFE")
    csafe.add_argument(
        "--speed-unit", default="0.1mph", choices=tuple(SPEED_UNIT_NAMES), help="(0.1mph)"
    )
    csafe.add_argument(
        "--read-only", action="store_true", help="console in manual mode: answers Get only"
    )
    csafe.add_argument("--address", type=_byte, default=1, help="extended-frame address (1)")
    csafe.add_argument(
        "--odometer",
        type=float,
        metavar="M",
        help="GetHorizontal is a running total from M metres that never resets",
    )
    serve.add_argument(
        "--faults",
        type=_fault_plan,
        default=FaultPlan(),
        metavar="PLAN",
        help="inject faults, e.g. 'reject:set-speed=failed@5,garble=0.01' or @scenario.toml",
    )
    trackmaster = serve.add_argument_group("Trackmaster")
    trackmaster.add_argument(
        "--status-query", action="store_true", help="answer A5 (speed) and A6 (grade) queries"
    )


def run(args: argparse.Namespace) -> int:
    if args.baud is not None and args.baud <= 0:
        print("retrotread-sim: --baud must be positive", file=sys.stderr)
        return 2
    if args.link is not None and args.tcp:
        print("retrotread-sim: --link is for the pty, not --tcp", file=sys.stderr)
        return 2
    if args.profile is not None and (problem := apply_profile(args)):
        print(f"retrotread-sim: {problem}", file=sys.stderr)
        return 2
    known = PERSONALITIES if args.protocol == "csafe" else TRACKMASTER_PERSONALITIES
    if args.personality is not None and args.personality not in known:
        print(
            f"retrotread-sim: --personality {args.personality} is not a {args.protocol} console; "
            f"known: {', '.join(known)}",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(SerialServer(args).serve())
    except OSError as err:
        print(f"retrotread-sim: cannot serve: {err}", file=sys.stderr)
        return 1


# -- for tests and benchmarks: the simulator as a child process -------------------------------


class SimProcess:
    """``retrotread-sim serve`` in a child process; ``address`` is what it printed."""

    def __init__(self, protocol: str, *options: str, record: Path | None = None) -> None:
        self.command = [sys.executable, "-m", "retrotread_sim", "serve", "--protocol", protocol]
        self.command += list(options)
        if record is not None:
            self.command += ["--record", str(record)]
        self.record = record
        self.address = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._pending = b""

    def __enter__(self) -> SimProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the simulator is not running")
        return self._process

    def start(self, timeout: float = 20.0) -> str:
        self._process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.address = self._read_line(timeout)
        return self.address

    def _read_line(self, timeout: float) -> str:
        stdout = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"retrotread-sim said nothing within {timeout:g} s")
            ready, _, _ = select.select([stdout], [], [], remaining)
            if ready:
                chunk = os.read(stdout.fileno(), 4096)
                if not chunk:
                    code = self.process.wait()
                    raise RuntimeError(f"retrotread-sim exited with status {code}")
                self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode()

    def console(self, command: str, timeout: float = 10.0) -> str:
        """Act at the machine (see the module doc); returns the answer after ``ok``."""
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(command.encode() + b"\n")
        stdin.flush()
        answer = self._read_line(timeout)
        if not answer.startswith("ok"):
            raise RuntimeError(f"console {command!r}: {answer}")
        return answer[2:].strip()

    def records(self) -> list[dict[str, Any]]:
        if self.record is None or not self.record.exists():
            return []
        lines = self.record.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def frames(self) -> list[dict[str, Any]]:
        return [entry for entry in self.records() if entry.get("event") == "frame"]

    def stop(self, timeout: float = 10.0) -> int:
        process = self._process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._process = None
        return process.returncode
