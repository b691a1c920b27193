"""The ``ble://`` driver's parts, one job each (the driver itself: :mod:`..ftms_ble`).

* :mod:`.bluetooth` — is Bluetooth usable, and which FTMS machines are in range (scan);
* :mod:`.client` — pyftms's treadmill client, extended where its public API stops;
* :mod:`.units` — what the FTMS fields carry, and exact conversions to and from pyftms;
* :mod:`.core` — the state every part shares, and the time limits FTMS sets;
* :mod:`.procedures` — control point procedures: one at a time, answers, pairing, timeouts;
* :mod:`.telemetry` — Treadmill Data, Training Status and Machine Status become reports;
* :mod:`.quirks` — what real machines need beyond FTMS, each a profile option;
* :mod:`.quirk_link` — the quirk mechanisms that need the link (connect, Start, timers).
"""
