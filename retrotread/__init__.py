"""retrotread: a treadmill controller and interval runner for retro (backward) walking."""

__version__ = "0.1.0"
