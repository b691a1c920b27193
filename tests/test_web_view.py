"""What the served pages show and what the operator's commands do, on the virtual clock: the
session's events through :class:`SessionView`, the commands through :class:`Controls` (the
same Session methods, so the same governor, as the console's keys).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import retrotread
from retrotread import cues
from retrotread.clock import LoopClock, run
from retrotread.drivers.registry import open_treadmill
from retrotread.program import parse_program
from retrotread.session import Session, SessionSummary
from retrotread.walker import HINTS, WalkerPhase
from retrotread.web.control import Command, Controls, GoGate
from retrotread.web.view import Phase, SessionView

PROGRAM = """\
name = "views"
description = "forward, turn, a retro block at the top of its band"
[defaults]
retro_band = [2.6, 3.2]
[[blocks]]
kind = "warm-up"
duration = "20s"
speed = 2.5
[[blocks]]
kind = "turn-around"
[[blocks]]
kind = "retro"
duration = "60s"
speed = 3.1
handrail = "light-touch"
"""

OPERATOR_ONLY = {"target_speed", "actual_speed", "faults", "notices", "summary", "can", "program"}


class Rig:
    def __init__(self, device: str = "sim://") -> None:
        self.clock = LoopClock()
        program = parse_program(PROGRAM, "views.toml")
        self.session = Session(program, open_treadmill(device, clock=self.clock), self.clock)
        self.view = SessionView(self.session)
        self.session.subscribe(self.view)
        self.gate = GoGate(self.session, self.view)
        self.session.go = self.gate.wait
        self.controls = Controls(self.session, self.gate, self.view)

    async def until(self, condition: Callable[[], bool], limit_s: float = 120.0) -> None:
        deadline = self.clock.now() + limit_s
        seen = -1
        while not condition():
            assert self.clock.now() < deadline, self.view.operator_state()
            changed = asyncio.ensure_future(self.view.changed_since(seen))
            await asyncio.wait([changed], timeout=1.0)
            changed.cancel()
            seen = self.view.version

    def do(self, command: Command) -> tuple[bool, str]:
        answer = self.controls(command)
        return answer.done, answer.text


def played(script: Callable[[Rig], Awaitable[Any]], device: str = "sim://") -> Any:
    async def main() -> tuple[Any, SessionSummary]:
        rig = Rig(device)
        task = asyncio.create_task(rig.session.run())
        # As the server does: the view ends with the session's summary.
        task.add_done_callback(
            lambda t: None if t.cancelled() or t.exception() else rig.view.ended(t.result())
        )
        try:
            result = await script(rig)
        finally:
            if not task.done():
                rig.session.stop()
                rig.gate.answer(False)
        return result, await task

    return run(main(), virtual=True)


def test_the_belt_waits_for_the_go_and_the_walker_sees_only_its_part() -> None:
    async def script(rig: Rig) -> dict[str, Any]:
        await rig.until(lambda: rig.view.phase is Phase.READY)
        walker = rig.view.walker_state()
        assert not OPERATOR_ONLY & set(walker)
        assert walker["phase"] == "ready" and walker["remaining_s"] == 20
        assert walker["handrail"] == "hands-free" and not walker["turn"]
        assert rig.do(Command.PAUSE) == (False, "nothing to pause")  # before the go
        assert rig.do(Command.FASTER)[0] is False
        assert rig.session.state.belt.value == "stopped"
        assert rig.do(Command.GO) == (True, "go: the belt starts")
        assert rig.do(Command.GO) == (False, "not waiting for the go")  # one go, one session
        await rig.until(lambda: rig.view.step.kind.value == "turn-around")
        turn = rig.view.walker_state()
        assert turn["handrail"] == "both-hands" and turn["turn"]
        assert turn["headline"] == cues.turn_instruction("rear").upper()
        await rig.until(lambda: rig.view.step.kind.value == "retro")
        retro = rig.view.walker_state()
        assert retro["handrail"] == "light-touch"
        await rig.until(lambda: rig.view.remaining_s <= 50)
        return rig.view.operator_state()

    state, summary = played(script)
    assert state["phase"] == "running" and state["block"]["title"] == "Retro"
    assert state["target_speed"].startswith("3.1 mph")
    assert summary.belt_stopped


def test_commands_are_explicit_and_kept_within_the_band() -> None:
    async def script(rig: Rig) -> list[tuple[bool, str]]:
        await rig.until(lambda: rig.view.phase is Phase.READY)
        rig.do(Command.GO)
        await rig.until(lambda: rig.view.step.kind.value == "retro")
        answers = [rig.do(Command.FASTER), rig.do(Command.FASTER)]  # 3.1 -> 3.2, the top
        await rig.until(lambda: rig.view.operator_state()["target_speed"].startswith("3.2"))
        answers += [rig.do(Command.PAUSE), rig.do(Command.PAUSE)]  # two views, both pressing
        await rig.until(lambda: rig.view.phase is Phase.PAUSED)
        left = rig.view.remaining_s
        answers += [rig.do(Command.SKIP), rig.do(Command.EXTEND)]
        await rig.until(lambda: rig.view.remaining_s == left + 15)
        answers += [rig.do(Command.RESUME), rig.do(Command.RESUME)]
        await rig.until(lambda: rig.view.phase is Phase.RUNNING)
        answers += [rig.do(Command.STOP)]
        await rig.until(lambda: rig.view.phase is Phase.ENDED)
        answers += [rig.do(Command.STOP)]
        return answers

    answers, summary = played(script)
    assert answers == [
        (True, "+0.1 mph"),
        (False, "at the top of the band 2.6–3.2 mph"),
        (True, "paused"),
        (False, "nothing to pause"),
        (False, "nothing to skip"),
        (True, "+15 s"),
        (True, "resumed"),
        (False, "nothing to resume"),
        (True, "STOP: the belt is stopping"),
        (False, "the session is over"),
    ]
    assert summary.belt_stopped and summary.outcome.value == "stopped"


def test_a_stop_before_the_go_ends_the_session_without_moving_the_belt() -> None:
    async def script(rig: Rig) -> list[str]:
        await rig.until(lambda: rig.view.phase is Phase.READY)
        rig.do(Command.STOP)
        await rig.until(lambda: rig.view.phase is Phase.ENDED)
        machine = getattr(rig.session.treadmill, "machine", None)
        assert machine is not None
        return [c.name for c in machine.commands if c.source == "link"]

    sent, summary = played(script)
    assert "start" not in sent and "set-speed" not in sent
    assert summary.blocks_done == 0 and summary.distance_m == 0
    assert summary.belt_stopped


def test_resume_waits_for_the_link() -> None:
    async def script(rig: Rig) -> list[tuple[bool, str]]:
        await rig.until(lambda: rig.view.phase is Phase.READY)
        rig.do(Command.GO)
        await rig.until(lambda: rig.view.link.value == "reconnecting")
        answers = [rig.do(Command.RESUME)]
        await rig.until(lambda: rig.view.link.value == "connected" and rig.session.state.link_up)
        await rig.until(lambda: rig.view.operator_state()["can"]["resume"])
        answers.append(rig.do(Command.RESUME))
        await rig.until(lambda: rig.view.phase is Phase.RUNNING)
        rig.do(Command.STOP)
        return answers

    answers, summary = played(script, "sim://?faults=drop@5+10")
    assert answers == [
        (False, "the link to the treadmill is down: resume once it is connected"),
        (True, "resumed"),
    ]
    assert summary.belt_stopped


def test_the_walker_gets_the_hint_words_and_the_3_2_1_for_its_big_digits() -> None:
    """The served walker page says what the console's walker view says (issue 19): the same
    hint per phase, and the count of the 3-2-1, which the page draws in the countdown."""

    async def script(rig: Rig) -> list[dict[str, Any]]:
        await rig.until(lambda: rig.view.phase is Phase.READY)
        seen = [rig.view.walker_state()]
        rig.do(Command.GO)
        await rig.until(lambda: rig.view.count == 3)
        seen.append(rig.view.walker_state())
        await rig.until(lambda: rig.view.step.kind.value == "turn-around")
        seen.append(rig.view.walker_state())
        rig.do(Command.STOP)
        await rig.until(lambda: rig.view.phase is Phase.ENDED)
        seen.append(rig.view.walker_state())
        return seen

    (ready, counting, turning, ended), _ = played(script)
    assert ready["hint"] == HINTS[WalkerPhase.READY] and ready["count"] is None
    assert counting["hint"] == "" and counting["count"] == 3 and counting["counting"]
    assert counting["remaining_s"] == 3
    assert turning["count"] is None and turning["remaining_s"] == 5
    assert ended["hint"] == HINTS[WalkerPhase.ENDED] == "Session over"


def _css_rules(text: str) -> dict[str, str]:
    """Selector -> declarations, for flat stylesheets (both of ours are)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    rules: dict[str, str] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", text):
        for selector in selectors.split(","):
            rules[" ".join(selector.split())] = body
    return rules


