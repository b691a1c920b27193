"""Exports round-trip: CSV read back with the csv module, TCX with tcxreader, FIT with fitdecode.

The FIT file is written with Garmin's SDK and read with fitdecode, an independent decoder that
checks the file's CRCs; the TCX file is written with ElementTree and read with tcxreader.
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fitdecode
import pytest
from tcxreader.tcxreader import TCXReader

from retrotread.clock import LoopClock, run
from retrotread.drivers.registry import open_treadmill
from retrotread.export import Format, export_session, load, render, tcx
from retrotread.export.common import (
    METERS_PER_SECOND_PER_MPH,
    ExportData,
    iso_utc,
    meters_per_second,
)
from retrotread.export.fit import render_fit
from retrotread.export.table import COLUMNS
from retrotread.program import Program, find_program
from retrotread.progression import OperatorOutcome
from retrotread.session import Session
from retrotread.store import Sample, SessionRecorder, Status, Store, StoreError

RETRO_MPS = 2.6 * METERS_PER_SECOND_PER_MPH
#: a retro block's samples are counted back this far from its end to read its own speed: over
#: its last 3 s (the 3-2-1) the belt slows for the turn-around that follows
BEFORE_THE_TURN = 5


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "records.sqlite3")
    yield opened
    opened.close()


def record(store: Store, program: Program) -> int:
    client = store.find_client("Ana") or store.add_client("Ana")

    async def main() -> int | None:
        clock = LoopClock()
        session = Session(program, open_treadmill("sim://", clock=clock), clock, unattended=True)
        recorder = SessionRecorder(store, session, client=client)
        session.subscribe(recorder)
        await session.run()
        return recorder.session_id

    session_id = run(main(), virtual=True)
    assert session_id is not None
    store.record_outcome(session_id, OperatorOutcome.COMPLETED, "steady, no pain")
    return session_id


@pytest.fixture
def first_week(store: Store) -> int:
    return record(store, find_program("first-week"))


def fit_messages(path: Path) -> dict[str, list[dict[str, Any]]]:
    messages: dict[str, list[dict[str, Any]]] = {}
    with fitdecode.FitReader(str(path), check_crc=fitdecode.CrcCheck.RAISE) as reader:
        for frame in reader:
            if isinstance(frame, fitdecode.FitDataMessage):
                fields = {f.name: f.value for f in frame.fields}
                messages.setdefault(frame.name, []).append(fields)
    return messages


def test_csv_has_one_row_a_second_with_its_block(store: Store, first_week: int) -> None:
    data = load(store, first_week)
    text = render(data, Format.CSV).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) == len(data.samples)
    seconds = [int(float(r["offset_s"])) for r in rows]
    assert seconds == sorted(set(seconds))  # distinct, increasing
    retro = [r for r in rows if r["kind"] == "retro"]
    assert retro[0]["title"] == "Retro walk (1/6)" and retro[0]["handrail"] == "both-hands"
    settled = retro[-BEFORE_THE_TURN]  # the belt slows for the turn over the last 3 s
    assert float(settled["target_mph"]) == pytest.approx(2.6, abs=0.01)
    assert float(settled["speed_kmh"]) == pytest.approx(float(settled["speed_mph"]) * 1.609, 0.01)
    distances = [float(r["distance_m"]) for r in rows]
    assert distances == sorted(distances) and distances[0] == 0
    assert distances[-1] == pytest.approx(store.session(first_week).distance_m, abs=0.1)
    assert rows[-1]["speed_mph"] == "0.00"  # the belt came to a stop
    assert rows[0]["time_utc"].endswith("Z")


def test_tcx_reads_back_with_tcxreader(store: Store, first_week: int, tmp_path: Path) -> None:
    path = export_session(store, first_week, Format.TCX, tmp_path / "session.tcx")
    data = load(store, first_week)
    exercise = TCXReader().read(str(path), only_gps=False)
    assert exercise.activity_type == "Other"
    assert len(exercise.laps) == len(data.laps) == 26
    assert len(exercise.trackpoints) == len(data.samples)
    times = [p.time for p in exercise.trackpoints]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert exercise.trackpoints[-1].distance == pytest.approx(data.total_distance, abs=0.1)
    assert sum(lap.distance for lap in exercise.laps) == pytest.approx(data.total_distance, abs=2)
    retro_lap = exercise.laps[2]
    assert retro_lap.duration == pytest.approx(20, abs=1)
    speeds = [p.tpx_ext["Speed"] for p in retro_lap.trackpoints]
    assert speeds[-BEFORE_THE_TURN] == pytest.approx(RETRO_MPS, abs=0.03)
    assert exercise.duration == pytest.approx(store.session(first_week).elapsed_s, abs=5)


# The element order TrainingCenterDatabasev2.xsd requires inside a Lap and a Trackpoint
LAP_ORDER = [
    "TotalTimeSeconds",
    "DistanceMeters",
    "MaximumSpeed",
    "Calories",
    "AverageHeartRateBpm",
    "MaximumHeartRateBpm",
    "Intensity",
    "Cadence",
    "TriggerMethod",
    "Track",
    "Notes",
    "Extensions",
]
TRACKPOINT_ORDER = [
    "Time",
    "Position",
    "AltitudeMeters",
    "DistanceMeters",
    "HeartRateBpm",
    "Cadence",
    "SensorState",
    "Extensions",
]
ACTIVITY_ORDER = ["Id", "Lap", "Notes", "Training", "Creator", "Extensions"]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _in_order(element: ET.Element, order: list[str]) -> bool:
    positions = [order.index(_local(child.tag)) for child in element]
    return positions == sorted(positions)


def test_tcx_follows_the_schema_element_order(store: Store, first_week: int) -> None:
    root = ET.fromstring(render(load(store, first_week), Format.TCX))
    ns = {"t": "http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2"}
    activity = root.find("t:Activities/t:Activity", ns)
    assert activity is not None and _in_order(activity, ACTIVITY_ORDER)
    laps = activity.findall("t:Lap", ns)
    assert all(_in_order(lap, LAP_ORDER) for lap in laps)
    points = root.findall(".//t:Trackpoint", ns)
    assert points and all(_in_order(point, TRACKPOINT_ORDER) for point in points)
    assert {lap.findtext("t:Intensity", namespaces=ns) for lap in laps} == {"Active", "Resting"}
    notes = activity.findtext("t:Notes", namespaces=ns) or ""
    assert "first-week for Ana" in notes and "steady, no pain" in notes


def test_fit_reads_back_with_fitdecode(store: Store, first_week: int, tmp_path: Path) -> None:
    path = export_session(store, first_week, Format.FIT, tmp_path / "session.fit")
    data = load(store, first_week)
    messages = fit_messages(path)
    assert messages["file_id"][0]["type"] == "activity"
    (session,) = messages["session"]
    assert (session["sport"], session["sub_sport"]) == ("walking", "indoor_walking")
    assert session["num_laps"] == len(messages["lap"]) == 26
    assert session["total_distance"] == pytest.approx(data.total_distance, abs=0.01)
    assert session["total_timer_time"] == pytest.approx(store.session(first_week).elapsed_s)
    (activity,) = messages["activity"]
    assert activity["num_sessions"] == 1
    records = messages["record"]
    assert len(records) == len(data.samples)
    stamps = [r["timestamp"] for r in records]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert int(stamps[0].timestamp()) == int(data.samples[0].at)
    distances = [r["distance"] for r in records]
    assert distances == sorted(distances)
    assert distances[-1] == pytest.approx(data.total_distance, abs=0.01)
    lap = messages["lap"][2]
    assert lap["intensity"] == "interval"
    assert lap["total_timer_time"] == pytest.approx(20)
    retro = [r for r in records if lap["start_time"] <= r["timestamp"] <= lap["timestamp"]]
    assert retro[-BEFORE_THE_TURN]["enhanced_speed"] == pytest.approx(RETRO_MPS, abs=0.01)
    assert retro[-1]["grade"] == pytest.approx(2.0)
    assert [m["event_type"] for m in messages["event"]] == ["start", "stop_all"]


def test_a_retro_run_session_is_running_on_a_treadmill(store: Store, tmp_path: Path) -> None:
    session_id = record(store, find_program("retro-run-starter"))
    messages = fit_messages(export_session(store, session_id, Format.FIT, tmp_path / "run.fit"))
    session = messages["session"][0]
    assert (session["sport"], session["sub_sport"]) == ("running", "treadmill")


def test_an_interrupted_session_exports_what_was_recorded(store: Store, tmp_path: Path) -> None:
    client = store.add_client("Ben")
    program = find_program("first-week")
    session_id = record(store, program)
    # rebuild it as a session cut off at 100 s: rows as a killed process leaves them
    samples = [s for s in store.samples(session_id) if s.offset_s <= 100]
    cut = store.begin_session(
        client=client, program=program, device="sim", started_at=samples[0].at
    )
    for block in store.blocks(session_id)[:1]:
        store.begin_block(cut, block)
    store.db.execute(
        "UPDATE blocks SET result = 'running', actual_s = NULL WHERE session_id = ?", (cut,)
    )
    for sample in samples:
        store.add_sample(cut, sample)
    store.db.execute("UPDATE sessions SET pid = -1 WHERE id = ?", (cut,))
    store.mark_interrupted()
    assert store.session(cut).status is Status.INTERRUPTED
    messages = fit_messages(export_session(store, cut, Format.FIT, tmp_path / "cut.fit"))
    assert len(messages["record"]) == len(load(store, cut).samples)
    assert messages["lap"][0]["total_timer_time"] == pytest.approx(100, abs=1)
    exercise = TCXReader().read(
        str(export_session(store, cut, Format.TCX, tmp_path / "cut.tcx")), only_gps=False
    )
    assert len(exercise.trackpoints) == len(load(store, cut).samples)


def test_a_session_that_never_started_has_nothing_to_export(store: Store) -> None:
    program = find_program("first-week")
    empty = store.begin_session(client=None, program=program, device="sim", started_at=0.0)
    with pytest.raises(StoreError, match="no blocks"):
        load(store, empty)


def test_distance_counts_from_the_start_of_the_session(store: Store, first_week: int) -> None:
    """Treadmills count distance from power-on: exports start at zero."""
    session = store.session(first_week)
    shifted = store.begin_session(
        client=None, program=find_program("first-week"), device="sim", started_at=session.started_at
    )
    for block in store.blocks(first_week):
        store.begin_block(shifted, block)
    for sample in store.samples(first_week):
        moved = Sample(**{**sample.__dict__, "distance_m": sample.distance_m + 5000})
        store.add_sample(shifted, moved)
    data = load(store, shifted)
    assert data.total_distance == pytest.approx(load(store, first_week).total_distance)
    rows = list(csv.DictReader(io.StringIO(render(data, Format.CSV).decode())))
    assert float(rows[0]["distance_m"]) == 0


def test_laps_take_the_same_samples_as_a_scan_per_block(store: Store, first_week: int) -> None:
    """Samples are grouped in one pass; each lap holds exactly what a scan per block finds
    (its own samples in time order, and those after the program ended in the last lap)."""
    data = load(store, first_week)
    last = data.laps[-1].block.idx
    assert any(s.block_idx is None for s in data.samples)  # the belt coming to a stop
    for lap in data.laps:
        scanned = tuple(
            s
            for s in data.samples
            if s.block_idx == lap.block.idx or (lap.block.idx == last and s.block_idx is None)
        )
        assert lap.samples == scanned
    assert sum(len(lap.samples) for lap in data.laps) == len(data.samples)


def reference_tcx(data: ExportData) -> bytes:
    """The TCX file written with ElementTree alone, trackpoints included (the template for
    trackpoints must give exactly these bytes)."""
    root = ET.fromstring(render(data, Format.TCX))
    for track in root.iter(f"{{{tcx.TCD}}}Track"):
        track.clear()
    laps = list(root.iter(f"{{{tcx.TCD}}}Lap"))
    with_samples = [lap for lap in data.laps if lap.samples]
    tracks = [element.find(f"{{{tcx.TCD}}}Track") for element in laps]
    for track, lap in zip([t for t in tracks if t is not None], with_samples, strict=True):
        for sample in lap.samples:
            point = ET.SubElement(track, f"{{{tcx.TCD}}}Trackpoint")
            ET.SubElement(point, f"{{{tcx.TCD}}}Time").text = iso_utc(sample.at)
            distance = ET.SubElement(point, f"{{{tcx.TCD}}}DistanceMeters")
            distance.text = f"{data.distance(sample):.1f}"
            extensions = ET.SubElement(point, f"{{{tcx.TCD}}}Extensions")
            tpx = ET.SubElement(extensions, f"{{{tcx.AX}}}TPX")
            speed = ET.SubElement(tpx, f"{{{tcx.AX}}}Speed")
            speed.text = f"{meters_per_second(sample.speed_mph):.3f}"
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="UTF-8", xml_declaration=True)
    return body + b"\n"


def test_tcx_trackpoints_are_what_elementtree_writes(store: Store, first_week: int) -> None:
    data = load(store, first_week)
    assert render(data, Format.TCX) == reference_tcx(data)


def test_fit_records_are_what_the_sdk_writes(store: Store, first_week: int) -> None:
    """Records after the first are packed with the SDK's own layout: the same bytes."""
    data = load(store, first_week)
    fast = render_fit(data)
    assert fast == render_fit(data, fast_records=False)
