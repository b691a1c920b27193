"""The simulated treadmill on a serial line: bytes in, the fault plan, bytes out; the person at
the machine on stdin; the frame record. ``retrotread-sim serve`` runs it (see
:mod:`retrotread_sim.serve` for what each option and console command does)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from retrotread_sim.belt import KMH_PER_MPH, SimTreadmill
from retrotread_sim.consoles import machine_spec, make_responder
from retrotread_sim.endpoints import Endpoint, PtyEndpoint, TcpEndpoint
from retrotread_sim.faults import FaultKind, FaultPlan, refusal_hook, run_console_faults
from retrotread_sim.trackmaster import describe
from retrotread_sim.wire import (
    BITS_PER_BYTE,
    DEFAULT_BAUD,
    PLAN_COMMANDS,
    POLLS,
    SPLIT_GAP_S,
    Exchange,
    WireTiming,
    hex_bytes,
    machine_state,
)

log = logging.getLogger(__name__)


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
            log.debug("rx %s -> tx %s %s", entry["rx"], entry["tx"] or "-", entry["note"])

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
        log.info("at the console: %s", answer)
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
        log.info("link unplugged for %g s", seconds)
        address = await self.endpoint.unplug(seconds)
        self.recorder.write({"event": "replugged", "address": address})
        log.info("link back on %s", address)
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
        log.info("serving %s on %s", self.args.protocol, address)
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
