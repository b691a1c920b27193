"""A client's limits on the operator console: said before the go, enforced before the belt moves."""

from __future__ import annotations

from pathlib import Path

from retrotread.clinic import records
from retrotread.clinic.limits import ClientLimits
from retrotread.clinic.setup import console_start
from retrotread.recording import Recording
from retrotread.store import Store
from retrotread.vocabulary import Outcome
from tests.tui.console import console, machine, settle, until

SIZE = (100, 30)


async def test_the_console_refuses_a_program_over_the_clients_limits(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "records.sqlite3")
    ana = store.add_client("Ana")
    records.set_limits(store, ana, ClientLimits(longest_backward_s=5))
    app = console(on_session_start=console_start(Recording(store, ana)))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await until(pilot, lambda: app.last_summary is not None, "the session ended")
            summary = app.last_summary
            assert summary is not None and summary.outcome is Outcome.FAULT
            assert "longer than Ana's limit of 5 s" in summary.detail
            assert [c for c in machine(app).commands if c.name in ("start", "set-speed")] == []
            assert app.session is not None and app.session.caps is not None
    finally:
        store.close()
