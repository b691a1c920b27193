"""``retrotread tui PROGRAM --serve`` lets in only whom it should: raw websockets (aiohttp's
client, which can forge what a browser cannot) against the real serving process, with the
simulator's journal as the witness of what reached the belt.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from retrotread.web.access import PASSWORD_FAILURES_PER_MINUTE
from tests.tui.served import Served, children, group_alive, rss_kib, serve

__all__ = ["serve"]

WALKER_KEYS = {
    "type",
    "phase",
    "remaining_s",
    "counting",
    "handrail",
    "turn",
    "headline",
    "detail",
    "call",
    "count",  # the 3-2-1 in the big digits
    "hint",  # "ready" before the go, in the server's words
    "version",
}


async def _next_json(ws: aiohttp.ClientWebSocketResponse, wait_s: float = 10.0) -> Any:
    message = await ws.receive(timeout=wait_s)
    assert message.type is aiohttp.WSMsgType.TEXT, (message.type, message.data)
    return message.json()


async def _until_closed(ws: aiohttp.ClientWebSocketResponse, wait_s: float = 10.0) -> int | None:
    """Read until the server closes the socket; returns its close code."""
    deadline = time.monotonic() + wait_s
    seen: list[str] = []  # what arrived instead, for the failure message
    while time.monotonic() < deadline:
        try:
            message = await ws.receive(timeout=deadline - time.monotonic())
        except TimeoutError:
            break
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return ws.close_code
        seen.append(f"{message.type.name}: {str(message.data)[:120]}")
    raise AssertionError(f"the server kept the socket open; received instead: {seen}")


async def _operator(
    client: aiohttp.ClientSession, served: Served, **hello: str
) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect(f"{served.ws_base}/ws/operator", origin=served.base)
    await ws.send_json({"type": "hello", **hello})
    return ws


async def _state(ws: aiohttp.ClientWebSocketResponse, phase: str) -> dict[str, Any]:
    while True:
        data = await _next_json(ws)
        if data.get("type") == "operator" and data["phase"] == phase:
            return dict(data)


async def _command(ws: aiohttp.ClientWebSocketResponse, command: str) -> dict[str, Any]:
    await ws.send_json({"type": "command", "command": command, "id": command})
    while True:
        data = await _next_json(ws)
        if data.get("type") == "answer" and data["id"] == command:
            return dict(data)


def test_a_forged_origin_or_host_is_refused(serve: Any) -> None:
    served = serve()

    async def probe() -> dict[str, int]:
        statuses = {}
        async with aiohttp.ClientSession() as client:
            for label, origin in [
                ("evil", "http://evil.example"),
                ("look-alike", f"{served.base}.evil.example"),
                ("other port", served.base.rsplit(":", 1)[0] + ":1"),
                ("https", served.base.replace("http:", "https:")),
                ("null", "null"),
                ("none", ""),
            ]:
                for path in ("/ws/operator", "/ws/walker"):
                    headers = {"Origin": origin} if origin else {}
                    try:
                        async with client.ws_connect(
                            f"{served.ws_base}{path}", headers=headers
                        ) as ws:
                            await ws.send_json({"type": "hello", "token": served.token})
                            await ws.send_json({"type": "command", "command": "go"})
                            statuses[f"{label} {path}"] = 101
                    except aiohttp.WSServerHandshakeError as err:
                        statuses[f"{label} {path}"] = err.status
            # DNS rebinding: a page served under another name that resolves to this machine.
            port = served.base.rsplit(":", 1)[1]
            async with client.get(
                f"{served.base}/", headers={"Host": f"evil.example:{port}"}
            ) as response:
                statuses["rebound host /"] = response.status
            async with client.get(
                f"{served.ws_base.replace('ws', 'http', 1)}/ws/operator",
                headers={"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"},
            ) as response:
                statuses["rebound host /ws/operator"] = response.status
        return statuses

    statuses = asyncio.run(probe())
    assert {k: v for k, v in statuses.items() if k.startswith("rebound")} == {
        "rebound host /": 421,
        "rebound host /ws/operator": 421,
    }
    refused = {k: v for k, v in statuses.items() if not k.startswith("rebound")}
    assert set(refused.values()) == {403}, refused
    assert "start" not in served.link_commands()
    assert "refused a view (operator) from origin 'http://evil.example'" in served.output()


def test_without_the_secret_nothing_reaches_the_belt(serve: Any, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("correct horse battery staple\n")
    password_file.chmod(0o600)
    served = serve("--password-file", str(password_file))

    async def probe() -> list[Any]:
        seen: list[Any] = []
        async with aiohttp.ClientSession() as client:
            attempts: list[dict[str, Any]] = [
                {"type": "hello", "token": served.token[:-1] + "x"},
                {"type": "hello", "password": "wrong horse"},
                {"type": "hello"},
                {"type": "command", "command": "go"},  # no hello at all
                {"type": "hello", "token": ["not", "a", "string"]},
            ]

            async def attempt(hello: dict[str, Any]) -> list[Any]:
                async with client.ws_connect(
                    f"{served.ws_base}/ws/operator", origin=served.base
                ) as ws:
                    await ws.send_json(hello)
                    await ws.send_json({"type": "command", "command": "go"})
                    first = await ws.receive(timeout=10)
                    answer = first.json() if first.type is aiohttp.WSMsgType.TEXT else None
                    return [answer, await _until_closed(ws)]

            for result in await asyncio.gather(*(attempt(a) for a in attempts)):
                seen += result
            # The right password opens it; the belt still waits for the go.
            ws = await _operator(client, served, password="correct horse battery staple")
            assert (await _next_json(ws))["type"] == "welcome"
            ready = await _state(ws, "ready")
            seen.append(ready["can"])
            await ws.close()
        return seen

    seen = asyncio.run(probe())
    answers, codes = seen[0:10:2], seen[1:10:2]
    assert all(a == {"type": "denied", "text": "wrong or missing secret"} for a in answers)
    assert codes == [4401] * 5
    assert seen[10]["go"] is True
    assert "start" not in served.link_commands()  # nothing without the secret reached the belt
    assert served.output().count("refused an operator view: wrong or missing secret") == 5


def test_wrong_passwords_are_throttled_but_the_link_still_works(tmp_path: Path) -> None:
    from retrotread.web.access import Secrets

    secrets = Secrets("t" * 32, "a long password")
    for i in range(PASSWORD_FAILURES_PER_MINUTE):
        assert not secrets.password_ok("guess", now=100.0 + i)
    assert not secrets.password_ok("a long password", now=110.0)  # locked for the minute
    assert secrets.token_ok("t" * 32)  # the operator's link is never locked out
    assert secrets.password_ok("a long password", now=170.0)


def test_the_walker_socket_takes_no_command(serve: Any) -> None:
    served = serve()

    async def probe() -> list[Any]:
        seen: list[Any] = []
        async with aiohttp.ClientSession() as client:
            for message in (
                {"type": "hello", "token": served.token},
                {"type": "command", "command": "go"},
                "go",
                b"\r",
            ):
                async with client.ws_connect(
                    f"{served.ws_base}/ws/walker", origin=served.base
                ) as ws:
                    state = await _next_json(ws)
                    seen.append(set(state))
                    if isinstance(message, bytes):
                        await ws.send_bytes(message)
                    elif isinstance(message, str):
                        await ws.send_str(message)
                    else:
                        await ws.send_json(message)
                    seen.append(await _until_closed(ws))
            ws = await _operator(client, served, token=served.token)
            await _next_json(ws)
            seen.append((await _state(ws, "ready"))["phase"])
            await ws.close()
        return seen

    seen = asyncio.run(probe())
    assert seen[0:8:2] == [WALKER_KEYS] * 4  # the walker's state: nothing of the operator's
    assert seen[1:8:2] == [4403] * 4
    assert seen[8] == "ready"  # still waiting for the operator's go
    assert "start" not in served.link_commands()


def test_views_mirror_one_session_and_stop_reaches_the_belt_fast(serve: Any) -> None:
    served = serve()

    async def play() -> dict[str, float]:
        async with aiohttp.ClientSession() as client:
            first = await _operator(client, served, token=served.token)
            second = await _operator(client, served, token=served.token)
            walker = await client.ws_connect(f"{served.ws_base}/ws/walker", origin=served.base)
            for ws in (first, second):
                assert (await _next_json(ws))["type"] == "welcome"
                await _state(ws, "ready")
            went = time.monotonic()
            assert (await _command(first, "go"))["done"]
            running = await _state(second, "running")
            mirrored_s = time.monotonic() - went
            assert running["block"]["title"] == "Warm-up"
            await asyncio.to_thread(
                served.wait_for_journal,
                lambda e: any(x["name"] == "start" for x in e if x["event"] == "command"),
                "the belt started",
            )
            refused = await _command(second, "go")
            assert not refused["done"]  # the second view does not start a second session
            stopped_at = time.monotonic()
            assert (await _command(second, "stop"))["done"]
            entries = await asyncio.to_thread(
                served.wait_for_journal,
                lambda e: e and e[-1]["event"] == "closed",
                "the session closed",
            )
            stop_s = next(
                e["time"] for e in entries if e["event"] == "command" and e["name"] == "stop"
            )
            ended = await _state(first, "ended")
            assert ended["summary"]["belt_stopped"] is True
            while (state := await _next_json(walker))["phase"] != "ended":
                pass
            assert state["type"] == "walker"
            for ws in (first, second, walker):
                await ws.close()
        # The simulator's clock is this machine's monotonic clock, as is ours.
        return {"mirror_s": mirrored_s, "stop_s": stop_s - stopped_at}

    numbers = asyncio.run(play())
    entries = served.entries()
    assert [e["event"] for e in entries].count("closed") == 1  # one session, one machine link
    assert served.link_commands().count("start") == 1
    assert children(served.pid) == []
    print(
        f"\nsecond view mirrors the go in {numbers['mirror_s'] * 1000:.1f} ms; "
        f"STOP from a view to stop written: {numbers['stop_s'] * 1000:.1f} ms"
    )
    assert numbers["stop_s"] < 1.0


def test_fifty_connection_attempts_leave_processes_and_memory_bounded(serve: Any) -> None:
    served = serve("--max-views", "8")

    async def flood() -> dict[str, int]:
        async with aiohttp.ClientSession() as client:
            # Warm up: one page load and one view, so lazy imports are not counted as growth.
            async with client.get(served.walker_url) as page:
                assert page.status == 200
            ws = await _operator(client, served, token=served.token)
            await _next_json(ws)
            await ws.close()
            before = rss_kib(served.pid)

            async def attempt(i: int) -> aiohttp.ClientWebSocketResponse | int:
                path = "/ws/operator" if i % 2 else "/ws/walker"
                try:
                    return await client.ws_connect(f"{served.ws_base}{path}", origin=served.base)
                except aiohttp.WSServerHandshakeError as err:
                    return err.status
                except aiohttp.ClientError:
                    return -1  # the connection itself was closed (beyond the TCP limit)

            results = await asyncio.gather(*(attempt(i) for i in range(50)))
            opened = [r for r in results if not isinstance(r, int)]
            held_children = len(children(served.pid))
            held = rss_kib(served.pid)
            for ws in opened:
                await ws.close()
            # ...and fifty more, one after another, each closed at once.
            for i in range(50):
                result = await attempt(i)
                if not isinstance(result, int):
                    await result.close()
            after = rss_kib(served.pid)
            ws = await _operator(client, served, token=served.token)  # still serves
            welcome = (await _next_json(ws))["type"]
            await ws.close()
        return {
            "opened": len(opened),
            "refused_503": sum(1 for r in results if r == 503),
            "refused_closed": sum(1 for r in results if r == -1),
            "children": held_children,
            "before": before,
            "held": held,
            "after": after,
            "welcome": int(welcome == "welcome"),
        }

    numbers = asyncio.run(flood())
    print(
        f"\n50 attempts at once: {numbers['opened']} views opened, {numbers['refused_503']} "
        f"refused (503), {numbers['refused_closed']} closed; child processes "
        f"{numbers['children']}; RSS {numbers['before'] / 1024:.1f} MiB before, "
        f"{numbers['held'] / 1024:.1f} MiB with the views held, "
        f"{numbers['after'] / 1024:.1f} MiB after 50 more"
    )
    assert numbers["opened"] == 8
    assert numbers["refused_503"] + numbers["refused_closed"] == 42
    assert numbers["children"] == 0 and children(served.pid) == []
    assert numbers["held"] - numbers["before"] < 20 * 1024
    assert numbers["after"] - numbers["before"] < 20 * 1024
    assert numbers["welcome"] == 1
    assert "start" not in served.link_commands()


def test_listening_beyond_this_machine_needs_an_explicit_flag(serve: Any, tmp_path: Path) -> None:
    refused = serve("--host", "0.0.0.0", parse=False, folder=tmp_path / "refused")
    assert refused.wait_exit() == 2
    out = refused.output()
    assert "--allow-remote" in out and "every network" in out
    assert "operator (controls" not in out  # nothing was served
    assert not refused.journal.exists()  # nor connected

    served = serve("--host", "0.0.0.0", "--allow-remote", folder=tmp_path / "allowed")
    served.wait_for_output("WARNING: listening beyond this machine")
    assert "without TLS" in served.output()
    port = served.base.rsplit(":", 1)[1]
    local = f"http://127.0.0.1:{port}"

    async def visit() -> str:
        async with (
            aiohttp.ClientSession() as client,
            client.ws_connect(f"ws://127.0.0.1:{port}/ws/walker", origin=local) as ws,
        ):
            return str((await _next_json(ws))["phase"])

    assert asyncio.run(visit()) in ("connecting", "ready")


def _certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_when_given_a_certificate(serve: Any, tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    served = serve("--certfile", str(cert), "--keyfile", str(key))
    assert served.base.startswith("https://127.0.0.1:")
    trusted = ssl.create_default_context(cafile=str(cert))

    async def visit() -> tuple[str, str, bool]:
        async with aiohttp.ClientSession() as client:
            async with client.get(served.walker_url, ssl=trusted) as page:
                hsts = page.headers.get("Strict-Transport-Security", "")
            ws = await client.ws_connect(
                f"{served.ws_base}/ws/operator", origin=served.base, ssl=trusted
            )
            await ws.send_json({"type": "hello", "token": served.token})
            welcome = (await _next_json(ws))["type"]
            await ws.close()
            plain = served.base.replace("https:", "http:")
            try:
                async with client.get(f"{plain}/walker") as response:
                    cleartext = response.status == 200
            except aiohttp.ClientError:
                cleartext = False
        return welcome, hsts, cleartext

    welcome, hsts, cleartext = asyncio.run(visit())
    assert welcome == "welcome"
    assert hsts.startswith("max-age=")
    assert not cleartext  # nothing is served in clear text beside it


@pytest.mark.parametrize(
    "signum",
    [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT],
    ids=["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"],
)
def test_closing_the_server_stops_the_belt(serve: Any, signum: signal.Signals) -> None:
    served = serve()

    async def go() -> None:
        async with aiohttp.ClientSession() as client:
            ws = await _operator(client, served, token=served.token)
            await _next_json(ws)
            await _state(ws, "ready")
            assert (await _command(ws, "go"))["done"]
            await ws.close()

    asyncio.run(go())
    served.wait_for_journal(
        lambda e: any(x.get("speed_kmh", 0) > 1 for x in e), "the belt moving", timeout=20
    )
    assert served.entries()[-1]["event"] == "command"
    served.send_signal(signum)
    assert served.wait_exit() == 128 + signum
    entries = served.entries()
    commands = served.link_commands()
    assert commands.index("stop") > commands.index("start")
    assert entries[-1]["event"] == "closed"
    assert entries[-1]["stopped"] is True  # halted and reading zero
    assert [e["event"] for e in entries].count("closed") == 1
    assert not group_alive(served.pid)  # nothing left behind, driving the belt or otherwise
    if signum is not signal.SIGHUP:  # after a hang-up the terminal is gone: nothing printed
        assert "stopping the belt before the server closes" in served.output()


def test_a_short_password_or_bad_certificate_is_refused_before_serving(
    serve: Any, tmp_path: Path
) -> None:
    short = tmp_path / "short"
    short.write_text("abc\n")
    served = serve("--password-file", str(short), parse=False, folder=tmp_path / "a")
    assert served.wait_exit() == 2
    assert "shorter than 8 characters" in served.output()
    missing = tmp_path / "missing.pem"
    served = serve("--certfile", str(missing), parse=False, folder=tmp_path / "b")
    assert served.wait_exit() == 2
    assert f"cannot use the certificate {missing}" in served.output()
    assert sorted(os.listdir(tmp_path / "b")) == [
        "serve.log",
        "served.toml",
    ]  # no journal: not served


@pytest.mark.parametrize("how", ["ctrl-c", "hang-up"])
def test_in_a_terminal_ctrl_c_or_closing_it_stops_the_belt(tmp_path: Path, how: str) -> None:
    """The server in a real terminal (its controlling tty, as in a shell or over SSH): it
    shows the operator's link as a QR code; Ctrl-C typed there, or the terminal closing (an
    SSH drop: the kernel sends SIGHUP), stops the belt before the process ends."""
    import fcntl
    import pty
    import re
    import select
    import sys
    import termios

    from tests.tui.served import PROGRAM

    program, journal = tmp_path / "served.toml", tmp_path / "belt.jsonl"
    program.write_text(PROGRAM)
    master, terminal = pty.openpty()
    command = ["tui", str(program), "--serve", "--port", "0", "--mute"]
    process = subprocess.Popen(
        [sys.executable, "-m", "retrotread", *command, "--device", f"sim://?record={journal}"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )
    os.close(terminal)
    served = Served(process, tmp_path / "unused.log", journal)
    shown = b""
    try:
        deadline = time.monotonic() + 20
        while b"stops the belt and closes" not in shown or shown.count("█".encode()) < 100:
            assert time.monotonic() < deadline, shown.decode(errors="replace")
            if select.select([master], [], [], 0.2)[0]:
                shown += os.read(master, 65536)
        text = shown.decode(errors="replace")
        link = re.search(r"operator \(controls the belt[^:]*: (\S+)", text)
        assert link is not None, text
        served.base, _, token = link.group(1).partition("/#token=")
        served.token = token

        async def go() -> None:
            async with aiohttp.ClientSession() as client:
                ws = await _operator(client, served, token=served.token)
                await _next_json(ws)
                await _state(ws, "ready")
                assert (await _command(ws, "go"))["done"]
                await ws.close()

        asyncio.run(go())
        served.wait_for_journal(lambda e: any(x.get("speed_kmh", 0) > 1 for x in e), "moving")
        if how == "ctrl-c":
            os.write(master, b"\x03")
            expected = 128 + signal.SIGINT
        else:
            os.close(master)
            master = -1
            expected = 128 + signal.SIGHUP
        deadline = time.monotonic() + 30
        while process.poll() is None:
            assert time.monotonic() < deadline, "the server did not exit"
            if master >= 0 and select.select([master], [], [], 0.1)[0]:
                with contextlib.suppress(OSError):
                    shown += os.read(master, 65536)
            elif master < 0:
                time.sleep(0.05)
        assert process.returncode == expected
    finally:
        served.close()
        if master >= 0:
            os.close(master)
    entries = served.entries()
    commands = served.link_commands()
    assert commands.index("stop") > commands.index("start")
    assert entries[-1]["event"] == "closed" and entries[-1]["stopped"] is True
    assert not group_alive(process.pid)
