"""CSV: one row per telemetry sample, with the block it belongs to."""

from __future__ import annotations

import csv
import io

from retrotread.export.common import ExportData, iso_utc
from retrotread.units import KMH_PER_MPH

COLUMNS = (
    "time_utc",
    "offset_s",
    "block",
    "kind",
    "title",
    "handrail",
    "target_mph",
    "speed_mph",
    "speed_kmh",
    "incline_pct",
    "distance_m",
)


def render_csv(data: ExportData) -> bytes:
    blocks = {lap.block.idx: lap.block for lap in data.laps}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for sample in data.samples:
        block = blocks.get(sample.block_idx) if sample.block_idx is not None else None
        writer.writerow(
            [
                iso_utc(sample.at),
                f"{sample.offset_s:.1f}",
                "" if block is None else block.idx + 1,
                "" if block is None else block.kind,
                "" if block is None else block.title,
                "" if block is None else block.handrail,
                "" if sample.target_mph is None else f"{sample.target_mph:.2f}",
                f"{sample.speed_mph:.2f}",
                f"{sample.speed_mph * float(KMH_PER_MPH):.2f}",
                f"{sample.incline_pct:.1f}",
                f"{data.distance(sample):.1f}",
            ]
        )
    return out.getvalue().encode("utf-8")
