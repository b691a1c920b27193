"""The floor's command line: the options a console takes to join the floor (``run`` and
``tui``), and ``retrotread floor`` itself. Textual loads only when the floor opens."""

from __future__ import annotations

import argparse
from typing import Any

from retrotread.errors import RetrotreadError
from retrotread.options import FloorOptions

FLOOR_DESCRIPTION = """Every console on an MQTT broker, one tile each: block, countdown, target
against actual speed, client, link and faults; stale tiles marked. Select one to see it large.
STOP the selected console with s; STOP ALL with A, then type STOP ALL (Enter alone never
confirms). Consoles accept the floor's commands when they share its --floor-secret (or trust
their broker's ACL: --floor-trust-broker). With --serve, the floor is served to web
browsers instead, like `retrotread tui --serve`. See docs/floor.md."""

FLOOR_KEYS = """keys:
  arrows, tab  select a console        enter  see it large (escape: back)
  s            STOP the selected one   p      pause the selected one
  A            STOP ALL (type STOP ALL to confirm)                q  quit"""


def add_floor_options(parser: argparse.ArgumentParser) -> None:
    """A console's options for the floor (``run``, ``tui``)."""
    group = parser.add_argument_group("the gym floor (MQTT; docs/floor.md)")
    group.add_argument(
        "--mqtt",
        metavar="URL",
        help="publish this console to a broker: mqtt://[user:pass@]host[:port], mqtts:// for "
        "TLS (password also from RETROTREAD_MQTT_PASSWORD)",
    )
    group.add_argument(
        "--console-id", metavar="ID", help="this console's name on the floor (default: host name)"
    )
    group.add_argument(
        "--mqtt-client-name",
        choices=("full", "initials", "none"),
        default="none",
        help="what the floor sees of the client (default: none)",
    )
    group.add_argument(
        "--mqtt-discovery-prefix",
        default="homeassistant",
        metavar="PREFIX",
        help="Home Assistant discovery prefix ('' for none; default: homeassistant)",
    )
    _add_security(group)
    group.add_argument(
        "--floor-trust-broker",
        action="store_true",
        help="accept unsigned STOP and pause: the broker's ACL decides who may send them",
    )


def _add_security(group: Any) -> None:
    group.add_argument(
        "--floor-secret",
        metavar="FILE",
        help="shared secret (first line) that signs STOP and pause from the floor",
    )
    group.add_argument("--mqtt-ca", metavar="FILE", help="with mqtts://: the broker's CA")


def floor_options(args: argparse.Namespace) -> FloorOptions | None:
    """The console's floor settings, checked (None without ``--mqtt``)."""
    if not getattr(args, "mqtt", None):
        return None
    from retrotread.floor.auth import read_secret
    from retrotread.floor.broker import Broker
    from retrotread.floor.topics import check_console_id, default_console_id

    if getattr(args, "rehearse", False):
        raise RetrotreadError(
            "--mqtt with --rehearse: a rehearsal runs on the virtual clock, the floor does not"
        )
    Broker.from_url(args.mqtt, args.mqtt_ca)
    if args.floor_secret:
        read_secret(args.floor_secret)
    try:
        console_id = check_console_id(args.console_id or default_console_id())
    except ValueError as err:
        raise RetrotreadError(f"--console-id: {err}") from err
    return FloorOptions(
        broker=args.mqtt,
        console_id=console_id,
        client_name=args.mqtt_client_name,
        discovery_prefix=args.mqtt_discovery_prefix,
        secret_file=args.floor_secret,
        trust_broker=args.floor_trust_broker,
        ca_file=args.mqtt_ca,
    )


def add_floor_parser(commands: Any) -> None:
    """Register ``floor`` on the CLI's sub-command parsers."""
    floor = commands.add_parser(
        "floor",
        help="every console on an MQTT broker on one screen; STOP any or all",
        description=FLOOR_DESCRIPTION,
        epilog=FLOOR_KEYS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    floor.add_argument("--mqtt", required=True, metavar="URL", help="the floor's broker")
    _add_security(floor)
    floor.add_argument("--sender", metavar="NAME", help="who the consoles are told sent a command")
    floor.add_argument(
        "--stale-after",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="mark a tile stale after this long without its state (default: 5)",
    )
    from retrotread.web.options import add_serve_options

    add_serve_options(
        floor,
        about="the floor in web browsers, served like the console: the operator's page (the\n"
        "secret link printed at start, or --password-file) has STOP per tile and STOP ALL;\n"
        "the /view page is read-only.",
        serve_help="serve the floor to web browsers instead of showing it here",
    )


def cmd_floor(args: argparse.Namespace) -> int:
    import asyncio

    from retrotread.floor.auth import default_sender, read_secret
    from retrotread.floor.broker import Broker
    from retrotread.floor.watch import FloorWatcher

    if args.stale_after <= 0:
        raise RetrotreadError("--stale-after must be more than 0 seconds")
    watcher = FloorWatcher(
        Broker.from_url(args.mqtt, args.mqtt_ca),
        sender=args.sender or default_sender(),
        secret=read_secret(args.floor_secret) if args.floor_secret else None,
    )
    if args.serve:
        from retrotread.floor.web import serve_floor
        from retrotread.web.options import serve_options
        from retrotread.web.serve import ServeSettings

        settings = ServeSettings(serve_options(args))
        return serve_floor(watcher, settings, stale_after_s=args.stale_after)
    from retrotread.floor.app import FloorApp

    asyncio.run(FloorApp(watcher, stale_after_s=args.stale_after).run_async())
    return 0
