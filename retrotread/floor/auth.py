"""Commands from the floor, and who may send them.

A command is a JSON object on ``retrotread/<console-id>/command``::

    {"command": "stop", "sender": "front desk", "console": "tm-03",
     "at": 1767225600.25, "nonce": "9f2c...", "mac": "<hex HMAC-SHA256>"}

Only ``stop`` and ``pause`` exist: nothing remote starts a belt, resumes one, or changes a
speed. With a shared secret (``--floor-secret FILE`` on both sides) the MAC covers every other
field, so the sender's name is vouched for, a command for one console does not work on
another, and a copy replayed later is refused (``at`` must be within :data:`WINDOW_S` of the
console's clock and each nonce counts once). Without a secret a console accepts commands only
when told to trust its broker (``--floor-trust-broker``): then the broker's ACL decides who may
publish there, and the sender's name is what the sender says.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrotread.errors import RetrotreadError

#: how far a signed command's time may be from the console's (clocks on a floor are NTP-close)
WINDOW_S = 30.0
MIN_SECRET_CHARS = 16


class RemoteCommand(enum.StrEnum):
    """What the floor may ask of a console: only ways to take speed off a belt."""

    STOP = "stop"
    PAUSE = "pause"


class CommandRefused(Exception):
    """A command the console will not act on, and why (the console says so as a notice)."""


@dataclass(frozen=True)
class Accepted:
    command: RemoteCommand
    sender: str


def read_secret(path: str | Path) -> bytes:
    """The shared secret from a file (its first line); a clear error for a bad one."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise RetrotreadError(f"floor secret {path}: cannot read it ({err})") from err
    secret = text[0].strip() if text else ""
    if len(secret) < MIN_SECRET_CHARS:
        raise RetrotreadError(
            f"floor secret {path}: use at least {MIN_SECRET_CHARS} characters on its first line "
            "(e.g. `openssl rand -hex 32 > FILE`)"
        )
    return secret.encode()


def _mac(secret: bytes, fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(secret, canonical.encode(), hashlib.sha256).hexdigest()


def sign(
    command: RemoteCommand,
    console_id: str,
    sender: str,
    secret: bytes | None,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """A command as the floor sends it (unsigned without a secret)."""
    fields: dict[str, Any] = {
        "command": command.value,
        "sender": sender,
        "console": console_id,
        "at": round(time.time() if now is None else now, 3),
        "nonce": secrets.token_hex(12),
    }
    if secret is not None:
        fields["mac"] = _mac(secret, fields)
    return fields


class Verifier:
    """The console's side: accepts a command from an authorised sender, once."""

    def __init__(
        self,
        console_id: str,
        secret: bytes | None,
        *,
        trust_broker: bool = False,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.console_id = console_id
        self.secret = secret
        self.trust_broker = trust_broker
        self.wall = wall
        self._seen: dict[str, float] = {}  # nonce -> when it expires

    @property
    def accepts_commands(self) -> bool:
        return self.secret is not None or self.trust_broker

    def check(self, message: dict[str, Any], *, retained: bool = False) -> Accepted:
        if retained:  # an old command kept by the broker must never stop a later session
            raise CommandRefused("a retained command (it may be hours old)")
        if not self.accepts_commands:
            raise CommandRefused(
                "this console takes no commands from the floor (no --floor-secret, and "
                "--floor-trust-broker not given)"
            )
        name = message.get("command")
        try:
            command = RemoteCommand(str(name))
        except ValueError:
            raise CommandRefused(
                f"{name!r} is not a floor command: the floor may only stop or pause a belt"
            ) from None
        sender = message.get("sender")
        if not isinstance(sender, str) or not sender.strip():
            raise CommandRefused("the command does not say who sent it")
        sender = sender.strip()[:80]
        if message.get("console") != self.console_id:
            raise CommandRefused(f"the command was for console {message.get('console')!r}")
        if self.secret is not None:
            self._check_signature(message)
        return Accepted(command, sender)

    def _check_signature(self, message: dict[str, Any]) -> None:
        assert self.secret is not None
        mac = message.get("mac")
        fields = {k: v for k, v in message.items() if k != "mac"}
        if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(self.secret, fields)):
            raise CommandRefused("the command's signature does not match this console's secret")
        at, nonce = message.get("at"), message.get("nonce")
        now = self.wall()
        if not isinstance(at, int | float) or abs(now - at) > WINDOW_S:
            raise CommandRefused(
                f"the command is more than {WINDOW_S:.0f} s from this console's clock "
                "(replayed, or a clock is wrong)"
            )
        if not isinstance(nonce, str) or not nonce:
            raise CommandRefused("the command has no nonce")
        self._seen = {n: until for n, until in self._seen.items() if until > now}
        if nonce in self._seen:
            raise CommandRefused("the command was already received (a replay)")
        self._seen[nonce] = now + 2 * WINDOW_S


def default_sender() -> str:
    """Who the floor says it is, unless told: the user at this host."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = os.environ.get("USER", "floor")
    return f"{user}@{socket.gethostname().split('.')[0]}"
