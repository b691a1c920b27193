from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", deadline=None, max_examples=200)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep logs and records of every test inside its own temporary folder."""
    monkeypatch.setenv("RETROTREAD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RETROTREAD_LOG_DIR", str(tmp_path / "log"))


# -- built-in programs over a serial line, in the background (see builtin_over_serial.py) -----

BACKGROUND = pytest.StashKey[dict[str, object]]()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the background runs if their check was selected, and move that check last."""
    late = [item for item in items if item.get_closest_marker("background_run")]
    if not late:
        return
    for item in late:
        items.remove(item)
        items.append(item)
    from tests.builtin_over_serial import start_runs

    config.stash[BACKGROUND] = dict(start_runs())


def pytest_unconfigure(config: pytest.Config) -> None:
    for run in config.stash.get(BACKGROUND, {}).values():
        run.abandon()  # type: ignore[attr-defined]


@pytest.fixture
def background_runs(request: pytest.FixtureRequest) -> dict[str, object]:
    return request.config.stash[BACKGROUND]
