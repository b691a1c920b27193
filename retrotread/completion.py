"""Shell completion (argcomplete): commands and options, built-in program names and program
files, client names from the records, device profiles.

``eval "$(retrotread completion bash)"`` (or ``zsh``, ``fish``) turns it on for a shell. The
completers run only while a shell asks; an ordinary command never loads argcomplete.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SHELLS = ("bash", "zsh", "fish", "tcsh", "powershell")


def programs(prefix: str, **_: Any) -> Iterable[str]:
    """Built-in program names, then program files under the typed path."""
    from retrotread.program import builtin_programs

    names = [program.name for program in builtin_programs()]
    folder = Path(prefix).parent if "/" in prefix else Path(".")
    try:
        files = [
            str(path) if "/" in prefix else path.name
            for path in folder.iterdir()
            if path.suffix == ".toml" or path.is_dir()
        ]
    except OSError:
        files = []
    return [name for name in [*names, *files] if name.startswith(prefix)]


def clients(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> Iterable[str]:
    """Client names from the records the command line names (or the default records)."""
    from retrotread.store import Store, StoreError

    target = getattr(parsed_args, "db", None)
    try:
        with Store.open(target, read_only=True) as store:
            names = [summary.client.name for summary in store.clients()]
    except (StoreError, OSError):
        return []
    return [name for name in names if name.lower().startswith(prefix.lower())]


def devices(prefix: str, **_: Any) -> Iterable[str]:
    """The simulator with each device profile, and the URL schemes."""
    from retrotread.drivers.registry import DRIVERS
    from retrotread.profiles import bundled_profiles

    urls = ["sim://", *(f"sim://?profile={p.name}" for p in bundled_profiles())]
    urls += [f"{scheme}://" for scheme in DRIVERS if scheme != "sim"]
    return [url for url in urls if url.startswith(prefix)]


def attach(parser: argparse.ArgumentParser) -> None:
    """Give each positional PROGRAM, --client and --device its completer."""
    for action in _actions(parser):
        if action.dest == "program" or action.metavar == "PROGRAM":
            action.completer = programs  # type: ignore[attr-defined]
        elif action.dest == "client" or "--client" in action.option_strings:
            action.completer = clients  # type: ignore[attr-defined]
        elif action.dest == "device" and action.option_strings:
            action.completer = devices  # type: ignore[attr-defined]


def _actions(parser: argparse.ArgumentParser) -> Iterable[argparse.Action]:
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _actions(sub)


def complete_if_asked(parser: argparse.ArgumentParser) -> None:
    """When a shell asks for completions, answer and exit; otherwise do nothing (cheaply)."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    import argcomplete

    attach(parser)
    argcomplete.autocomplete(parser)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "completion",
        help="print the shell code that completes retrotread's commands, programs and clients",
        description='Turn completion on with: eval "$(retrotread completion bash)" (or zsh, '
        "fish); put that line in your shell's startup file to keep it.",
    )
    parser.add_argument("shell", choices=SHELLS, nargs="?", default="bash")


def cmd_completion(args: argparse.Namespace) -> int:
    from argcomplete.shell_integration import shellcode

    print(shellcode(["retrotread"], shell=args.shell))
    return 0
