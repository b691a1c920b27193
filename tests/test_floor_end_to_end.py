"""Ten simulated treadmills on a real Mosquitto, each with its own program and client, all on
``retrotread floor`` (through Pilot): one stopped from its tile, the rest with STOP ALL; every
belt stopped as the simulator reports it, every stop recorded with who sent it — the ten
sessions in one PostgreSQL database (a real server), each with its floor STOP."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

from retrotread.drivers.registry import open_treadmill
from retrotread.drivers.sim import SimDriver
from retrotread.events import Event, Notice
from retrotread.floor.app import FloorApp, StopAllScreen, TileView
from retrotread.floor.auth import read_secret
from retrotread.floor.broker import Broker
from retrotread.floor.publisher import FloorLink
from retrotread.floor.watch import FloorWatcher
from retrotread.options import FloorOptions
from retrotread.program import builtin_programs
from retrotread.recording import Recording
from retrotread.session import Session
from retrotread.store import Store
from retrotread.vocabulary import Outcome, StopReason
from tests import pg_support
from tests.mqtt_support import Mosquitto, ScaledClock, mosquitto

__all__ = ["mosquitto"]
pg_server = pg_support.pg_server
pg_url = pg_support.pg_url

CONSOLES = 10
SCALE = 10.0
CLIENTS = [
    "Ann Lee",
    "Bo Chen",
    "Cy Dunn",
    "Di Ekk",
    "Ed Fox",
    "Flo Gray",
    "Gus Hart",
    "Hal Ives",
    "Ida Jo",
    "Jo Kim",
]


async def until(pilot: Pilot[Any], check: Any, what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


async def test_ten_consoles_on_the_floor_each_stoppable(
    mosquitto: Mosquitto, tmp_path: Path, pg_url: str
) -> None:
    secret = tmp_path / "floor.secret"
    secret.write_text("a-floor-secret-for-this-test-only\n")
    programs = builtin_programs()
    clock = ScaledClock(SCALE)
    consoles: list[tuple[Session, SimDriver, list[Event], FloorLink, asyncio.Task[Any]]] = []
    recordings: list[Recording] = []
    with Store.open(pg_url) as desk:  # the front desk adds the day's clients
        for name in CLIENTS:
            desk.add_client(name)
    watcher = FloorWatcher(
        Broker.from_url(mosquitto.url), sender="front desk", secret=read_secret(secret)
    )
    app = FloorApp(watcher, stale_after_s=5.0)
    async with app.run_test(size=(160, 60)) as pilot:
        for n in range(CONSOLES):
            driver = open_treadmill("sim://", clock=clock)
            assert isinstance(driver, SimDriver)
            session = Session(programs[n % len(programs)], driver, clock, unattended=True)
            events: list[Event] = []
            session.subscribe(events.append)
            link = FloorLink(
                FloorOptions(
                    broker=mosquitto.url,
                    console_id=f"tm-{n:02d}",
                    client_name="full" if n % 2 else "initials",
                    secret_file=str(secret),
                ),
                client_name=CLIENTS[n],
            )
            link.attach(session)
            store = Store.open(pg_url, spool=tmp_path / f"spool-{n}.sqlite3")
            recording = Recording(store, store.client(CLIENTS[n]))
            recording.attach(session)
            recordings.append(recording)
            consoles.append((session, driver, events, link, asyncio.create_task(session.run())))

        def live() -> int:
            return sum(
                1
                for t in watcher.tiles.values()
                if t.state and (t.state.get("actual_speed_mph") or 0) > 0.5 and t.heard_at
            )

        await until(pilot, lambda: live() == CONSOLES, "ten belts moving on the floor")
        await app.refresh_tiles()
        tiles = {w.console_id: str(w.render()) for w in app.query(TileView)}
        assert len(tiles) == CONSOLES
        assert "Bo Chen" in tiles["tm-01"] and "A.L." in tiles["tm-00"]
        assert programs[3].name in tiles["tm-03"]

        # STOP one from its tile
        app.query_one("#tile-tm-03", TileView).focus()
        await pilot.press("s")
        session3, driver3, events3, _, task3 = consoles[3]
        await until(pilot, task3.done, "tm-03's session to end")
        summary3 = task3.result()
        assert summary3.outcome is Outcome.STOPPED and summary3.reason is StopReason.OPERATOR
        assert "front desk" in summary3.detail
        assert summary3.belt_stopped and driver3.machine is not None
        assert driver3.machine.belt_stopped
        assert all(not t.done() for i, (*_, t) in enumerate(consoles) if i != 3)

        # STOP ALL, typed out
        await pilot.press("A")
        await until(pilot, lambda: isinstance(app.screen, StopAllScreen), "the question")
        await pilot.press("enter")  # Enter alone confirms nothing
        await pilot.pause(0.3)
        assert all(not t.done() for i, (*_, t) in enumerate(consoles) if i != 3)
        # the words typed out (key by key in test_floor_app: each simulated key waits for a
        # quiet process, and ten sessions keep this one busy)
        app.screen.query_one("#words", Input).value = "STOP ALL"
        await pilot.press("enter")
        await until(pilot, lambda: all(t.done() for *_, t in consoles), "every session to end")
        await until(
            pilot,
            lambda: all((t.state or {}).get("ended") for t in watcher.tiles.values()),
            "every tile to show its end",
        )
    for _session, driver, events, link, task in consoles:
        summary = task.result()
        assert summary.outcome is Outcome.STOPPED, summary
        assert summary.belt_stopped and driver.machine is not None and driver.machine.belt_stopped
        notices = [e.message for e in events if type(e) is Notice]
        assert "STOP from the floor, sent by front desk" in notices
        assert link.dropped == 0
        await link.close()
    for recording, (*_, task) in zip(recordings, consoles, strict=True):
        await asyncio.to_thread(recording.conclude, task.result(), ask=False)
    with Store.open(pg_url) as desk:
        recorded = desk.sessions(None)
        assert sorted(r.client or "" for r in recorded) == sorted(CLIENTS)
        for record in recorded:
            assert record.status.value == "stopped", record
            said = [e.detail for e in desk.events(record.id)]
            assert any("STOP from the floor, sent by front desk" in d for d in said), said
