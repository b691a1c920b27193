"""Every mistake in a program file is reported once, in file order, however long the file."""

from __future__ import annotations

import pytest

from retrotread.program.loader import ProgramError, parse_program

HEADER = 'name = "issues"\n[defaults]\nretro_band = [2.6, 3.2]\nturn_speed = 1.0\n'


def test_a_mistake_inside_a_repeat_is_reported_once() -> None:
    # the group plays six times; the retro block faces the front in every round
    text = HEADER + (
        '[[blocks]]\nkind = "warm-up"\nduration = "1m"\nspeed = 2.5\n'
        "[[blocks]]\nrepeat = 6\n"
        '  [[blocks.blocks]]\n  kind = "retro"\n  duration = "20s"\n  speed = 2.6\n'
    )
    with pytest.raises(ProgramError) as caught:
        parse_program(text)
    assert len(caught.value.issues) == 1
    assert "faces the front" in caught.value.issues[0].message


def test_many_mistakes_each_once_in_file_order() -> None:
    retro = '[[blocks]]\nkind = "retro"\nduration = "20s"\nspeed = 9.5\n'
    text = HEADER + '[[blocks]]\nkind = "turn-around"\n' + retro * 300
    with pytest.raises(ProgramError) as caught:
        parse_program(text)
    lines = [issue.line for issue in caught.value.issues]
    assert len(lines) == 300 and lines == sorted(lines) and len(set(lines)) == 300
