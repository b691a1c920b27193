"""A built-in program plays to the end over a real pty and the simulated belt is stopped.

The runs start when collection ends and play while the rest of the suite runs (a built-in
takes minutes of real time); this test comes last and checks them. See
``tests/builtin_over_serial.py``.
"""

from __future__ import annotations

import pytest

from tests.builtin_over_serial import PROGRAM, BackgroundRun


@pytest.mark.realtime
@pytest.mark.background_run
@pytest.mark.parametrize("protocol", ["csafe", "trackmaster"])
def test_a_builtin_plays_to_the_end_over_a_pty(
    protocol: str, background_runs: dict[str, BackgroundRun]
) -> None:
    run = background_runs[protocol]
    status, output = run.finish(timeout=600)
    assert status == 0, output
    assert f"▶ {PROGRAM}" in output
    assert "ended     completed" in output
    assert "belt      stopped" in output
    records = run.sim.records()
    frames = [r for r in records if r.get("event") == "frame"]
    assert frames, "the simulator received the program over the pty"
    closed = [r for r in records if r.get("event") == "closed"]
    assert closed and closed[-1]["state"]["stopped"] is True
    assert closed[-1]["state"]["speed_kmh"] == 0
