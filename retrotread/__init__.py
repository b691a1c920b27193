"""retrotread: a treadmill controller and interval runner for retro (backward) walking."""

from importlib.metadata import PackageNotFoundError, version

try:
    #: The installed distribution's version: pyproject.toml is the one place it is written.
    __version__ = version("retrotread")
except PackageNotFoundError:  # a source tree on the path that was never installed
    __version__ = "0+unknown"
