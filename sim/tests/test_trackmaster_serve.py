"""``retrotread-sim serve --protocol trackmaster`` as a separate process, over TCP."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from retrotread_sim.serve import SimProcess


def _ask(connection: socket.socket, command: bytes, size: int = 1) -> tuple[bytes, float]:
    began = time.perf_counter()
    connection.sendall(command)
    answer = b""
    while len(answer) < size:
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
            answer, took = _ask(connection, b"\xa30026")
            assert answer == b"\xb3"
            assert took >= (5 + 1) * 10 / 4800  # 4800 baud both ways
            assert _ask(connection, b"\xa40020")[0] == b"\xb4"
            assert _ask(connection, b"\xa1")[0] == b"\xb1"
            assert _ask(connection, b"\xc1")[0] == b"\xbf"  # the plain personality
            assert _ask(connection, b"\xa2")[0] == b"\xb2"
        assert sim.stop() == 0
        frames = sim.frames()
    assert [f["text"] for f in frames] == ["A3 0026", "A4 0020", "A1", "C1", "A2"]
    assert frames[0]["rx"] == "A3 30 30 32 36"
    events = [r["event"] for r in sim.records()]
    assert events[:2] == ["serving", "connected"] and "disconnected" in events
    assert events[-1] == "closed"


def test_the_query_personality_answers_status_requests(tmp_path: Path) -> None:
    args = ("--tcp", "127.0.0.1:0", "--personality", "trackmaster-query")
    with SimProcess("trackmaster", *args, record=tmp_path / "wire.jsonl") as sim:
        host, _, port = sim.address.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=3) as connection:
            assert _ask(connection, b"\xc1", 5)[0] == b"\xd10000"
            assert _ask(connection, b"\xc2", 5)[0] == b"\xd20000"
        assert sim.frames()[-1]["state"]["personality"] == "trackmaster-query"
