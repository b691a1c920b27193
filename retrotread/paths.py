"""Where retrotread keeps its files (platformdirs), overridable for tests and kiosks."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from retrotread.errors import PlaceError

APP = "retrotread"


def data_dir() -> Path:
    override = os.environ.get("RETROTREAD_DATA_DIR")
    path = Path(override) if override else platformdirs.user_data_path(APP)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        where = " (RETROTREAD_DATA_DIR)" if override else ""
        raise PlaceError(
            f"the data folder {path}{where} cannot be used: {err.strerror or err}"
        ) from None
    return path


def config_dir() -> Path:
    """The user's own settings (device profiles in ``devices/``); not created here: reading
    an empty place is fine, and only the user writes there."""
    override = os.environ.get("RETROTREAD_CONFIG_DIR")
    return Path(override) if override else platformdirs.user_config_path(APP)


def log_file() -> Path:
    override = os.environ.get("RETROTREAD_LOG_DIR")
    folder = Path(override) if override else platformdirs.user_log_path(APP)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "retrotread.log"
