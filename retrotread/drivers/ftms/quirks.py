"""What real FTMS treadmills need beyond FTMS 1.0: each quirk a profile option
(:class:`~retrotread.profiles.Quirks`), each handled by one mechanism, never by model.

Where each mechanism lives (docs/ftms.md, "Quirks", has the machines and sources):

========================================  ===============================================
option                                    mechanism
========================================  ===============================================
``speed_field_mph``                       targets quantized and written in 0.01 mph
                                          (:attr:`FtmsCore._speed_field`)
``telemetry_speed_mph``                   :func:`speed_reading`
``request_control_each_command``,         :func:`.procedures.preamble`, run before the
``start_each_command``                    command under the same lock
``request_control_again_s``               ``QuirkHandling._request_control_at_connect``
``start_keepalive_s``,                    :meth:`.quirk_link.QuirkHandling._watch` (one timer loop)
``silence_means_stopped_s``,
``elapsed_frozen_means_stopped_s``        (a moving belt whose elapsed time stands still reads
                                          zero: :meth:`Reports._publish_reading`)
``unlock_write``                          :meth:`.quirk_link.QuirkHandling._unlock`, before
                                          Request Control; its service discovered by
                                          :func:`.unlock.every_service_discovered`
``incline_step``                          the governor's incline grid (retrotread.safety)
``ranges_from_profile``, ``incline_table``  :func:`capabilities`
``incline_table``                         :func:`incline_wire`, :func:`incline_reading`
``incline_unreported``                    :func:`incline_reading` (our set value echoed,
                                          marked ``Telemetry.incline_echoed``)
``zero_speed_debounce_s``                 :meth:`Reports._publish_reading` holds a lone zero
``start_handshake``                       :meth:`.quirk_link.QuirkHandling._start_with_handshake`
``min_command_interval_s``                :meth:`ControlPoint._send` spaces the writes
``read_only``                             commands refused with what to do at the console
========================================  ===============================================
"""

from __future__ import annotations

import itertools
from fractions import Fraction

from retrotread.drivers.base import Capabilities, Range
from retrotread.profiles import Profile
from retrotread.profiles import Quirks as ProfileQuirks
from retrotread.units import Increment, Quantity, Unit, percent


def speed_reading(value: float, quirks: ProfileQuirks) -> Quantity:
    """Treadmill Data's speed field (pyftms gives it as hundredths) in its true unit."""
    unit = Unit.MPH if quirks.telemetry_speed_mph else Unit.KMH
    return Quantity(Fraction(round(value * 100), 100), unit)


def incline_wire(incline: Quantity, quirks: ProfileQuirks) -> int | None:
    """The table's wire value for an incline (None: the machine takes 0.1 % units)."""
    table = quirks.incline_table
    if not table:
        return None
    pct = float(incline.value)
    return min(table, key=lambda entry: abs(entry[0] - pct))[1]


def incline_reading(value: float | None, sent: Quantity | None, quirks: ProfileQuirks) -> Quantity:
    """Treadmill Data's incline (pyftms gives it in percent, 0.1 % units on the wire)."""
    if quirks.incline_unreported or value is None:
        # Never reported: the value we set is all there is (0 until one is set).
        return sent if sent is not None else percent(0)
    wire = round(value * 10)
    if quirks.incline_table:
        pct, _ = min(quirks.incline_table, key=lambda entry: abs(entry[1] - wire))
        return percent(Fraction(pct).limit_denominator(100))
    return percent(Fraction(wire, 10))


def capabilities(declared: Capabilities, profile: Profile) -> Capabilities:
    """What the machine takes: what it declares, unless the profile knows better."""
    quirks = profile.quirks
    speed, incline = declared.speed, declared.incline
    if quirks.ranges_from_profile:
        # Its declared ranges are wrong (a decline it has but does not declare, a minimum
        # below which it drops requests): the profile's ranges stand.
        spec = profile.speed
        speed = Range(spec.min, spec.max, spec.increment)
        if quirks.speed_field_mph:
            speed = Range(speed.low, speed.high, declared.speed.increment)
        incline = Range(profile.incline.min, profile.incline.max, profile.incline.increment)
    if quirks.incline_table:
        points = sorted(Fraction(pct).limit_denominator(100) for pct, _ in quirks.incline_table)
        step = min((b - a for a, b in itertools.pairwise(points)), default=Fraction(1))
        incline = Range(percent(points[0]), percent(points[-1]), Increment(step, Unit.PERCENT))
    return Capabilities(speed, incline, declared.can_control and not quirks.read_only)
