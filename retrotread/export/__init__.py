"""Exporting a recorded session: CSV, TCX and FIT (for Garmin Connect and Strava).

Every format carries one sample a second (the last of each second) and one lap per block.

Each format module has ``render(data) -> bytes``; :func:`export_session` picks one by name
and writes the file.
"""

from __future__ import annotations

import enum
import os
import tempfile
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


def export_session(
    store: Store, session_id: int, fmt: Format, path: Path, *, force: bool = False
) -> Path:
    """Write session ``session_id`` to ``path`` in ``fmt``; returns the path written.

    ``path`` is created; an existing file is replaced only with ``force`` (see
    :func:`write_new_file`).
    """
    from retrotread.export.common import load

    data = load(store, session_id)
    write_new_file(path, render(data, fmt), force=force)
    return path


def format_for(path: Path) -> Format | None:
    """The format a file name asks for by its extension; None when it has none."""
    if not path.suffix:
        return None
    try:
        return Format(path.suffix.lower().lstrip("."))
    except ValueError:
        return None


def write_new_file(path: Path, payload: bytes, *, force: bool) -> None:
    """Create ``path`` holding ``payload``, whole or not at all.

    Without ``force`` an existing name — a file, or a symbolic link wherever it points — is
    refused: an export never overwrites what the operator did not name twice. With ``force``
    the payload goes to a temporary file beside it that then takes the name, so a symbolic
    link there is replaced, never followed, and a failed write leaves the old file as it was.
    """
    from retrotread.store import StoreError

    if path.is_dir():
        raise StoreError(f"{path} is a folder; give a file name to write")
    if not force and (path.exists() or path.is_symlink()):
        what = "a symbolic link" if path.is_symlink() else "a file"
        raise StoreError(
            f"{path} exists ({what}); choose another name, or add --force to replace it"
        )
    try:
        if force:
            _replace(path, payload)
        else:
            _create(path, payload)
    except FileExistsError as err:  # made by someone else meanwhile
        raise StoreError(
            f"{path} exists; choose another name, or add --force to replace it"
        ) from err
    except OSError as err:
        raise StoreError(f"cannot write {path}: {err.strerror or err}") from err


def _create(path: Path, payload: bytes) -> None:
    # O_EXCL: the name must be new (a symbolic link there counts as taken, and is not followed)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(payload)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _replace(path: Path, payload: bytes) -> None:
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(payload)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


__all__ = [
    "ExportData",
    "Format",
    "export_session",
    "format_for",
    "load",
    "render",
    "write_new_file",
]
