"""The optional parts of an install (pip extras) and the error that names the one missing.

A plain ``pip install retrotread`` plays programs on the console and headless; each transport
is an extra. Code that needs one imports it where it is used, and a missing module becomes a
:class:`~retrotread.errors.DriverUnavailable` that says what to install, never a traceback.
"""

from __future__ import annotations

import importlib.util

from retrotread.errors import DriverUnavailable

#: extra -> (what it is for, the top-level modules it brings)
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ble": ("Bluetooth LE (FTMS)", ("bleak", "pyftms", "bleak_retry_connector")),
    "serial": ("serial consoles (CSAFE, Trackmaster)", ("serial",)),
    "web": ("the served console", ("aiohttp", "segno")),
}

#: The simulator is not an extra: it is a distribution of its own, beside this one.
SIMULATOR_MODULE = "retrotread_sim"
SIMULATOR_INSTALL = "pip install ./sim (retrotread-sim, in the retrotread source tree)"


def install_hint(extra: str) -> str:
    return f"pip install 'retrotread[{extra}]'"


def extra_for(module: str) -> str | None:
    """The extra that brings ``module`` (a dotted name; its top level decides)."""
    top = module.partition(".")[0]
    return next((name for name, (_, modules) in EXTRAS.items() if top in modules), None)


def missing_extra(err: ModuleNotFoundError, needed_by: str) -> DriverUnavailable | None:
    """What to install for ``err``, raised while loading ``needed_by``; None if no extra
    brings the missing module (then it is a real bug, and stays one)."""
    missing = err.name or ""
    if missing.partition(".")[0] == SIMULATOR_MODULE:
        return DriverUnavailable(f"{needed_by} needs the simulator: {SIMULATOR_INSTALL}")
    extra = extra_for(missing)
    if extra is None:
        return None
    purpose = EXTRAS[extra][0]
    return DriverUnavailable(
        f"{needed_by} needs {purpose}, not installed (no module {missing!r}): {install_hint(extra)}"
    )


def installed(extra: str) -> bool:
    """Whether every module the extra brings can be imported (looked up, not imported)."""
    return all(_findable(module) for module in EXTRAS[extra][1])


def simulator_installed() -> bool:
    return _findable(SIMULATOR_MODULE)


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
