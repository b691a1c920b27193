"""The real engine: espeak-ng renders every cue of a program as speech, and a STOP cuts a cue
that a real espeak-ng process is speaking."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retrotread import cues
from retrotread.clock import LoopClock, run
from retrotread.errors import SpeechError
from retrotread.events import ProgramStopped, StopReason
from retrotread.program import find_program
from retrotread.speech import Espeak, Outcome, Speaker, SpeechSettings, SpeechUnavailable
from retrotread.speech.engine import find_espeak
from tests.speech_support import (
    Loudness,
    measure_wav,
    program_cues,
    sink_player,
    sink_recordings,
)

if find_espeak() is None:  # the Makefile's environment step installs it; say so, do not skip
    pytest.fail("espeak-ng is not installed: run `make test` once (it installs it)")

RETROTREAD = [sys.executable, "-m", "retrotread"]


def every_fixed_phrase() -> list[str]:
    """Pause, resume, STOP, finish, and every fault that stops or holds the belt."""
    phrases = [cues.PAUSED, cues.resumed(None), cues.FINISHED, cues.BELT_NOT_CONFIRMED]
    phrases += [said for r in StopReason if (said := cues.stopped(r))]
    phrases += list(cues.FAULTS.values())
    return list(dict.fromkeys(phrases))


def sensible_seconds(text: str) -> tuple[float, float]:
    """How long ``text`` may take at 175 words a minute: about 0.34 s a word, with pauses."""
    words = len(text.split())
    return max(0.3, 0.15 * words), min(12.0, 0.7 * words + 0.5)


def test_every_cue_of_a_built_in_program_renders_as_speech(tmp_path: Path) -> None:
    program = find_program("first-week")
    spoken, _ = program_cues(program)
    texts = list(dict.fromkeys(spoken + every_fixed_phrase()))
    assert len(texts) >= 30
    engine = Espeak(SpeechSettings())

    async def render_all() -> list[Path]:
        return [await engine.render(t, tmp_path / f"{i:02d}.wav") for i, t in enumerate(texts)]

    paths = run(render_all())
    report = []
    for text, path in zip(texts, paths, strict=True):
        loudness = measure_wav(path)
        low, high = sensible_seconds(text)
        report.append((text, loudness))
        assert loudness.is_speech, f"{text!r} rendered as silence: {loudness}"
        assert low <= loudness.seconds <= high, f"{text!r}: {loudness.seconds:.2f} s"
    # The longest cue (a retro block's start) still fits in the first seconds of a block.
    assert max(loud.seconds for _, loud in report) < 9.0
    assert {"Three.", "Two.", "One."} <= set(texts)


def test_voice_rate_and_volume_change_the_audio(tmp_path: Path) -> None:
    text = cues.block_start(find_program("first-week").steps[2])

    async def render(settings: SpeechSettings, name: str) -> Loudness:
        return measure_wav(await Espeak(settings).render(text, tmp_path / name))

    normal = run(render(SpeechSettings(), "normal.wav"))
    fast = run(render(SpeechSettings(rate_wpm=300), "fast.wav"))
    quiet = run(render(SpeechSettings(volume=30), "quiet.wav"))
    female = run(render(SpeechSettings(voice="f3"), "f3.wav"))
    american = run(render(SpeechSettings(language="en-us"), "us.wav"))
    assert fast.seconds < normal.seconds * 0.7
    assert quiet.rms < normal.rms * 0.5 and quiet.is_speech
    assert female.is_speech and american.is_speech
    assert len({normal, female, american}) == 3  # each setting reaches espeak-ng


def test_a_language_espeak_does_not_have_is_a_clear_error() -> None:
    with pytest.raises(SpeechError, match="has no voice 'xx-nowhere'"):
        run(Espeak(SpeechSettings(language="xx-nowhere")).check_voice())


def test_no_audio_device_is_detected_not_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An audio setup with no card at all: espeak-ng exits 0 but says "error:" on stderr.
    asound = tmp_path / "asound.conf"
    asound.write_text("pcm.!default { type hw card 97 }\nctl.!default { type hw card 97 }\n")
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(asound))
    monkeypatch.setenv("PULSE_SERVER", f"unix:{tmp_path}/no-pulse-here")
    with pytest.raises(SpeechUnavailable, match="could not play audio"):
        run(Espeak(SpeechSettings()).speak("Three."))


@pytest.mark.realtime
def test_stop_interrupts_a_cue_that_espeak_is_speaking_and_is_said_next(tmp_path: Path) -> None:
    card = tmp_path / "card"
    settings = SpeechSettings(player=sink_player(card))
    long_cue = (
        cues.block_start(find_program("first-week").steps[0])
        + " "
        + cues.block_start(find_program("first-week").steps[2])
    )
    timeline: dict[str, float] = {}

    async def main() -> Speaker:
        speaker = await Speaker.open(settings, LoopClock(), notice=pytest.fail)
        speaker.say(long_cue)
        # Wait until the sound card has played a second of it: it is being spoken right now.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            raws = list(card.glob("*.raw"))
            if raws and raws[0].stat().st_size >= 22050 * 2:
                break
            await asyncio.sleep(0.02)
        assert speaker.queue.speaking is not None and speaker.queue.speaking.text == long_cue
        timeline["stop"] = time.time()
        speaker.announcer(ProgramStopped(0.0, StopReason.OPERATOR, "", 1))
        await speaker.close(drain_s=15)
        return speaker

    speaker = run(main())
    outcomes = [(s.utterance.text, s.outcome) for s in speaker.queue.history]
    stop = cues.stopped(StopReason.OPERATOR)
    assert outcomes == [(long_cue, Outcome.INTERRUPTED), (stop, Outcome.SPOKEN)]

    full_length = measure_wav(run(Espeak(SpeechSettings()).render(long_cue, tmp_path / "a.wav")))
    cut, said_stop = sink_recordings(card)
    assert not cut.finished  # its espeak-ng (and player) were killed mid-cue
    assert 0.8 <= cut.loudness.seconds < full_length.seconds - 3, (cut, full_length)
    assert cut.loudness.is_speech
    assert said_stop.finished and said_stop.loudness.is_speech
    low, high = sensible_seconds(stop or "")
    assert low <= said_stop.loudness.seconds <= high
    assert said_stop.started - timeline["stop"] < 1.0  # STOP starts at once, not after the cue
    # No espeak-ng is left behind.
    left = subprocess.run(["pgrep", "-f", "audio_sink.py " + str(card)], capture_output=True)
    assert left.returncode == 1, left.stdout


SHORT = """\
name = "spoken"
description = "one short block"
[[blocks]]
kind = "warm-up"
duration = "5s"
speed = 2.5
"""


@pytest.mark.realtime
def test_a_headless_run_speaks_its_cues_and_mute_silences_them(tmp_path: Path) -> None:
    program = tmp_path / "spoken.toml"
    program.write_text(SHORT)
    card, muted_card = tmp_path / "card", tmp_path / "muted"
    base = [*RETROTREAD, "run", str(program), "--unattended", "--quiet"]
    runs = [
        subprocess.Popen(
            [*base, *extra, "--audio-player", " ".join(sink_player(where))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for where, extra in ((card, []), (muted_card, ["--mute"]))
    ]
    for child in runs:
        _, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        assert "Traceback" not in err
    played = sink_recordings(card)
    # The warm-up's start, the 3-2-1 before the end, and "program complete".
    assert len(played) >= 4, played
    assert all(p.loudness.is_speech and p.finished for p in played)
    assert not muted_card.exists()


def test_bad_speech_settings_are_a_usage_error_before_anything_runs() -> None:
    result = subprocess.run(
        [*RETROTREAD, "run", "first-week", "--unattended", "--speech-rate", "900"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "speech rate 900 is outside 80–450 words/min" in result.stderr
    result = subprocess.run(
        [*RETROTREAD, "run", "first-week", "--unattended", "--audio-player", "no-such-player"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "audio player 'no-such-player' is not installed" in result.stderr


@pytest.mark.parametrize("command", ["run", "tui"])
def test_the_speech_options_show_in_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    from retrotread.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in ("--language", "--voice", "--speech-rate", "--volume", "--audio-player"):
        assert option in out
    assert "0–200 % of normal loudness" in out
