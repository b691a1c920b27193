"""Exporting a recorded session: CSV, TCX and FIT (for Garmin Connect and Strava).

Every format carries one sample a second (the last of each second) and one lap per block.

Each format module has ``render(data) -> bytes``; :func:`export_session` picks one by name
and writes the file.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retrotread.export.common import ExportData, load
    from retrotread.store import Store


class Format(enum.StrEnum):
    CSV = "csv"
    TCX = "tcx"
    FIT = "fit"


def render(data: ExportData, fmt: Format) -> bytes:
    if fmt is Format.CSV:
        from retrotread.export.table import render_csv

        return render_csv(data)
    if fmt is Format.TCX:
        from retrotread.export.tcx import render_tcx

        return render_tcx(data)
    from retrotread.export.fit import render_fit

    return render_fit(data)


def __getattr__(name: str) -> Any:
    """``load`` and ``ExportData`` on first use: the records need not load with the CLI."""
    if name in ("load", "ExportData"):
        from retrotread.export import common

        return getattr(common, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def export_session(store: Store, session_id: int, fmt: Format, path: Path) -> Path:
    """Write session ``session_id`` to ``path`` in ``fmt``; returns the path written."""
    from retrotread.export.common import load
    from retrotread.store import StoreError

    data = load(store, session_id)
    payload = render(data, fmt)
    try:
        path.write_bytes(payload)
    except OSError as err:
        raise StoreError(f"cannot write {path}: {err.strerror or err}") from err
    return path


__all__ = ["ExportData", "Format", "export_session", "load", "render"]
