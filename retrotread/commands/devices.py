"""``retrotread devices``: the device profiles and URL schemes, and where each comes from."""

from __future__ import annotations

import sys
from typing import TextIO

from retrotread.drivers.registry import (
    BUILT_IN,
    DriverEntry,
    driver_entries,
    shadowed_entries,
)
from retrotread.errors import RetrotreadError
from retrotread.extras import OPTIONAL
from retrotread.profiles import BUNDLED, ProfileFile, profile_catalogue, user_profile_dir

EXIT_OK = 0
EXIT_PROBLEMS = 2  # some user profile or driver could not be read (the rest are listed)


def grammar_of(entry: DriverEntry) -> str:
    """The scheme's URL grammar, or why it cannot be used here (nothing is connected)."""
    if not entry.available and entry.extra is not None:
        return f"{entry.scheme}://...  (not installed: {OPTIONAL[entry.extra].install})"
    return entry.load().url_grammar


def cmd_devices(out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    status = EXIT_OK
    catalogue = profile_catalogue()
    width = max((len(found.profile.name) for found in catalogue.files), default=0)
    bundled = [found for found in catalogue.files if found.source == BUNDLED]
    yours = [found for found in catalogue.files if found.source != BUNDLED]
    print("Device profiles, bundled:", file=out)
    for found in bundled:
        print(_profile_line(found, width), file=out)
    print(f"\nYour device profiles ({user_profile_dir()}/*.toml):", file=out)
    for found in yours:
        replaces = "  (replaces the bundled one)" if found.overrides_bundled else ""
        print(f"{_profile_line(found, width)}{replaces}", file=out)
        print(f"  {'':<{width}}  from {found.source}", file=out)
    if not yours and not catalogue.problems:
        print("  none", file=out)
    for problem in catalogue.problems:
        print(f"retrotread: device profile not read: {problem.message}", file=err)
        status = EXIT_PROBLEMS

    print("\nDevice URLs:", file=out)
    for entry in driver_entries().values():
        try:
            grammar = grammar_of(entry)
        except RetrotreadError as problem:  # a third-party driver that does not load
            print(f"retrotread: {problem}", file=err)
            status = EXIT_PROBLEMS
            continue
        origin = "" if entry.origin == BUILT_IN else f"  (from {entry.origin})"
        print(f"  {grammar}{origin}", file=out)
    for entry in shadowed_entries():
        print(
            f"retrotread: {entry.scheme}:// from {entry.origin} ({entry.target}) is not used: "
            "the scheme is taken",
            file=err,
        )
    return status


def _profile_line(found: ProfileFile, width: int) -> str:
    profile = found.profile
    line = f"  {profile.name:<{width}}  {profile.protocol:<11}  {profile.description}"
    if profile.models:  # a real-model profile: which machines, by which names, from where
        names = ", ".join(profile.match) or "chosen by name (?profile=)"
        line += (
            f"\n  {'':<{width}}  {'':<11}  models: {profile.models}; names: {names}; "
            f"source: {profile.sources}"
        )
    return line
