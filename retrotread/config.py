"""The settings file: what a console remembers, so the treadmill's URL is not typed every time.

``config.toml`` in the platform config directory (``$RETROTREAD_CONFIG_DIR`` overrides it)::

    [device]
    url = "csafe:///dev/ttyUSB0"

    [speech]
    mute = false
    language = "en"
    voice = "f3"
    rate = 160        # words per minute
    volume = 100      # percent
    audio_player = "" # e.g. "aplay -q"

    [records]
    db = "/srv/retrotread/records.sqlite3"

    [serve]
    host = "127.0.0.1"
    port = 8000

Each setting also has an environment variable (``RETROTREAD_DEVICE``...). The command line wins
over the environment, which wins over the file, which wins over the built-in default;
``retrotread config`` shows every value and where it came from.
"""

from __future__ import annotations

import argparse
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrotread.errors import RetrotreadError
from retrotread.paths import config_dir
from retrotread.text import toml_string

FILE_NAME = "config.toml"
MAX_FILE_BYTES = 64 * 1024


class ConfigError(RetrotreadError):
    """The settings file or a setting's environment variable is wrong (a usage error)."""


@dataclass(frozen=True)
class Setting:
    """One setting: where it lives in the file, its environment variable, the option it fills."""

    table: str
    key: str
    kind: type  # str, int, bool or Path
    default: Any
    dest: str  # the argparse destination it fills when the command line leaves it unset
    help: str

    @property
    def name(self) -> str:
        return f"{self.table}.{self.key}"

    @property
    def env(self) -> str:
        return "RETROTREAD_" + {"device.url": "DEVICE", "records.db": "DB"}.get(
            self.name, f"{self.table}_{self.key}".upper()
        )


SETTINGS = (
    Setting("device", "url", str, "sim://", "device", "the treadmill's device URL"),
    Setting("speech", "mute", bool, False, "mute", "no spoken cues"),
    Setting("speech", "language", str, "en", "language", "espeak-ng language"),
    Setting("speech", "voice", str, "", "voice", "espeak-ng voice variant"),
    Setting("speech", "rate", int, 175, "speech_rate", "words per minute"),
    Setting("speech", "volume", int, 100, "volume", "percent of normal loudness"),
    Setting("speech", "audio_player", str, "", "audio_player", "command that plays WAV"),
    Setting("records", "db", Path, None, "db", "the records file (or postgresql://...)"),
    Setting("serve", "host", str, "127.0.0.1", "host", "the served console's address"),
    Setting("serve", "port", int, 8000, "port", "the served console's port"),
)
BY_NAME = {setting.name: setting for setting in SETTINGS}


@dataclass(frozen=True)
class Resolved:
    value: Any
    source: str  # "command line", "environment RETROTREAD_DEVICE", "<file>:<line>", "default"


def config_file() -> Path:
    return config_dir() / FILE_NAME


def _line_of(text: str, table: str, key: str) -> int | None:
    """The line a key is written on under ``[table]`` (tomllib does not say)."""
    current = ""
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[\s*([A-Za-z0-9_-]+)\s*\]", line)
        if header:
            current = header.group(1)
        elif current == table and re.match(rf"\s*{re.escape(key)}\s*=", line):
            return number
    return None


def _convert(setting: Setting, raw: Any, where: str) -> Any:
    if setting.kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        ):
            return raw.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where}: {setting.name} must be true or false, got {raw!r}")
    if setting.kind is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and re.fullmatch(r"-?\d{1,9}", raw.strip()):
            return int(raw)
        raise ConfigError(f"{where}: {setting.name} must be a whole number, got {raw!r}")
    if not isinstance(raw, str):
        raise ConfigError(f"{where}: {setting.name} must be text in quotes, got {raw!r}")
    return Path(raw).expanduser() if setting.kind is Path and "://" not in raw else raw


