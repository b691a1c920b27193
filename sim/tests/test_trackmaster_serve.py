"""``retrotread-sim serve --protocol trackmaster`` as a separate process, over TCP."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from retrotread_sim.serve import SimProcess


def _ask(connection: socket.socket, line: bytes) -> tuple[bytes, float]:
    began = time.perf_counter()
    connection.sendall(line)
    answer = b""
    while not answer.endswith(b"\r"):
        chunk = connection.recv(64)
        assert chunk, "the simulator hung up"
        answer += chunk
    return answer, time.perf_counter() - began


def test_serves_on_tcp_at_line_rate(tmp_path: Path) -> None:
    record = tmp_path / "wire.jsonl"
    with SimProcess("trackmaster", "--tcp", "127.0.0.1:0", "--line-rate", record=record) as sim:
        host, _, port = sim.address.rpartition(":")
        assert host == "127.0.0.1" and int(port) > 0
        with socket.create_connection((host, int(port)), timeout=3) as connection:
            answer, took = _ask(connection, b"A30026\r")
            assert answer == b"B3\r"
            assert took >= (7 + 3) * 10 / 4800  # 4800 baud both ways
            assert _ask(connection, b"A40020\r")[0] == b"B4\r"
            assert _ask(connection, b"A1\r")[0] == b"B1\r"
            assert _ask(connection, b"A5\r")[0] == b"BF\r"  # no --status-query
            assert _ask(connection, b"A2\r")[0] == b"B2\r"
        assert sim.stop() == 0
        frames = sim.frames()
    assert [f["text"] for f in frames] == ["A30026", "A40020", "A1", "A5", "A2"]
    assert frames[0]["rx"] == "41 33 30 30 32 36 0D"
    events = [r["event"] for r in sim.records()]
    assert events[:2] == ["serving", "connected"] and "disconnected" in events
    assert events[-1] == "closed"
