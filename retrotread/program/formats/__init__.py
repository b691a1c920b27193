"""Workout files from other apps in and out: QZ ``.xml``, Zwift ``.zwo``, FIT workouts and
intervals.icu text.

:func:`import_file` reads a file into a validated :class:`~retrotread.program.Program` (and the
TOML text of it); :func:`export_program` writes a program as ``.fit`` or ``.zwo``. One module per
format; ``source`` and ``build`` are the shared part.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from retrotread.program.formats.rules import GRAMMAR, RetroRule, RuleError, parse_rules
from retrotread.program.formats.source import (
    MAX_IMPORT_BYTES,
    UNITS_HELP,
    Issues,
    Units,
    decode_text,
    parse_speed_text,
    read_source,
)
from retrotread.program.loader import ProgramError, ProgramIssue
from retrotread.program.model import Program
from retrotread.units import Quantity

if TYPE_CHECKING:
    from retrotread.program.formats.build import Imported

#: --format names, and what each reads
FORMATS = {
    "qz": "QZ (qdomyos-zwift) treadmill program, .xml",
    "zwo": "Zwift workout, .zwo (run workouts)",
    "fit": "FIT workout file, .fit (Garmin and others)",
    "icu": "intervals.icu workout text, .txt",
}
EXPORTS = {".fit": "FIT workout", ".zwo": "Zwift workout"}


@dataclass(frozen=True)
class ImportOptions:
    units: Units | None = None
    retro: tuple[RetroRule, ...] = ()
    pace_ref: Quantity | None = None  # the speed 100 % (a Zwift Power of 1.0) stands for
    free_speed: Quantity | None = None  # the speed of steps with no speed target
    format: str | None = None  # None: from the extension and the content


def detect_format(path: Path, raw: bytes) -> str:
    """The format from the file itself (a FIT header, an XML root), then the extension."""
    if len(raw) >= 12 and raw[8:12] == b".FIT":
        return "fit"
    head = raw.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return "zwo" if b"<workout_file" in raw[:4096] else "qz"
    suffix = path.suffix.lower()
    return {".fit": "fit", ".zwo": "zwo", ".xml": "qz"}.get(suffix, "icu")


def import_file(path: Path, options: ImportOptions = ImportOptions()) -> Imported:
    """Read a workout file into a program that passes ``retrotread check``, or raise
    :class:`ProgramError` with every reason (file, line or element, field)."""
    # the readers (the FIT SDK above all) load only when a file is imported
    from retrotread.program.formats import fit, icu, qz, zwo
    from retrotread.program.formats.build import build

    source = str(path)
    raw = read_source(path)
    if path.suffix.lower() == ".toml" and options.format is None:
        raise ProgramError(
            source, [ProgramIssue(None, "is a retrotread program already: `retrotread check` it")]
        )
    kind = options.format or detect_format(path, raw)
    if kind not in FORMATS:
        raise ProgramError(
            source, [ProgramIssue(None, f"unknown format {kind!r}; one of {', '.join(FORMATS)}")]
        )
    issues = Issues(source)
    name = path.stem
    if kind == "fit":
        workout = fit.read(
            raw, source, issues, units=options.units, free_speed=options.free_speed, name=name
        )
    elif kind == "zwo":
        workout = zwo.read(
            raw,
            source,
            issues,
            units=options.units,
            pace_ref=options.pace_ref,
            free_speed=options.free_speed,
            name=name,
        )
    elif kind == "qz":
        workout = qz.read(
            raw, source, issues, units=options.units, free_speed=options.free_speed, name=name
        )
    else:
        workout = icu.read(
            decode_text(raw, source),
            source,
            issues,
            units=options.units,
            pace_ref=options.pace_ref,
            free_speed=options.free_speed,
            name=name,
        )
    return build(workout, options.retro, source)


def export_program(program: Program, path: Path) -> bytes:
    """The program as the format ``path``'s extension names (.fit or .zwo)."""
    from retrotread.program.formats import fit, zwo

    suffix = path.suffix.lower()
    if suffix == ".fit":
        return fit.write(program)
    if suffix == ".zwo":
        return zwo.write(program)
    raise ValueError(f"{path}: export writes .fit or .zwo files, not {suffix or 'no extension'}")


__all__ = [
    "EXPORTS",
    "FORMATS",
    "GRAMMAR",
    "MAX_IMPORT_BYTES",
    "UNITS_HELP",
    "ImportOptions",
    "RetroRule",
    "RuleError",
    "Units",
    "detect_format",
    "export_program",
    "import_file",
    "parse_rules",
    "parse_speed_text",
]
