"""A simulated sound card for the speech tests: an audio player that plays into a file.

Used as ``--audio-player "python tests/audio_sink.py DIR"``. It reads the WAV stream
espeak-ng writes on stdin and consumes it at the rate a real sound card would (a second of
audio takes a second), so an utterance is "being spoken" for as long as it lasts and can be
cut off mid-word. Each utterance lands in ``DIR/<n>.raw`` (the PCM it played so far, written
as it plays) with ``DIR/<n>.json`` (format and start time); ``DIR/<n>.done`` appears only when
the whole utterance was played, so a killed one has none.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from pathlib import Path
from typing import BinaryIO

CHUNK_S = 0.02


def read_exactly(stream: BinaryIO, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            raise EOFError("the WAV stream ended inside its header")
        data += more
    return data


def read_header(stream: BinaryIO) -> tuple[int, int, int]:
    """(rate, channels, sample width in bytes); leaves the stream at the start of the data."""
    riff = read_exactly(stream, 12)
    if riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
        raise ValueError("not a WAV stream")
    rate = channels = width = 0
    while True:
        chunk_id, size = struct.unpack("<4sI", read_exactly(stream, 8))
        if chunk_id == b"data":
            return rate, channels, width
        body = read_exactly(stream, size)
        if chunk_id == b"fmt ":
            _, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            width = bits // 8


def main() -> int:
    out_dir = Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns()}-{os.getpid()}"
    stdin = sys.stdin.buffer
    rate, channels, width = read_header(stdin)
    started = time.monotonic()
    meta = {"rate": rate, "channels": channels, "width": width, "started": time.time()}
    (out_dir / f"{name}.json").write_text(json.dumps(meta))
    byte_rate = rate * channels * width
    chunk = max(width * channels, int(byte_rate * CHUNK_S) // (width * channels) * width * channels)
    played = 0
    with open(out_dir / f"{name}.raw", "wb") as raw:
        while data := stdin.read(chunk):
            raw.write(data)
            raw.flush()
            played += len(data)
            # Hold the pipe like a sound card does: the next chunk only when this one is out.
            delay = started + played / byte_rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    (out_dir / f"{name}.done").touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
