"""The optional parts of an install, and the error that names the one missing.

A plain ``pip install retrotread`` plays programs on the console and headless. Each transport
is a pip extra (``ble``, ``serial``, ``web``, ``floor``, ``postgresql``; ``all`` for every
one), and the simulator is a distribution of its own beside this one. Code that needs one
imports it where it is used; a module that is missing becomes a
:class:`~retrotread.errors.DriverUnavailable` that says what to install, never a traceback.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from retrotread.errors import DriverUnavailable


@dataclass(frozen=True)
class OptionalPart:
    """Something a plain install leaves out: what it is for, the top-level modules it brings,
    and the command that installs it."""

    purpose: str
    modules: tuple[str, ...]
    install: str


def _extra(purpose: str, name: str, *modules: str) -> OptionalPart:
    return OptionalPart(purpose, modules, f"pip install 'retrotread[{name}]'")


#: By name: the pip extras (as in pyproject.toml), and ``sim``, the simulator's distribution.
OPTIONAL: dict[str, OptionalPart] = {
    "ble": _extra("Bluetooth LE (FTMS)", "ble", "bleak", "pyftms", "bleak_retry_connector"),
    "serial": _extra("serial consoles (CSAFE, Trackmaster)", "serial", "serial"),
    "web": _extra("the served console", "web", "aiohttp", "segno"),
    "floor": _extra("the gym floor over MQTT", "floor", "aiomqtt"),
    "postgresql": _extra("records in PostgreSQL", "postgresql", "psycopg"),
    "sim": OptionalPart(
        "the simulator",
        ("retrotread_sim",),
        "pip install ./sim (retrotread-sim, beside retrotread in its source tree)",
    ),
}


def optional_for(module: str) -> OptionalPart | None:
    """What brings ``module`` (a dotted name; its top level decides)."""
    top = module.partition(".")[0]
    return next((part for part in OPTIONAL.values() if top in part.modules), None)


def missing_extra(err: ModuleNotFoundError, needed_by: str) -> DriverUnavailable | None:
    """What to install for ``err``, raised while loading ``needed_by``; None if nothing
    optional brings the missing module (then it is a real bug, and stays one)."""
    missing = err.name or ""
    part = optional_for(missing)
    if part is None:
        return None
    return DriverUnavailable(
        f"{needed_by} needs {part.purpose}, not installed (no module {missing!r}): {part.install}"
    )


def installed(name: str) -> bool:
    """Whether every module of ``OPTIONAL[name]`` can be imported (looked up, not imported)."""
    return all(_findable(module) for module in OPTIONAL[name].modules)


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
