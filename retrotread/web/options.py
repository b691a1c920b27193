"""The ``--serve`` options of ``retrotread tui`` (light: read on every command line)."""

from __future__ import annotations

import argparse
from typing import Any

from retrotread.options import ServeOptions

DEFAULT_PORT = 8000
DEFAULT_MAX_VIEWS = 8


CONSOLE_ABOUT = (
    "one session in this process; every browser page is a view onto it. The operator's\n"
    "view needs the secret link printed at start (or --password-file); the walker view\n"
    "is read-only."
)
CONSOLE_SERVE_HELP = (
    "serve the session to web browsers (a tablet for the operator, a screen for the walker) "
    "instead of opening the console here"
)


def add_serve_options(
    parser: Any, *, about: str = CONSOLE_ABOUT, serve_help: str = CONSOLE_SERVE_HELP
) -> None:
    """The ``--serve`` options (``retrotread tui``; ``retrotread floor`` says its own words)."""
    group = parser.add_argument_group("serving to browsers (--serve)", about)
    group.add_argument("--serve", action="store_true", help=serve_help)
    group.add_argument(
        "--host",
        default=None,
        help="address to listen on (127.0.0.1); beyond this machine needs --allow-remote",
    )
    group.add_argument(
        "--port", type=int, default=None, help=f"port ({DEFAULT_PORT}; 0 picks a free one)"
    )
    group.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow --host to be reachable from other machines (e.g. 0.0.0.0)",
    )
    group.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="also accept pages from ORIGIN (scheme://host[:port], e.g. behind a proxy); "
        "repeatable",
    )
    group.add_argument(
        "--password-file",
        metavar="PATH",
        help="also accept the password on this file's first line for the operator's view",
    )
    group.add_argument(
        "--max-views",
        type=int,
        default=DEFAULT_MAX_VIEWS,
        metavar="N",
        help=f"views open at once, operator and walker together ({DEFAULT_MAX_VIEWS})",
    )
    group.add_argument("--certfile", metavar="PEM", help="serve over TLS with this certificate")
    group.add_argument("--keyfile", metavar="PEM", help="the certificate's private key")


def serve_options(args: argparse.Namespace) -> ServeOptions:
    return ServeOptions(
        host=args.host,
        port=args.port,
        allow_remote=args.allow_remote,
        certfile=args.certfile,
        keyfile=args.keyfile,
        password_file=args.password_file,
        allow_origin=tuple(args.allow_origin),
        max_views=args.max_views,
    )
