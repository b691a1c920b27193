"""retrotread: a treadmill controller and interval runner for retro (backward) walking."""


def __getattr__(name: str) -> str:
    """``__version__`` on first use: importing importlib.metadata takes longer than all of
    ``retrotread --help`` may."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        #: The installed distribution's version: pyproject.toml is the one place it is written.
        found = version("retrotread")
    except PackageNotFoundError:  # a source tree on the path that was never installed
        found = "0+unknown"
    globals()["__version__"] = found
    return found
