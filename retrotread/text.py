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


_TOML_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for char in text:
        if char in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F or 0xD800 <= ord(char) <= 0xDFFF:
            out.append(f"\\u{ord(char) if ord(char) < 0xD800 else 0xFFFD:04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
