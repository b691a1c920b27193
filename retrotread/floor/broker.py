"""The broker a console or the floor talks to: ``mqtt://[user:pass@]host[:port]`` (1883), or
``mqtts://...`` (8883) for TLS, checked against the system's certificate authorities or the
one given with ``--mqtt-ca``. The password may also come from ``RETROTREAD_MQTT_PASSWORD`` so
that it stays out of the process list."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from retrotread.errors import RetrotreadError

if TYPE_CHECKING:  # the client loads when a console or the floor connects
    import aiomqtt

URL_GRAMMAR = "mqtt://[USER[:PASSWORD]@]HOST[:PORT] or mqtts://... (TLS)"
PASSWORD_VARIABLE = "RETROTREAD_MQTT_PASSWORD"
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None

    @classmethod
    def from_url(cls, url: str, ca_file: str | None = None) -> Broker:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as err:
            raise RetrotreadError(f"broker {url!r}: {err}; use {URL_GRAMMAR}") from err
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise RetrotreadError(f"broker {url!r}: use {URL_GRAMMAR}")
        if parts.path not in ("", "/") or parts.query:
            raise RetrotreadError(f"broker {url!r}: no path or options here; use {URL_GRAMMAR}")
        password = unquote(parts.password) if parts.password else os.environ.get(PASSWORD_VARIABLE)
        if ca_file is not None and parts.scheme != "mqtts":
            raise RetrotreadError("--mqtt-ca is for a TLS broker: use mqtts://")
        return cls(
            host=parts.hostname,
            port=port or DEFAULT_PORTS[parts.scheme],
            tls=parts.scheme == "mqtts",
            username=unquote(parts.username) if parts.username else None,
            password=password if parts.username else None,
            ca_file=ca_file,
        )

    def __str__(self) -> str:
        who = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{who}{self.host}:{self.port}"

    def tls_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as err:
            raise RetrotreadError(f"--mqtt-ca {self.ca_file}: {err}") from err

    def client(
        self,
        identifier: str,
        *,
        will: aiomqtt.Will | None = None,
        timeout_s: float = 5.0,
        keepalive_s: int = 10,
    ) -> aiomqtt.Client:
        import aiomqtt

        return aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=identifier,
            will=will,
            tls_context=self.tls_context(),
            timeout=timeout_s,
            keepalive=keepalive_s,
            # Bounded, so that a stalled broker costs memory no more than it costs time.
            max_queued_outgoing_messages=200,
            max_inflight_messages=20,
        )
