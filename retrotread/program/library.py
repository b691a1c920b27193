"""The built-in program library and the one way to find a program: by name or by path."""

from __future__ import annotations

from pathlib import Path

from retrotread.program.loader import ProgramError, ProgramIssue, load_program, parse_program
from retrotread.program.model import Program


def builtin_programs() -> list[Program]:
    """Every built-in program, in the order a trainer would meet them."""
    from importlib import resources  # here: `retrotread --help` has no use for it

    folder = resources.files("retrotread.program").joinpath("library")
    programs = []
    for entry in folder.iterdir():
        if entry.name.endswith(".toml"):
            programs.append(parse_program(entry.read_text("utf-8"), f"<built-in>/{entry.name}"))
    order = [
        "first-week",
        "building-intervals",
        "two-minute-retro",
        "retro-run-starter",
        "warm-up",
        "cool-down",
        "dedicated-session",
        "uphill",
    ]
    return sorted(programs, key=lambda p: (order.index(p.name) if p.name in order else 99, p.name))


def find_program(spec: str) -> Program:
    """A built-in's name or a path to a program file.

    A spec that names an existing file (or ends in .toml) is read as a file; otherwise it must be
    a built-in name, and the error lists them.
    """
    path = Path(spec)
    if spec.endswith(".toml") or path.exists() or "/" in spec:
        return load_program(path)
    for program in builtin_programs():
        if program.name == spec.lower():
            return program
    names = ", ".join(p.name for p in builtin_programs())
    raise ProgramError(
        spec, [ProgramIssue(None, f"no such built-in program or file; built-ins: {names}")]
    )