def read_file(path: Path) -> dict[str, Resolved]:
    """The settings the file sets, each with its file:line; unknown keys are mistakes."""
    try:
        if not path.is_file():
            if path.exists():
                raise ConfigError(f"{path}: not a regular file")
            return {}
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read it: {err.strerror or err}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB: not a settings file")
    try:
        text = data.decode("utf-8")
        parsed = tomllib.loads(text)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: {err}") from None
    found: dict[str, Resolved] = {}
    for table, values in parsed.items():
        if not isinstance(values, dict):
            line = _line_of(text, "", table)
            raise ConfigError(
                f"{path}:{line or 1}: '{table}' must be a [table]; known tables: "
                + ", ".join(sorted({s.table for s in SETTINGS}))
            )
        for key, raw in values.items():
            line = _line_of(text, table, key)
            where = f"{path}:{line}" if line else str(path)
            setting = BY_NAME.get(f"{table}.{key}")
            if setting is None:
                known = ", ".join(s.name for s in SETTINGS)
                raise ConfigError(f"{where}: unknown setting {table}.{key} (known: {known})")
            found[setting.name] = Resolved(_convert(setting, raw, where), where)
    return found


def read_environment(environ: Mapping[str, str]) -> dict[str, Resolved]:
    found: dict[str, Resolved] = {}
    for setting in SETTINGS:
        raw = environ.get(setting.env)
        if raw is not None and raw != "":
            where = f"environment {setting.env}"
            found[setting.name] = Resolved(_convert(setting, raw, where), where)
    return found


def effective(
    args: argparse.Namespace | None = None,
    environ: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> dict[str, Resolved]:
    """Every setting's value and its source: command line > environment > file > default."""
    values = {s.name: Resolved(s.default, "default") for s in SETTINGS}
    values.update(read_file(path or config_file()))
    values.update(read_environment(os.environ if environ is None else environ))
    if args is not None:
        for setting in SETTINGS:
            given = getattr(args, setting.dest, None)
            if given is not None and given is not False:
                values[setting.name] = Resolved(given, "command line")
    return values


def fill_from_settings(args: argparse.Namespace, *, skip: tuple[str, ...] = ()) -> None:
    """Give every option the command line left unset its value from the environment or file.
    Options this command does not have (or ``skip``) stay as they are."""
    values = effective(args)
    for setting in SETTINGS:
        if setting.dest in skip:
            continue
        if hasattr(args, setting.dest) and getattr(args, setting.dest) in (None, False):
            setattr(args, setting.dest, values[setting.name].value)


# -- `retrotread config` --------------------------------------------------------------------------


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "config",
        help="show the settings in effect and where each comes from, or set one",
        description="Show every setting, its value and its source (command line > "
        "environment > settings file > default), or write one to the settings file with "
        "`config set NAME VALUE` (e.g. `retrotread config set device.url "
        "csafe:///dev/ttyUSB0`).",
    )
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION")
    set_parser = actions.add_parser("set", help="write a setting to the settings file")
    set_parser.add_argument("name", choices=[s.name for s in SETTINGS], metavar="NAME")
    set_parser.add_argument("value", metavar="VALUE")
    unset = actions.add_parser("unset", help="remove a setting from the settings file")
    unset.add_argument("name", choices=[s.name for s in SETTINGS], metavar="NAME")


def cmd_config(args: argparse.Namespace) -> int:
    path = config_file()
    if args.config_command in ("set", "unset"):
        return _change(path, args.name, args.value if args.config_command == "set" else None)
    values = effective()
    state = "" if path.exists() else " (not there yet: `retrotread config set` writes it)"
    print(f"settings file: {path}{state}")
    width = max(len(s.name) for s in SETTINGS)
    for setting in SETTINGS:
        resolved = values[setting.name]
        shown = "—" if resolved.value is None else str(resolved.value)
        print(f"  {setting.name:<{width}}  {shown:<28}  {resolved.source}")
    print("environment variables: " + ", ".join(s.env for s in SETTINGS))
    return 0


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return toml_string(str(value))


def _change(path: Path, name: str, raw: str | None) -> int:
    setting = BY_NAME[name]
    current = {k: v.value for k, v in read_file(path).items()}
    if raw is None:
        current.pop(name, None)
    else:
        current[name] = _convert(setting, raw, f"config set {name}")
    lines = ["# retrotread settings (`retrotread config` shows what is in effect)"]
    for table in dict.fromkeys(s.table for s in SETTINGS):
        keys = [s for s in SETTINGS if s.table == table and s.name in current]
        if keys:
            lines += ["", f"[{table}]"]
            lines += [f"{s.key} = {_toml_value(current[s.name])}" for s in keys]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".new")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    temporary.replace(path)
    print(f"{name} {'removed' if raw is None else f'= {current[name]}'} in {path}")
    return 0
