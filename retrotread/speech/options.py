"""Speech settings on the command line: ``--mute``, ``--voice``, ``--speech-rate``,
``--volume``, ``--language``, ``--audio-player``; and the speaker for a headless run."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from retrotread.speech.engine import RATE_RANGE, VOLUME_RANGE, SpeechSettings, parse_player

if TYPE_CHECKING:  # the options build the command line; the speaker loads when a run speaks
    pass

DEFAULTS = SpeechSettings()


def add_speech_options(parser: Any, *, mute: bool = True) -> None:
    """The speech settings; ``mute=False`` where the parser has its own ``--mute``."""
    group = parser.add_argument_group(
        "spoken cues", "every cue is also spoken (espeak-ng), for a walker facing away"
    )
    if mute:
        group.add_argument("--mute", action="store_true", help="do not speak the cues")
    group.add_argument(
        "--language",
        default=None,
        metavar="LANG",
        help=f"espeak-ng language, e.g. en, en-gb, en-us (default: {DEFAULTS.language})",
    )
    group.add_argument(
        "--voice", default=None, metavar="VARIANT", help="espeak-ng voice, e.g. f3, m1"
    )
    group.add_argument(
        "--speech-rate",
        type=int,
        default=None,
        metavar="WPM",
        help=f"words per minute, {RATE_RANGE[0]}–{RATE_RANGE[1]} (default: {DEFAULTS.rate_wpm})",
    )
    group.add_argument(
        "--volume",
        type=int,
        default=None,
        metavar="PERCENT",
        help=f"{VOLUME_RANGE[0]}–{VOLUME_RANGE[1]} %% of normal loudness (default: 100)",
    )
    group.add_argument(
        "--audio-player",
        default=None,
        metavar="CMD",
        help="play speech through CMD reading WAV on stdin (e.g. 'aplay -q', 'paplay') "
        "instead of espeak-ng's own audio output",
    )


def settings_from_args(args: argparse.Namespace) -> SpeechSettings:
    """Raises :class:`~retrotread.errors.SpeechError` on a bad value (a usage error)."""

    def given(name: str, default: Any) -> Any:
        value = getattr(args, name, None)
        return default if value is None else value

    player = given("audio_player", "")
    return SpeechSettings(
        language=given("language", DEFAULTS.language),
        voice=given("voice", DEFAULTS.voice),
        rate_wpm=given("speech_rate", DEFAULTS.rate_wpm),
        volume=given("volume", DEFAULTS.volume),
        player=parse_player(player) if player else (),
    )


def print_notice(message: str) -> None:
    print(f"retrotread: {message}", file=sys.stderr, flush=True)
