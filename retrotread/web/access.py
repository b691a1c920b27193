"""Who may reach the served console, and who may control the belt through it.

- Control needs a secret: the console's random token (printed at start inside the operator's
  link, after ``#`` so it never reaches a server log or a Referer) or the configured password.
  Both are compared in constant time, on digests so that not even the length leaks.
- Browsers send an ``Origin`` with every websocket: only the console's own origins (and those
  given with ``--allow-origin``) are let in, so a web page elsewhere cannot drive the belt
  through the operator's browser. Every request's ``Host`` must be one of those names too,
  which defeats DNS rebinding.
- Listening beyond loopback needs an explicit ``--allow-remote``; TLS when given a certificate.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import secrets
import socket
import ssl
import stat
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from retrotread.errors import RetrotreadError

WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
TOKEN_BYTES = 24  # 192 bits, 32 URL-safe characters
MIN_PASSWORD_CHARS = 8
#: Wrong passwords allowed per minute, across all pages; then only the token is accepted
#: until the minute is over (so a guesser cannot lock the operator's link out).
PASSWORD_FAILURES_PER_MINUTE = 5


class AccessError(RetrotreadError):
    """A serve setting that would expose the console, or cannot be used."""


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def read_password_file(path: str | Path) -> str:
    """The password on the file's first line; refused if too short or empty."""
    where = Path(path)
    try:
        text = where.read_text(encoding="utf-8")
    except OSError as err:
        raise AccessError(f"cannot read the password file {where}: {err.strerror}") from err
    password = text.splitlines()[0].strip() if text.strip() else ""
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccessError(
            f"the password in {where} is shorter than {MIN_PASSWORD_CHARS} characters: "
            "use a longer one (a few words), or rely on the link with the token"
        )
    return password


def password_file_warning(path: str | Path) -> str | None:
    """A warning when others on this machine can read the password file."""
    with contextlib.suppress(OSError):
        mode = Path(path).stat().st_mode
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            return f"{path} can be read by other users: chmod 600 {path}"
    return None


@dataclass
class Secrets:
    """The token, the optional password, and the throttle on wrong passwords."""

    token: str
    password: str | None = None
    _failures: deque[float] = field(default_factory=deque)

    def token_ok(self, given: str) -> bool:
        return hmac.compare_digest(_digest(given), _digest(self.token))

    def password_ok(self, given: str, now: float | None = None) -> bool:
        if self.password is None:
            return False
        now = time.monotonic() if now is None else now
        while self._failures and now - self._failures[0] > 60.0:
            self._failures.popleft()
        if len(self._failures) >= PASSWORD_FAILURES_PER_MINUTE:
            return False
        if hmac.compare_digest(_digest(given), _digest(self.password)):
            return True
        self._failures.append(now)
        return False


# -- addresses ----------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """True if ``host`` (an address or a name) reaches this machine only."""
    if host in WILDCARD_HOSTS:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except OSError as err:
        raise AccessError(f"cannot resolve --host {host}: {err}") from err
    return all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in found)


def check_bind(host: str, allow_remote: bool) -> None:
    """Refuse to listen beyond this machine unless the operator said so explicitly."""
    if is_loopback(host) or allow_remote:
        return
    where = "every network this machine is on" if host in WILDCARD_HOSTS else host
    raise AccessError(
        f"--host {host or '0.0.0.0'} would open the console to {where}: anyone there could "
        "watch the walker view, and anyone with the link or the password could drive the "
        "belt. Add --allow-remote if that is what you want (with --certfile/--keyfile and "
        "--password-file on a shared network)"
    )


def lan_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the route
        address: str = probe.getsockname()[0]
        if not ipaddress.ip_address(address).is_unspecified:
            return address
    return None


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def local_names(host: str) -> list[str]:
    """The names a browser may use for a console listening on ``host``."""
    if host not in WILDCARD_HOSTS:
        names = [url_host(host)]
        if is_loopback(host):
            names += [n for n in LOOPBACK_NAMES if n not in names]
        return names
    names = list(LOOPBACK_NAMES)
    hostname = socket.gethostname()
    candidates = [lan_address(), hostname, f"{hostname}.local", socket.getfqdn()]
    with contextlib.suppress(OSError):
        candidates += [str(info[4][0]) for info in socket.getaddrinfo(hostname, None)]
    for name in candidates:
        if name and url_host(name) not in names:
            names.append(url_host(name))
    return names


def public_name(host: str) -> str:
    """The name to print in the link: the LAN address for a wildcard, else the host."""
    if host in WILDCARD_HOSTS:
        return url_host(lan_address() or socket.gethostname())
    return url_host(host)


def origin_of(scheme: str, name: str, port: int) -> str:
    default = (scheme == "http" and port == 80) or (scheme == "https" and port == 443)
    return f"{scheme}://{name}" if default else f"{scheme}://{name}:{port}"


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, default port dropped; '' if not an origin."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return ""
    try:
        port = parts.port
    except ValueError:
        return ""
    port = port or (443 if parts.scheme == "https" else 80)
    return origin_of(parts.scheme, url_host(parts.hostname.lower()), port)


@dataclass(frozen=True)
class Origins:
    """The origins allowed on a websocket and the ``Host`` names allowed on every request."""

    origins: frozenset[str]

    @classmethod
    def build(cls, scheme: str, host: str, port: int, extra: list[str]) -> Origins:
        allowed = {origin_of(scheme, name.lower(), port) for name in local_names(host)}
        for origin in extra:
            normal = normalize_origin(origin)
            if not normal:
                raise AccessError(
                    f"--allow-origin {origin!r} is not an origin: give scheme://host[:port], "
                    "e.g. https://tablet.example:8443"
                )
            allowed.add(normal)
        return cls(frozenset(allowed))

    def origin_allowed(self, origin: str | None) -> bool:
        return origin is not None and normalize_origin(origin) in self.origins

    def host_allowed(self, host_header: str | None, scheme: str) -> bool:
        if not host_header:
            return False
        return normalize_origin(f"{scheme}://{host_header}") in self.origins


def tls_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    if not certfile and not keyfile:
        return None
    if not certfile:
        raise AccessError("--keyfile needs --certfile (the certificate for that key)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile, keyfile or None)
    except (OSError, ssl.SSLError) as err:
        raise AccessError(f"cannot use the certificate {certfile}: {err}") from err
    return context
