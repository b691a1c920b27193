"""``retrotread export``: where the file goes, which format it is, and what it never touches."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from retrotread.cli import main
from tests.test_store_cli import recorded_session


@pytest.fixture
def session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int]:
    """A recorded session in a records file of the test's own; the test runs in its folder."""
    db = str(tmp_path / "records.db")
    store, session_id = recorded_session(db)
    store.close()
    monkeypatch.chdir(tmp_path)
    return db, session_id


def export(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["export", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_dash_writes_to_stdout_and_creates_no_file(
    session: tuple[str, int], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db, number = session
    status, out, err = export(capsys, str(number), "-o", "-", "--db", db)
    assert status == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) > 60 and "speed_mph" in rows[0]
    status, out, _ = export(capsys, str(number), "-o", "-", "--format", "tcx", "--db", db)
    assert status == 0 and ET.fromstring(out).tag.endswith("TrainingCenterDatabase")
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["-o", "s.gpx"], "export writes .csv, .tcx, .fit, not .gpx"),
        (["-o", "s.csv", "--format", "fit"], "s.csv ends in .csv but --format is fit"),
        (["-o", "s.FIT", "--format", "tcx"], "s.FIT ends in .FIT but --format is tcx"),
    ],
)
def test_an_extension_that_names_no_format_or_another_is_an_error(
    session: tuple[str, int],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    arguments: list[str],
    complaint: str,
) -> None:
    db, number = session
    status, _, err = export(capsys, str(number), *arguments, "--db", db)
    assert status == 2 and complaint in err
    assert list(tmp_path.glob("s.*")) == []


def test_an_unknown_extension_with_an_explicit_format_is_written(
    session: tuple[str, int], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db, number = session
    status, out, _ = export(capsys, str(number), "-o", "s.txt", "--format", "csv", "--db", db)
    assert status == 0 and "(CSV)" in out
    assert (tmp_path / "s.txt").read_text().startswith("time")


def test_an_existing_file_is_replaced_only_with_force(
    session: tuple[str, int], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db, number = session
    kept = tmp_path / "s.csv"
    kept.write_text("the operator's notes\n")
    status, _, err = export(capsys, str(number), "-o", "s.csv", "--db", db)
    assert status == 2 and "s.csv exists" in err and "--force" in err
    assert kept.read_text() == "the operator's notes\n"
    status, _, err = export(capsys, str(number), "-o", "s.csv", "--force", "--db", db)
    assert status == 0, err
    assert kept.read_text().startswith("time")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".s.csv")] == []


def test_a_symbolic_link_is_never_followed(
    session: tuple[str, int], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db, number = session
    target = tmp_path / "elsewhere" / "important.txt"
    target.parent.mkdir()
    target.write_text("not an export\n")
    link = tmp_path / "s.tcx"
    link.symlink_to(target)
    status, _, err = export(capsys, str(number), "-o", "s.tcx", "--db", db)
    assert status == 2 and "s.tcx exists (a symbolic link)" in err
    dangling = tmp_path / "new.csv"
    dangling.symlink_to(tmp_path / "elsewhere" / "not-yet.csv")
    status, _, _ = export(capsys, str(number), "-o", "new.csv", "--db", db)
    assert status == 2 and not (tmp_path / "elsewhere" / "not-yet.csv").exists()
    status, _, err = export(capsys, str(number), "-o", "s.tcx", "--force", "--db", db)
    assert status == 0, err
    assert not link.is_symlink() and ET.parse(link).getroot().tag.endswith("Database")
    assert target.read_text() == "not an export\n"


def test_a_session_number_beyond_any_record_is_a_clear_error(
    session: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = session
    for number in ("99999999999999999999999", "0", "-3"):
        status, _, err = export(capsys, number, "--db", db)
        assert status == 2, (number, err)
        assert "internal error" not in err and f"no session #{int(number)}" in err
