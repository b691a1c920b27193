"""`retrotread report --client NAME`: a self-contained HTML page, checked in headless Chromium."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from retrotread.cli import main
from retrotread.clinic import records
from retrotread.clinic.limits import ClientLimits
from retrotread.clinic.records import Feeling
from retrotread.clinic.report import longest_backward, report
from retrotread.program import find_program
from retrotread.progression import OperatorOutcome
from retrotread.store import BlockRecord, Status, Store

DAY = 86400.0
PLOTS = ("plot-retro-time", "plot-longest-backward", "plot-feelings", "plot-heart-rate")


def block(idx: int, kind: str, seconds: float) -> BlockRecord:
    return BlockRecord(
        idx, kind, kind, "both-hands", int(seconds), 2.6, 2.0, 0.0, 0.0, seconds, 0, "done"
    )


def fill(store: Store) -> None:
    """Ana: four sessions on first-week, with feelings and heart rate; one lost balance."""
    ana = store.add_client("Ana", "knee rehab")
    records.set_limits(store, ana, ClientLimits(longest_backward_s=60, age=60, hr_percent=70))
    start = time.time() - 10 * DAY
    outcomes = [OperatorOutcome.COMPLETED] * 3 + [OperatorOutcome.LOST_BALANCE]
    for n, outcome in enumerate(outcomes):
        at = start + n * 2 * DAY
        sid = store.begin_session(
            client=ana, program=find_program("first-week"), device="sim://", started_at=at
        )
        blocks = [block(0, "warm-up", 180), block(1, "turn-around", 10)]
        blocks += [block(2, "retro", 20 + 5 * n), block(3, "retro", 10), block(4, "forward", 60)]
        for b in blocks:
            store.begin_block(sid, b)
        store.update_progress(sid, blocks_done=5, retro_s=30 + 5 * n, elapsed_s=280)
        store.end_session(
            sid,
            ended_at=at + 280,
            status=Status.COMPLETED,
            detail="",
            distance_m=300,
            belt_stopped=True,
        )
        store.record_outcome(sid, outcome)
        records.record_feeling(store, sid, Feeling(pain=n, exertion=2 + n))
        for second in range(60):
            store.execute(
                "INSERT INTO heart_rate (session_id, at, offset_s, bpm) VALUES (?, ?, ?, ?)",
                (sid, at + second, float(second), 80 + second // 2 + 5 * n),
            )


def test_the_longest_backward_stretch_adds_blocks_between_turn_arounds() -> None:
    played = [block(0, "retro", 20), block(1, "retro-run", 15), block(2, "turn-around", 8)]
    assert longest_backward([*played, block(3, "retro", 30)]) == 35


def test_the_report_has_every_plot_and_the_progressions_reasons(tmp_path: Path) -> None:
    with Store.open(tmp_path / "r.sqlite3") as store:
        fill(store)
        page = report(store, store.client("Ana"))
    for plot_id in PLOTS:
        assert f'<svg id="{plot_id}"' in page
    assert "src=" not in page and "href=" not in page and "<script" not in page
    assert page.count('class="bar" data-series="time backward"') == 4
    assert "lost balance reported at 25 s: step back" in page or "lost balance" in page
    assert "ceiling 112" in page and "limit 60 s" in page
    assert "heart rate: at most 112 bpm (70 % of 220 − 60)" in page


def test_report_command_writes_a_page_that_chromium_renders_with_its_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from selenium.webdriver.common.by import By

    from tests.tui.served import chromium

    db = tmp_path / "r.sqlite3"
    with Store.open(db) as store:
        fill(store)
    output = tmp_path / "ana.html"
    assert main(["report", "--client", "ana", "-o", str(output), "--db", str(db)]) == 0
    assert f"report for Ana written to {output}" in capsys.readouterr().out
    with chromium(tmp_path / "profile") as browser:
        browser.get(output.as_uri())
        assert browser.title == "Retro walking — Ana"
        for plot_id in PLOTS:
            svg = browser.find_element(By.ID, plot_id)
            box = svg.rect
            assert box["width"] > 300 and box["height"] > 100, plot_id
            drawn = svg.find_elements(By.CSS_SELECTOR, "rect.bar, circle.point, polyline.line")
            assert drawn, plot_id
            assert all(d.rect["height"] > 0 or d.rect["width"] > 0 for d in drawn)
        bars = browser.find_elements(By.CSS_SELECTOR, "#plot-retro-time rect.bar")
        heights = [b.rect["height"] for b in bars]
        assert len(heights) == 4 and heights == sorted(heights) and heights[0] > 0
        points = browser.find_elements(
            By.CSS_SELECTOR, '#plot-feelings circle[data-series="pain 0–10"]'
        )
        ys = [p.rect["y"] for p in points]
        assert len(ys) == 4 and ys == sorted(ys, reverse=True)  # pain rising: points climb
        rows = browser.find_elements(By.CSS_SELECTOR, "#steps tbody tr")
        assert len(rows) == 4
        assert "lost balance reported" in rows[-1].text
        resources = browser.execute_script("return performance.getEntriesByType('resource').length")
        assert resources == 0  # nothing fetched: the page stands alone
