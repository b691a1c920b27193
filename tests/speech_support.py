"""Helpers for the speech tests: measuring audio, a clock-timed voice, a program's cues."""

from __future__ import annotations

import array
import asyncio
import json
import math
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

from retrotread.clock import LoopClock, run
from retrotread.program.model import Program
from retrotread.scheduler import Scheduler
from retrotread.speech import Announcer, Outcome, SpeechQueue

SINK = Path(__file__).with_name("audio_sink.py")


def sink_player(directory: Path) -> tuple[str, ...]:
    return (sys.executable, str(SINK), str(directory))


@dataclass(frozen=True)
class Loudness:
    seconds: float
    rms: float  # of full scale (0..1)
    peak: float  # of full scale
    voiced: float  # share of 20 ms windows louder than -40 dBFS

    @property
    def is_speech(self) -> bool:
        return self.rms > 0.02 and self.peak > 0.15 and self.voiced > 0.3


def measure(samples: array.array[int], rate: int) -> Loudness:
    """Loudness of 16-bit mono PCM, with plain arithmetic (no audioop)."""
    full = 32768.0
    count = len(samples)
    if count == 0:
        return Loudness(0.0, 0.0, 0.0, 0.0)
    rms = math.sqrt(sum(s * s for s in samples) / count) / full
    peak = max(abs(s) for s in samples) / full
    window = max(1, rate // 50)
    windows = [samples[i : i + window] for i in range(0, count, window)]
    loud = sum(1 for w in windows if math.sqrt(sum(s * s for s in w) / len(w)) / full > 0.01)
    return Loudness(count / rate, rms, peak, loud / len(windows))


def measure_wav(path: Path) -> Loudness:
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2 and wav.getnchannels() == 1, "espeak-ng writes 16-bit mono"
        rate = wav.getframerate()
        samples = array.array("h", wav.readframes(wav.getnframes()))
    return measure(samples, rate)


@dataclass(frozen=True)
class Played:
    """One utterance as the simulated sound card played it."""

    started: float
    loudness: Loudness
    finished: bool  # played to its end (not killed)


def sink_recordings(directory: Path) -> list[Played]:
    played = []
    for meta_path in sorted(directory.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        assert meta["width"] == 2 and meta["channels"] == 1
        raw = meta_path.with_suffix(".raw").read_bytes()
        samples = array.array("h", raw[: len(raw) // 2 * 2])
        done = meta_path.with_suffix(".done").exists()
        played.append(Played(meta["started"], measure(samples, meta["rate"]), done))
    return sorted(played, key=lambda p: p.started)


class ClockVoice:
    """A voice that speaks on the session's clock: 0.3 s a word. Records what it said when.

    For the queue's ordering and dropping on the virtual clock; the real engine is tested
    against espeak-ng itself.
    """

    name = "clock voice"
    SECONDS_PER_WORD = 0.3

    def __init__(self) -> None:
        self.clock = LoopClock()
        self.started: list[tuple[float, str]] = []
        self.finished: list[tuple[float, str]] = []
        self.cut: list[tuple[float, str]] = []

    async def speak(self, text: str) -> None:
        now = self.clock.now()
        self.started.append((now, text))
        try:
            await asyncio.sleep(self.SECONDS_PER_WORD * len(text.split()))
        except asyncio.CancelledError:
            self.cut.append((self.clock.now(), text))
            raise
        self.finished.append((self.clock.now(), text))


def program_cues(program: Program) -> tuple[list[str], SpeechQueue]:
    """Every cue the scheduler raises for ``program``, said in order on the virtual clock."""

    async def main() -> tuple[list[str], SpeechQueue]:
        voice = ClockVoice()
        queue = SpeechQueue(voice, LoopClock())
        queue.start()
        scheduler = Scheduler(program, LoopClock())
        scheduler.subscribe(Announcer(queue))
        await scheduler.run()
        await queue.drain(60)
        await queue.close()
        spoken = [s.utterance.text for s in queue.history if s.outcome is Outcome.SPOKEN]
        return spoken, queue

    return run(main(), virtual=True)
