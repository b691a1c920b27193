"""The speech queue's ordering, dropping and interrupting, on the virtual clock."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from retrotread import cues
from retrotread.clock import LoopClock, run
from retrotread.drivers.registry import open_treadmill
from retrotread.errors import SpeechError
from retrotread.program import find_program
from retrotread.session import Session
from retrotread.speech import (
    Bell,
    Outcome,
    Priority,
    Speaker,
    SpeechQueue,
    SpeechSettings,
    SpeechUnavailable,
)
from tests.helpers import retro_program
from tests.speech_support import ClockVoice, program_cues

CHANGE, ROUTINE, SAFETY = Priority.CHANGE, Priority.ROUTINE, Priority.SAFETY


def on_virtual_clock(
    body: Callable[[SpeechQueue, ClockVoice], Coroutine[Any, Any, None]],
) -> SpeechQueue:
    async def main() -> SpeechQueue:
        voice = ClockVoice()
        queue = SpeechQueue(voice, LoopClock())
        queue.start()
        await body(queue, voice)
        await queue.drain(120)
        await queue.close()
        return queue

    return run(main(), virtual=True)


async def at(t: float) -> None:
    await LoopClock().sleep_until(t)


def outcomes(queue: SpeechQueue) -> dict[str, Outcome]:
    return {s.utterance.text: s.outcome for s in queue.history}


def test_highest_priority_first_oldest_first_within_a_priority() -> None:
    async def body(queue: SpeechQueue, voice: ClockVoice) -> None:
        queue.say("one two three four five six", CHANGE)  # 1.8 s of speech
        await at(0.1)
        queue.say("routine a", ROUTINE, within_s=10)
        queue.say("change b", CHANGE, within_s=10)
        queue.say("routine c", ROUTINE, within_s=10)
        queue.say("change d", CHANGE, within_s=10)

    queue = on_virtual_clock(body)
    said = [s.utterance.text for s in queue.history]
    assert said == ["one two three four five six", "change b", "change d", "routine a", "routine c"]
    assert all(s.outcome is Outcome.SPOKEN for s in queue.history)


def test_a_stale_call_is_dropped_never_spoken_late() -> None:
    async def body(queue: SpeechQueue, voice: ClockVoice) -> None:
        queue.say("a long block start cue of ten words said here", CHANGE)  # 3.0 s
        for t, count in ((0.5, 3), (1.5, 2), (2.5, 1)):
            await at(t)
            queue.say(cues.countdown(count), ROUTINE, within_s=0.6)

    queue = on_virtual_clock(body)
    assert outcomes(queue) == {
        "a long block start cue of ten words said here": Outcome.SPOKEN,
        "Three.": Outcome.STALE,  # due by 1.1, the voice was busy until 3.0
        "Two.": Outcome.STALE,  # due by 2.1
        "One.": Outcome.SPOKEN,  # due by 3.1: said at 3.0
    }
    for said in queue.history:
        if said.outcome is Outcome.SPOKEN and said.utterance.expires_at is not None:
            assert said.started_at is not None and said.started_at <= said.utterance.expires_at


def test_a_safety_message_interrupts_and_is_said_at_once() -> None:
    async def body(queue: SpeechQueue, voice: ClockVoice) -> None:
        queue.say("retro walk thirty seconds hold both handrails look over your shoulder", CHANGE)
        queue.say("Next, turn around in five seconds.", ROUTINE, within_s=30)
        await at(1.0)
        queue.say(cues.stopped(cues.StopReason.OPERATOR) or "", SAFETY)
        queue.say("Three.", ROUTINE, within_s=30)  # after the STOP, routine calls still queue

    queue = on_virtual_clock(body)
    history = {s.utterance.text: s for s in queue.history}
    long_cue = history["retro walk thirty seconds hold both handrails look over your shoulder"]
    assert long_cue.outcome is Outcome.INTERRUPTED and long_cue.at == 1.0
    assert history["Next, turn around in five seconds."].outcome is Outcome.SUPERSEDED
    stop = history["Stop. The belt is stopping. Hold both handrails."]
    assert stop.outcome is Outcome.SPOKEN and stop.started_at == 1.0  # not a moment later
    assert history["Three."].outcome is Outcome.SPOKEN
    assert [text for _, text in queue.engine.started][-2:] == [stop.utterance.text, "Three."]  # type: ignore[attr-defined]


def test_a_safety_message_does_not_cut_another_one() -> None:
    async def body(queue: SpeechQueue, voice: ClockVoice) -> None:
        queue.say(cues.fault("link-lost"), SAFETY)
        await at(0.5)
        queue.say(cues.fault("safety-key"), SAFETY)

    queue = on_virtual_clock(body)
    assert [(s.utterance.text, s.outcome) for s in queue.history] == [
        (cues.fault("link-lost"), Outcome.SPOKEN),
        (cues.fault("safety-key"), Outcome.SPOKEN),
    ]
    assert all(s.utterance.expires_at is None for s in queue.history)  # never stale


def test_mute_cuts_the_voice_drops_what_waits_and_unmute_speaks_again() -> None:
    async def body(queue: SpeechQueue, voice: ClockVoice) -> None:
        queue.say("a cue that takes a while to say", CHANGE)
        queue.say("waiting", CHANGE)
        await at(0.5)
        queue.muted = True
        queue.say("while muted", SAFETY)
        await at(2.0)
        queue.muted = False
        queue.say("after unmute", CHANGE)

    queue = on_virtual_clock(body)
    assert outcomes(queue) == {
        "a cue that takes a while to say": Outcome.INTERRUPTED,
        "waiting": Outcome.MUTED,
        "while muted": Outcome.MUTED,
        "after unmute": Outcome.SPOKEN,
    }


def test_no_audio_output_says_so_once_and_rings_the_bell_instead() -> None:
    notices: list[str] = []
    rings: list[str] = []

    class NoSpeakers:
        name = "espeak-ng"

        async def speak(self, text: str) -> None:
            raise SpeechUnavailable("espeak-ng could not play audio (Unknown PCM default)")

    async def main() -> None:
        queue = SpeechQueue(
            NoSpeakers(),
            LoopClock(),
            notice=notices.append,
            fallback=Bell(lambda: rings.append("\a")),
        )
        queue.start()
        for text in ("Three.", "Two.", "One."):
            queue.say(text, ROUTINE, within_s=5)
        await queue.drain(5)
        await queue.close()
        assert [s.outcome for s in queue.history] == [Outcome.SPOKEN] * 3

    run(main(), virtual=True)
    assert notices == [
        "espeak-ng could not play audio (Unknown PCM default): cues will ring the terminal bell "
        "instead"
    ]
    assert rings == ["\a"] * 3


def test_no_engine_installed_is_one_clear_notice_and_the_bell(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng anywhere
    notices: list[str] = []
    out = io.StringIO()

    async def main() -> None:
        speaker = await Speaker.open(SpeechSettings(), LoopClock(), notice=notices.append)
        speaker.queue.fallback = Bell(out=out)
        assert isinstance(speaker.engine, Bell)
        speaker.engine._out = out  # type: ignore[attr-defined]
        speaker.say("Stop.", SAFETY)
        await speaker.close()

    run(main(), virtual=True)
    assert len(notices) == 1
    assert notices[0].startswith("espeak-ng is not installed, so cues ring the terminal bell")
    assert "apt-get install espeak-ng" in notices[0]
    assert out.getvalue() == "\a"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rate_wpm", 20, "speech rate 20 is outside 80–450"),
        ("volume", 300, "speech volume 300 is outside 0–200"),
        ("language", "en us", "is not a voice name"),
        ("voice", "-x", "is not a voice name"),
    ],
)
def test_bad_settings_are_refused_clearly(field: str, value: object, message: str) -> None:
    with pytest.raises(SpeechError, match=message):
        SpeechSettings(**{field: value})  # type: ignore[arg-type]


def test_a_whole_program_is_announced_on_time() -> None:
    program = find_program("first-week")
    spoken, queue = program_cues(program)
    warm_up, first_turn, first_retro = program.steps[:3]
    assert spoken[0] == cues.block_start(warm_up)
    assert "Halfway." in spoken  # the three-minute warm-up
    assert spoken.count(cues.TEN_SECONDS_LEFT) >= 2  # warm-up, recovery, cool-down
    assert cues.coming_up(first_turn) in spoken
    assert cues.block_start(first_turn) in spoken
    assert cues.block_start(first_retro).startswith("Retro walk, twenty seconds, hold both")
    assert spoken[-1] == cues.FINISHED
    assert {"Three.", "Two.", "One."} <= set(spoken)
    # Nothing was said after its moment: every spoken routine call started before its deadline.
    for said in queue.history:
        expires = said.utterance.expires_at
        if said.outcome is Outcome.SPOKEN and expires is not None:
            assert said.started_at is not None and said.started_at <= expires
    # Every block start was said (none of them went stale).
    for step in program.steps:
        assert cues.block_start(step) in spoken


def test_a_fault_on_the_belt_is_announced_first_and_stop_is_never_dropped() -> None:
    async def main() -> SpeechQueue:
        clock = LoopClock()
        voice = ClockVoice()
        queue = SpeechQueue(voice, clock)
        speaker = Speaker(voice, clock, notice=lambda message: None)
        speaker.queue = queue
        speaker.announcer.queue = queue
        queue.start()
        driver = open_treadmill("sim://?faults=safety-key@25", clock=clock)
        session = Session(retro_program([20, 20]), driver, clock, unattended=True)
        speaker.attach(session)
        await session.run()
        await queue.drain(30)
        await queue.close()
        return queue

    queue = run(main(), virtual=True)
    said = [(s.utterance.text, s.utterance.priority, s.outcome) for s in queue.history]
    key = cues.fault("safety-key")
    assert (key, SAFETY, Outcome.SPOKEN) in said
    after_key = said[[text for text, _, _ in said].index(key) :]
    assert all(p is SAFETY for _, p, o in after_key if o is Outcome.SPOKEN)
    assert all(o is not Outcome.STALE for _, p, o in said if p is SAFETY)


def test_pause_and_resume_are_announced_with_the_handrail_cue() -> None:
    async def body(queue: SpeechQueue, voice: ClockVoice) -> None:
        from retrotread.scheduler import Scheduler
        from retrotread.speech import Announcer

        program = retro_program([60])
        scheduler = Scheduler(program, LoopClock())
        scheduler.subscribe(Announcer(queue))
        task = asyncio.create_task(scheduler.run())
        await at(20)
        scheduler.pause()
        await at(25)
        scheduler.resume()
        await at(36)
        scheduler.stop()
        await task

    queue = on_virtual_clock(body)
    said = [s.utterance.text for s in queue.history if s.outcome is Outcome.SPOKEN]
    assert cues.PAUSED in said
    resumed = [text for text in said if text.startswith("Resuming.")]
    assert len(resumed) == 1 and resumed[0].endswith("handrails.")
    assert said[-1] == "Stop. The belt is stopping. Hold both handrails."
