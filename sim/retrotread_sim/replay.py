"""``retrotread-sim replay FILE``: a wire trace served back as the machine it was taken from.

A trace (``retrotread run --trace FILE``; JSON lines, see retrotread's ``retrotread.trace``)
holds what a machine declared and every frame to and from it. Read here with the simulator's
own reader — the simulator never imports retrotread — and served as that machine, so that a
user's bug report becomes a test:

* **Serial (CSAFE, Trackmaster)**: a pty, like ``serve``; the first line on stdout is its
  path. Each request is answered with the recorded answer to the same request. Requests the
  trace shows many times (telemetry polls) are answered from the stretch of the trace between
  the same two commands, in order, the last one repeated: a poll after the recorded "start"
  and "3.2 mph" gets what the machine said then, however many polls the new run makes. A
  CSAFE answer's frame toggle (status bit 7) is set afresh, flipping with every answer, as a
  console does for every frame it takes.
* **Bluetooth FTMS**: :func:`ftms_peripheral` puts a simulated FTMS server on an in-process
  radio that reads back the recorded Feature, ranges and Device Information, answers each
  control point write with the result the trace shows for the same write (an ``04`` is
  answered without acting, as the machine did), and plays telemetry consistent with the
  commanded speed from the simulator's belt, within the recorded ranges.

Only what the trace holds is known: a request it never saw gets no answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrotread_sim import csafe
from retrotread_sim.belt import MachineSpec, SimTreadmill
from retrotread_sim.ftms import codec
from retrotread_sim.trackmaster import CommandSplitter

FORMAT = "retrotread-trace"
#: A request seen at least this often in a trace is a poll (answered by the stretch it is in).
POLL_MIN_REPEATS = 3


class TraceError(ValueError):
    """A file that is not a readable retrotread trace."""


# -- reading a trace ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceFrame:
    t: float
    out: bool  # to the machine
    kind: str  # serial, read, write, notify, indicate
    data: bytes
    characteristic: str | None = None
    error: str | None = None


@dataclass
class TracedLink:
    """One connection in a trace: what the machine declared and every frame."""

    number: int
    protocol: str
    url: str
    profile: str
    declared: dict[str, Any] = field(default_factory=dict)
    frames: list[TraceFrame] = field(default_factory=list)


def read_trace(path: Path) -> list[TracedLink]:
    """Every link in the trace file, in order."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise TraceError(f"cannot read {path}: {err}") from err
    links: dict[int, TracedLink] = {}
    seen_header = False
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            kind = record["type"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise TraceError(f"{path}:{number}: not a trace record ({err})") from err
        if kind == "header":
            if record.get("format") != FORMAT:
                raise TraceError(f"{path}:{number}: not a {FORMAT} file")
            seen_header = True
            continue
        link = record.get("link")
        if kind == "link":
            links[link] = TracedLink(
                link, str(record["protocol"]), str(record["url"]), str(record["profile"])
            )
        elif link in links and kind == "machine":
            links[link].declared = dict(record["declared"])
        elif link in links and kind == "frame":
            links[link].frames.append(
                TraceFrame(
                    float(record["t"]),
                    record["dir"] == "out",
                    str(record["kind"]),
                    bytes.fromhex(record["hex"]),
                    record.get("char"),
                    record.get("error"),
                )
            )
    if not seen_header:
        raise TraceError(f"{path}: no {FORMAT} header")
    return list(links.values())


def pick_link(links: Sequence[TracedLink], number: int | None = None) -> TracedLink:
    """The link asked for, else the one with the most frames (the session, not a probe)."""
    if not links:
        raise TraceError("the trace holds no link")
    if number is not None:
        for link in links:
            if link.number == number:
                return link
        raise TraceError(f"the trace has no link {number}; it has {[x.number for x in links]}")
    return max(links, key=lambda link: len(link.frames))


# -- serial: the recorded answer to the same request -------------------------------------------


@dataclass
class _Stretch:
    """What happened after one command, until the next: the polls' answers, in order."""

    command: bytes | None
    answer: bytes | None
    polls: dict[bytes, list[bytes]] = field(default_factory=dict)


class SerialAnswers:
    """Answers requests as the trace shows the machine answered them."""

    def __init__(self, link: TracedLink) -> None:
        self.protocol = link.protocol
        exchanges = _exchanges(link.frames)
        counts: dict[bytes, int] = {}
        for request, _ in exchanges:
            counts[request] = counts.get(request, 0) + 1
        self.polls = {r for r, n in counts.items() if n >= POLL_MIN_REPEATS}
        self.stretches = [_Stretch(None, None)]
        for request, answer in exchanges:
            if request in self.polls:
                if answer is not None:
                    self.stretches[-1].polls.setdefault(request, []).append(answer)
            else:
                self.stretches.append(_Stretch(request, answer))
        self.position = 0  # the stretch the machine is in (the last command matched)
        self._served: dict[tuple[int, bytes], int] = {}

    def answer(self, request: bytes) -> bytes | None:
        if request in self.polls:
            return self._poll_answer(request)
        after = list(range(self.position + 1, len(self.stretches)))
        for index in after + list(range(1, self.position + 1)):  # onward first, then again
            stretch: _Stretch = self.stretches[index]
            if stretch.command == request:
                self.position = index
                return stretch.answer
        return None

    def _poll_answer(self, request: bytes) -> bytes | None:
        for index in range(self.position, -1, -1):  # this stretch, else the latest before it
            answers = self.stretches[index].polls.get(request)
            if answers:
                served = self._served.get((index, request), 0)
                self._served[(index, request)] = served + 1
                return answers[min(served, len(answers) - 1)]
        return None


def _exchanges(frames: Sequence[TraceFrame]) -> list[tuple[bytes, bytes | None]]:
    """(request, everything that came back before the next request) pairs."""
    pairs: list[tuple[bytes, bytes | None]] = []
    answer = bytearray()
    request: bytes | None = None
    for frame in frames:
        if frame.kind != "serial":
            continue
        if frame.out:
            if request is not None:
                pairs.append((request, bytes(answer) or None))
            request, answer = frame.data, bytearray()
        else:
            answer += frame.data
    if request is not None:
        pairs.append((request, bytes(answer) or None))
    return pairs


class _Toggle:
    """Sets a CSAFE answer's frame toggle (status bit 7) afresh, flipping with each answer."""

    def __init__(self) -> None:
        self.value: bool | None = None

    def apply(self, answer: bytes) -> bytes:
        frames = [a.frame for a in csafe.FrameSplitter().feed(answer)]
        if len(frames) != 1 or frames[0] is None or not frames[0].contents:
            return answer  # not one readable frame: served as recorded
        frame = frames[0]
        recorded = bool(frame.contents[0] & 0x80)
        self.value = recorded if self.value is None else not self.value
        status = (frame.contents[0] & 0x7F) | (0x80 if self.value else 0)
        contents = bytes((status,)) + frame.contents[1:]
        return csafe.build_frame(contents, frame.destination, frame.source)


class SerialReplay:
    """Cuts what arrives into requests and answers each from the trace."""

    def __init__(self, link: TracedLink, send: Callable[[bytes], None]) -> None:
        if link.protocol not in ("csafe", "trackmaster"):
            raise TraceError(f"link {link.number} is {link.protocol}, not a serial protocol")
        self.answers = SerialAnswers(link)
        self.send = send
        self.unanswered: list[bytes] = []
        self._csafe = csafe.FrameSplitter() if link.protocol == "csafe" else None
        self._trackmaster = CommandSplitter() if link.protocol == "trackmaster" else None
        self._toggle = _Toggle()

    def feed(self, data: bytes) -> None:
        if self._csafe is not None:
            requests = [arrival.wire for arrival in self._csafe.feed(data)]
        else:
            assert self._trackmaster is not None
            requests = [request for request, _ in self._trackmaster.feed(data)]
        for request in requests:
            answer = self.answers.answer(request)
            if answer is None:
                self.unanswered.append(request)
                continue
            self.send(self._toggle.apply(answer) if self._csafe is not None else answer)


async def serve_serial(link: TracedLink, where: Path | None) -> int:
    from retrotread_sim.serve import PtyEndpoint

    endpoint = PtyEndpoint(where)
    replay = SerialReplay(link, lambda data: endpoint.send(data))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    address = await endpoint.open(replay.feed)
    print(address, flush=True)
    print(
        f"retrotread-sim: replaying a {link.protocol} trace on {address}; try --device "
        f"'serial://{address}?protocol={link.protocol}&profile={link.profile}'",
        file=sys.stderr,
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        endpoint.close()
        if replay.unanswered:
            shown = ", ".join(r.hex(" ") for r in replay.unanswered[:5])
            print(
                f"retrotread-sim: {len(replay.unanswered)} request(s) the trace never saw "
                f"went unanswered: {shown}",
                file=sys.stderr,
            )
    return 0


# -- Bluetooth FTMS ----------------------------------------------------------------------------


def recorded_reads(link: TracedLink) -> dict[str, bytes]:
    """The last value read from each characteristic, by short UUID."""
    return {
        frame.characteristic: frame.data
        for frame in link.frames
        if frame.kind == "read" and frame.characteristic is not None
    }


def _results(link: TracedLink) -> dict[bytes, list[int]]:
    """Each control point write and the result codes its answers gave, in order."""
    results: dict[bytes, list[int]] = {}
    pending: list[bytes] = []
    for frame in link.frames:
        if frame.characteristic != "2ad9":
            continue
        if frame.out and frame.kind == "write" and frame.error is None:
            pending.append(frame.data)
        elif frame.kind == "indicate" and len(frame.data) >= 3 and frame.data[0] == 0x80:
            for index, write in enumerate(pending):
                if write[0] == frame.data[1]:
                    results.setdefault(write, []).append(frame.data[2])
                    del pending[index]
                    break
    return results


def machine_spec(link: TracedLink) -> MachineSpec:
    """A machine with the recorded ranges (defaults where the trace holds none)."""
    reads = recorded_reads(link)
    changes: dict[str, float | bool | str] = {}
    info = link.declared.get("device_info", {})
    if isinstance(info, dict):
        if info.get("manufacturer"):
            changes["manufacturer"] = str(info["manufacturer"])
        if info.get("model"):
            changes["model"] = str(info["model"])
            changes["name"] = str(info["model"])
    speed = reads.get(codec.SPEED_RANGE[4:8])
    if speed is not None and len(speed) >= 6:
        low, high, step = struct.unpack_from("<HHH", speed)
        changes.update(
            speed_min_kmh=low / 100, speed_max_kmh=high / 100, speed_increment_kmh=step / 100
        )
    incline = reads.get(codec.INCLINATION_RANGE[4:8])
    if incline is not None and len(incline) >= 6:
        low, high, step = struct.unpack_from("<hhH", incline)
        changes.update(
            incline_min_pct=low / 10, incline_max_pct=high / 10, incline_increment_pct=step / 10
        )
    return MachineSpec().with_options(**changes)


def ftms_peripheral(link: TracedLink, address: str | None = None) -> Any:
    """A :class:`~retrotread_sim.ftms.SimPeripheral` playing the traced FTMS machine; add it
    to a :class:`~retrotread_sim.ftms.Radio` (needs a running event loop)."""
    from retrotread_sim.ftms import DEFAULT_ADDRESS, FtmsOptions, FtmsServer, SimPeripheral
    from retrotread_sim.ftms.server import ControlPointWrite

    if link.protocol != "ftms":
        raise TraceError(f"link {link.number} is {link.protocol}, not ftms")
    paired = any(f.error and "ncryption" in f.error for f in link.frames if f.kind == "write")
    statuses = [f.data for f in link.frames if f.kind == "notify" and f.characteristic == "2ada"]
    server = FtmsServer(
        SimTreadmill(machine_spec(link)),
        FtmsOptions(
            requires_encryption=paired,
            # A machine that announced a control point Stop on Machine Status does so for all.
            echo_state_changes=any(s[:1] == b"\x02" for s in statuses),
            personality="replay",
        ),
    )
    reads = recorded_reads(link)
    for service in server.services:
        for characteristic in service.characteristics:
            value = reads.get(characteristic.uuid[4:8])
            if value is not None and characteristic.read is not None:
                characteristic.read = lambda value=value: value
    results = _results(link)
    answered: dict[bytes, int] = {}

    def arm(write: bytes) -> None:
        """Make the next write of these bytes get the result the trace shows for it."""
        shown = results.get(write, [])
        index = answered.get(write, 0)
        if index < len(shown) and shown[index] != codec.ResultCode.SUCCESS:
            server.force_result(write[0], codec.ResultCode(shown[index]))

    def written(write: ControlPointWrite) -> None:
        if write.att_error is not None:
            return
        answered[write.data] = answered.get(write.data, 0) + 1
        arm(write.data)

    for write in results:
        arm(write)
    server.watch_writes(written)
    return SimPeripheral(server, address=address or DEFAULT_ADDRESS)


# -- command line ------------------------------------------------------------------------------


def add_parser(commands: Any) -> None:
    replay = commands.add_parser(
        "replay",
        help="serve a retrotread wire trace back as the machine it was taken from",
        description=(__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument("trace", type=Path, metavar="FILE", help="a trace (retrotread --trace)")
    replay.add_argument(
        "--session",
        type=int,
        metavar="N",
        help="which link in the trace (default: the one with the most frames)",
    )
    replay.add_argument("--link", type=Path, metavar="PATH", help="keep a symlink to the pty here")


def run(args: argparse.Namespace) -> int:
    try:
        link = pick_link(read_trace(args.trace), args.session)
    except TraceError as err:
        print(f"retrotread-sim: {err}", file=sys.stderr)
        return 2
    if link.protocol == "ftms":
        print(
            "retrotread-sim: an FTMS trace is served on an in-process radio "
            "(retrotread_sim.replay.ftms_peripheral); the machine it holds:\n"
            + json.dumps(link.declared, indent=2),
            file=sys.stderr,
        )
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(serve_serial(link, args.link))
    return 0
