"""Speech engines: espeak-ng through its command line, and the terminal bell where none is.

An engine's :meth:`~SpeechEngine.speak` returns when the words have been said; cancelling it
cuts them off at once. :class:`Espeak` runs one ``espeak-ng`` process per utterance in its own
process group, so cancelling kills the voice mid-word (and the audio player with it, when one
is configured) — that is how a STOP interrupts a cue in progress.

espeak-ng is used through its command line rather than a Python binding: the Debian package
is all a machine needs, it runs out of process (a stuck audio device never blocks the event
loop), and killing a process is a reliable way to silence it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

from retrotread.errors import SpeechError

if TYPE_CHECKING:
    import asyncio

ESPEAK = "espeak-ng"
INSTALL_HINT = "install it with `apt-get install espeak-ng` (or run `make test` once)"

RATE_RANGE = (80, 450)  # words per minute, espeak-ng's usable range
VOLUME_RANGE = (0, 200)  # percent of the engine's normal loudness


class SpeechUnavailable(SpeechError):
    """The engine ran but could not reach the speakers (no audio device, say)."""


@dataclass(frozen=True)
class SpeechSettings:
    """How cues are spoken. ``voice`` is an espeak-ng variant (``f3``, ``m1``, ``whisper``)
    added to ``language`` (``en``, ``en-gb``, ``en-us``, ``de``...)."""

    language: str = "en"
    voice: str = ""
    rate_wpm: int = 175  # espeak-ng's own default
    volume: int = 100
    #: A command that plays a WAV stream from stdin (``aplay -q``, ``paplay``, ``play -q -``);
    #: empty: espeak-ng plays on the default audio device itself.
    player: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        low, high = RATE_RANGE
        if not low <= self.rate_wpm <= high:
            raise SpeechError(f"speech rate {self.rate_wpm} is outside {low}–{high} words/min")
        low, high = VOLUME_RANGE
        if not low <= self.volume <= high:
            raise SpeechError(f"speech volume {self.volume} is outside {low}–{high} %")
        for name, value in (("language", self.language), ("voice", self.voice)):
            if any(c.isspace() or c in "+/" for c in value) or value.startswith("-"):
                raise SpeechError(f"speech {name} {value!r} is not a voice name (e.g. en-gb, f3)")
        if not self.language:
            raise SpeechError("speech language is empty (e.g. en, en-gb, de)")

    @property
    def espeak_voice(self) -> str:
        return f"{self.language}+{self.voice}" if self.voice else self.language


class SpeechEngine(Protocol):
    """Says one utterance; cancelling :meth:`speak` silences it at once."""

    @property
    def name(self) -> str: ...

    async def speak(self, text: str) -> None: ...


def find_espeak() -> str | None:
    return shutil.which(ESPEAK)


class Espeak:
    """espeak-ng's command line: plays on the audio device, or into ``settings.player``."""

    def __init__(self, settings: SpeechSettings, executable: str | None = None) -> None:
        found = executable or find_espeak()
        if found is None:
            raise SpeechError(f"{ESPEAK} is not installed: {INSTALL_HINT}")
        self.executable = found
        self.settings = settings
        self.spoken = 0
        self._checked_voice = False

    @property
    def name(self) -> str:
        return f"{ESPEAK} ({self.settings.espeak_voice}, {self.settings.rate_wpm} wpm)"

    def arguments(self, text: str, *extra: str) -> list[str]:
        settings = self.settings
        return [
            self.executable,
            "-v",
            settings.espeak_voice,
            "-s",
            str(settings.rate_wpm),
            "-a",
            str(settings.volume),
            "-z",  # no trailing sentence pause: the next cue may follow at once
            *extra,
            "--",
            text,
        ]

    async def check_voice(self) -> None:
        """Fail clearly on a language or voice espeak-ng does not have (it only warns)."""
        import asyncio  # with the loop that runs this; not for `--help`

        if self._checked_voice:
            return
        process = await asyncio.create_subprocess_exec(
            *self.arguments("ok", "-q"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
        problem = err.decode(errors="replace").strip()
        if process.returncode or "Failed to read voice" in problem:
            raise SpeechError(
                f"{ESPEAK} has no voice {self.settings.espeak_voice!r} "
                f"(`{ESPEAK} --voices` lists them): {problem.splitlines()[-1] if problem else ''}"
            )
        self._checked_voice = True

    async def speak(self, text: str) -> None:
        await self.check_voice()
        if self.settings.player:
            await self._speak_into_player(text)
        else:
            await self._speak_on_device(text)
        self.spoken += 1

    async def render(self, text: str, path: Path) -> Path:
        """Write the utterance to a WAV file instead of speaking it (same voice settings)."""
        import asyncio  # with the loop that runs this; not for `--help`

        await self.check_voice()
        process = await asyncio.create_subprocess_exec(
            *self.arguments(text, "-w", str(path)),
            stdin=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            process_group=0,
        )
        _, err = await _until_done(process)
        if process.returncode or not os.path.exists(path):  # noqa: ASYNC240 - one stat
            raise SpeechError(f"{ESPEAK} could not write {path}: {err.strip()}")
        return path

    async def _speak_on_device(self, text: str) -> None:
        import asyncio  # with the loop that runs this; not for `--help`

        process = await asyncio.create_subprocess_exec(
            *self.arguments(text),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            process_group=0,  # its own process group: one kill silences it
        )
        _, err = await _until_done(process)
        # espeak-ng exits 0 even when it cannot open the audio device; it says so on stderr.
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        if process.returncode or errors:
            detail = _audio_problem(err) or f"exit status {process.returncode}"
            raise SpeechUnavailable(f"{ESPEAK} could not play audio ({detail})")

    async def _speak_into_player(self, text: str) -> None:
        import asyncio  # with the loop that runs this; not for `--help`

        reader, writer = os.pipe()
        try:
            synth = await asyncio.create_subprocess_exec(
                *self.arguments(text, "--stdout"),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=writer,
                stderr=asyncio.subprocess.DEVNULL,
                process_group=0,  # the player joins this group
            )
            try:
                player = await asyncio.create_subprocess_exec(
                    *self.settings.player,
                    stdin=reader,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                    process_group=synth.pid,  # same group: one kill silences both
                )
            except OSError as error:
                _kill_group(synth.pid)
                await asyncio.shield(_reap(synth))
                raise SpeechUnavailable(
                    f"audio player {self.settings.player[0]!r} could not start: {error}"
                ) from error
            except BaseException:
                _kill_group(synth.pid)
                await asyncio.shield(_reap(synth))
                raise
        finally:
            os.close(reader)
            os.close(writer)
        try:
            _, complaint = await player.communicate()
            await synth.wait()
        except BaseException:
            _kill_group(synth.pid)
            with contextlib.suppress(ProcessLookupError):
                player.kill()
            await asyncio.shield(_reap(synth, player))
            raise
        if player.returncode:
            detail = complaint.decode(errors="replace").strip().splitlines()
            raise SpeechUnavailable(
                f"audio player {self.settings.player[0]!r} failed: "
                f"{detail[-1] if detail else f'exit status {player.returncode}'}"
            )


async def _until_done(process: asyncio.subprocess.Process) -> tuple[bytes, str]:
    """Wait for a process in its own group; on cancellation kill the whole group first."""
    import asyncio  # with the loop that runs this; not for `--help`

    try:
        out, err = await process.communicate()
    except BaseException:
        _kill_group(process.pid)
        await asyncio.shield(_reap(process))
        raise
    return out or b"", (err or b"").decode(errors="replace")


async def _reap(*processes: asyncio.subprocess.Process) -> None:

    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            await process.wait()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _audio_problem(stderr: str) -> str:
    """The most telling line of an audio failure: ALSA's, or espeak-ng's own."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Unknown PCM" in line or "Connection refused" in line or "cannot find card" in line:
            return line.split(")", 1)[-1].strip() or line
    return lines[-1] if lines else ""


class Bell:
    """No speech engine: each cue rings the terminal bell instead (the operator reads it)."""

    name = "terminal bell"

    def __init__(self, ring: Callable[[], None] | None = None, out: TextIO | None = None) -> None:
        self._ring = ring
        self._out = out
        self.rung = 0

    async def speak(self, text: str) -> None:
        self.rung += 1
        if self._ring is not None:
            self._ring()
            return
        out = self._out or sys.stderr
        out.write("\a")
        out.flush()


def parse_player(command: str | Sequence[str]) -> tuple[str, ...]:
    """``"aplay -q"`` -> ('aplay', '-q'); the player must be installed."""
    import shlex

    parts = tuple(shlex.split(command)) if isinstance(command, str) else tuple(command)
    if parts and shutil.which(parts[0]) is None:
        raise SpeechError(f"audio player {parts[0]!r} is not installed")
    return parts