def _declared(body: str, prop: str) -> str:
    match = re.search(rf"(?:^|[;\s]){prop}\s*:\s*([^;]+)", body)
    assert match, (prop, body)
    return match.group(1).strip()


def test_one_colour_per_handrail_level_in_the_console_and_the_pages() -> None:
    """The console's stylesheet (run screen and walker view) and the pages' stylesheet give
    each handrail level the colour retrotread.walker names, which is the README's."""
    from retrotread.walker import COUNTING, CUE_COLOURS

    package = Path(retrotread.__file__).parent
    console = _css_rules((package / "tui" / "app.tcss").read_text())
    pages_text = (package / "web" / "static" / "style.css").read_text()
    pages = _css_rules(pages_text)
    variables = dict(re.findall(r"(--[\w-]+)\s*:\s*([^;]+);", pages_text))

    def page_colour(selector: str, prop: str = "background") -> str:
        value = _declared(pages[selector], prop)
        return variables.get(value.removeprefix("var(").removesuffix(")"), value).lower()

    readme = (package.parent / "README.md").read_text()
    names = {"both-hands": "red", "light-touch": "yellow", "hands-free": "green"}
    for level, colour in CUE_COLOURS.items():
        klass = "-turn" if level == "turn-around" else f"-{level}"
        for widget in ("#cue", "#walker-cue"):
            assert _declared(console[f"{widget}.{klass}"], "background") == colour.ansi
        assert page_colour(f".cue.{klass[1:] if level != 'turn-around' else 'turn'}") == (
            colour.css
        )
        if level in names:
            assert colour.name == names[level]
    assert "red both hands, yellow light touch, green hands free, bright yellow turn" in (
        " ".join(readme.split())
    )
    assert _declared(console["#countdown.-counting"], "color") == COUNTING.ansi
    assert page_colour(".countdown.counting", "color") == COUNTING.css
