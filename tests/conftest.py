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
