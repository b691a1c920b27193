"""What every export format needs from the records: the session, its laps and its samples."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from retrotread.store import BlockRecord, Sample, SessionRecord, Store, StoreError

METERS_PER_SECOND_PER_MPH = 0.44704


@dataclass(frozen=True)
class Lap:
    """One block as a lap: its samples (one per second) and its figures."""

    block: BlockRecord
    start: float  # wall clock
    samples: tuple[Sample, ...]
    distance_m: float  # from the end of the lap before to this lap's last sample

    @property
    def end(self) -> float:
        if self.samples:
            return max(self.samples[-1].at, self.start)
        return self.start + (self.block.actual_s or 0.0)

    @property
    def seconds(self) -> float:
        if self.block.actual_s is not None:
            return self.block.actual_s
        return self.end - self.start


@dataclass(frozen=True)
class ExportData:
    session: SessionRecord
    laps: tuple[Lap, ...]
    samples: tuple[Sample, ...]  # every sample, at most one per whole second
    distance_origin: float  # the machine's distance counter when the session started
    heart_rate: Mapping[int, int] = field(default_factory=dict)  # whole second -> bpm

    def bpm(self, sample: Sample) -> int | None:
        """The heart rate at ``sample`` (the strap's reading that second or the one before)."""
        second = int(sample.at)
        return self.heart_rate.get(second, self.heart_rate.get(second - 1))

    def distance(self, sample: Sample) -> float:
        """Metres since the session started (treadmills count from power-on)."""
        return max(0.0, sample.distance_m - self.distance_origin)

    @property
    def start(self) -> float:
        return self.session.started_at

    @property
    def end(self) -> float:
        ends = [self.session.ended_at or self.start]
        if self.samples:
            ends.append(self.samples[-1].at)
        return max(ends)

    @property
    def total_distance(self) -> float:
        return self.distance(self.samples[-1]) if self.samples else 0.0


def one_per_second(samples: list[Sample]) -> list[Sample]:
    """Keep the last sample of each whole second: FIT and most importers want distinct times."""
    kept: dict[int, Sample] = {}
    for sample in samples:
        kept[int(sample.at)] = sample
    return [kept[second] for second in sorted(kept)]


def load(store: Store, session_id: int) -> ExportData:
    session = store.session(session_id)
    samples = one_per_second(store.samples(session_id))
    blocks = store.blocks(session_id)
    if not blocks:
        raise StoreError(f"session #{session_id} has no blocks to export (it never started)")
    last = blocks[-1].idx
    origin = samples[0].distance_m if samples else 0.0
    # One pass over the samples (a 24 h session has ~86,400): each goes to its block's lap.
    # Samples after the program ended (the belt coming to a stop) belong to the last lap.
    by_block: dict[int, list[Sample]] = {}
    for sample in samples:
        index = last if sample.block_idx is None else sample.block_idx
        by_block.setdefault(index, []).append(sample)
    laps = []
    covered = origin
    for block in blocks:
        mine = tuple(by_block.get(block.idx, ()))
        reached = max(covered, mine[-1].distance_m) if mine else covered
        laps.append(Lap(block, block.started_at, mine, reached - covered))
        covered = reached
    from retrotread.clinic.records import heart_rate_by_second

    heart = heart_rate_by_second(store, session_id)
    return ExportData(session, tuple(laps), tuple(samples), origin, heart)


def iso_utc(at: float) -> str:
    """2025-03-05T10:00:00Z (TCX and most tools want UTC with a Z)."""
    moment = datetime.fromtimestamp(at, UTC)
    text = moment.isoformat(timespec="milliseconds" if at % 1 else "seconds")
    return text.replace("+00:00", "Z")


def meters_per_second(mph: float | None) -> float:
    return (mph or 0.0) * METERS_PER_SECOND_PER_MPH
