"""Programs: the model, the TOML format and its validation, and the built-in library."""

from retrotread.program.library import builtin_programs, find_program
from retrotread.program.loader import ProgramError, ProgramIssue, load_program, parse_program
from retrotread.program.model import (
    Band,
    Block,
    BlockKind,
    Defaults,
    Facing,
    Handrail,
    Program,
    Repeat,
    Step,
    TurnMode,
    format_duration,
)

__all__ = [
    "Band",
    "Block",
    "BlockKind",
    "Defaults",
    "Facing",
    "Handrail",
    "Program",
    "ProgramError",
    "ProgramIssue",
    "Repeat",
    "Step",
    "TurnMode",
    "builtin_programs",
    "find_program",
    "format_duration",
    "load_program",
    "parse_program",
]
