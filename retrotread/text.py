"""Text from outside (a program file, a client's name, a machine's answer) shown to people:
a control character in it — a terminal escape above all — is shown, never obeyed."""

from __future__ import annotations

import re

#: C0 and C1 control characters except tab and newline (DEL included).
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def has_control(text: str) -> bool:
    return CONTROL.search(text) is not None


def without_control(text: str) -> str:
    """``text`` without its control characters (text imported from another app's file)."""
    return CONTROL.sub("", text)


def printable(text: str) -> str:
    """``text`` with each control character written out (ESC as ``\\x1b``)."""
    return CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)
