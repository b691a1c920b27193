"""``retrotread tui --serve``: the console in web browsers, through textual-serve.

textual-serve starts one console process per browser page, each with its own session: a
tablet or TV behind the treadmill runs the program itself (``--walker`` opens it on the walker
view, keys and all). It listens on 127.0.0.1 unless ``--host`` says otherwise.
"""

from __future__ import annotations

import argparse
import shlex
import socket

from retrotread.speech.options import speech_flags

#: The walker view's page asks for a larger terminal font, for reading from the belt.
WALKER_FONT_SIZE = 28
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}


def with_view_options(command: str, args: argparse.Namespace) -> str:
    """The per-browser console command, with the walker view and the speech settings."""
    extra = speech_flags(args)
    if getattr(args, "walker", False):
        extra.insert(0, "--walker")
    return f"{command} {shlex.join(extra)}"


def public_host(host: str) -> str:
    """The name browsers use: a wildcard address is not one, the machine's name is."""
    if host in WILDCARD_HOSTS:
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


def page_address(args: argparse.Namespace) -> str:
    address = f"http://{public_host(args.host)}:{args.port}/"
    if getattr(args, "walker", False):
        address += f"?fontsize={WALKER_FONT_SIZE}"
    return address


def serve_console(command: str, args: argparse.Namespace) -> int:
    from textual_serve.server import Server

    base = f"http://{public_host(args.host)}:{args.port}"
    view = "walker view" if getattr(args, "walker", False) else "console"
    print(f"serving the {view} on {page_address(args)} (Ctrl-C ends)", flush=True)
    Server(command, host=args.host, port=args.port, title="retrotread", public_url=base).serve()
    return 0
