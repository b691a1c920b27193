"""An attended ``retrotread run`` says which program on which treadmill before it asks for the go
(issue 19: it said only "Press Enter to start the belt")."""

from __future__ import annotations

import asyncio

import pytest

from retrotread.clock import LoopClock, run
from retrotread.drivers.registry import open_treadmill
from retrotread.playback import TerminalOperator
from retrotread.program import find_program
from retrotread.session import Session


def test_the_go_prompt_names_the_program_and_the_device(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def ask_then_stop() -> tuple[bool, str]:
        clock = LoopClock()
        program = find_program("first-week")
        session = Session(program, open_treadmill("sim://", clock=clock), clock)
        operator = TerminalOperator(session)
        asking = asyncio.ensure_future(operator.go())
        await asyncio.sleep(0)
        printed = capsys.readouterr().out
        session.stop()  # STOP before the go: the prompt gives up, nothing starts
        return await asking, printed

    went, printed = run(ask_then_stop(), virtual=True)
    assert went is False
    first, second = printed.splitlines()[:2]
    assert first.startswith("Ready: first-week (")
    assert first.endswith(" on simulator (simulator).")
    assert second == "Press Enter to start the belt (Ctrl-C to cancel)."
