"""``tricam style``: the real command against a real server (control mode) on 127.0.0.1.

The command runs its own event loop, so it runs in a thread beside the test's loop,
which serves the app.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from streamer import cli
from streamer.auth import AccessPolicy
from streamer.style_cli import ws_url
from tests.streamer.conftest import LOOPBACK, FakeTarget, StartServer


async def tricam(*argv: str) -> int:
    return await asyncio.to_thread(cli.main, ["style", *argv])


def ws(url: str) -> str:
    return url.replace("http://", "ws://") + "/ws"


async def test_set_style_and_list(start_server: StartServer, capsys: pytest.CaptureFixture[str]) -> None:
    target = FakeTarget()
    server = await start_server(control=target, access=AccessPolicy())
    assert await tricam("bronze", "--intensity", "0.5", "--url", ws(server.url)) == 0
    assert capsys.readouterr().out == "style bronze intensity 0.5\n"
    assert target.calls == [("bronze", 0.5)]
    # Without --intensity the style's default; an http page address works as --url too.
    assert await tricam("none", "--url", server.url + "/") == 0
    default = target.calls[-1][1]
    assert capsys.readouterr().out == f"style none intensity {default:g}\n" and target.calls[-1][0] == "none"
    assert await tricam("--list", "--url", ws(server.url)) == 0
    assert capsys.readouterr().out == "none\nbronze\n"
    assert server.hub.sessions == {}  # each command closed its websocket


async def test_refused_style_exits_1(
    start_server: StartServer, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    target = FakeTarget()
    server = await start_server(control=target)
    with caplog.at_level(logging.ERROR):
        assert await tricam("marble", "--url", ws(server.url)) == 1
        assert await tricam("bronze", "--intensity", "7", "--url", ws(server.url)) == 1
    assert capsys.readouterr().out == ""
    assert "unknown style 'marble'" in caplog.text and "out of range" in caplog.text
    assert target.calls == []


async def test_token(start_server: StartServer, monkeypatch: pytest.MonkeyPatch,
                     caplog: pytest.LogCaptureFixture) -> None:
    target = FakeTarget()
    server = await start_server(control=target, access=AccessPolicy(token="s3cret"))
    monkeypatch.delenv("TRICAM_TOKEN", raising=False)
    with caplog.at_level(logging.ERROR):
        assert await tricam("bronze", "--url", ws(server.url)) == 2
        assert await tricam("bronze", "--url", ws(server.url), "--token", "wrong") == 2
    assert "needs the right token" in caplog.text and target.calls == []
    assert await tricam("bronze", "--url", ws(server.url), "--token", "s3cret") == 0
    monkeypatch.setenv("TRICAM_TOKEN", "s3cret")
    assert await tricam("none", "--url", ws(server.url)) == 0
    assert [c[0] for c in target.calls] == ["bronze", "none"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


async def test_nothing_listening_or_silent_server_exits_2(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        assert await tricam("bronze", "--url", f"ws://{LOOPBACK}:{free_port()}/ws") == 2
    assert "cannot reach" in caplog.text

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts the connection, never answers the handshake

    server = await asyncio.start_server(silent, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            assert await tricam("bronze", "--url", f"ws://{LOOPBACK}:{port}/ws", "--timeout", "0.5") == 2
        assert "no reply" in caplog.text
    finally:
        server.close()


async def test_usage_errors_exit_2() -> None:
    assert await tricam() == 2
    assert await tricam("bronze", "--list") == 2
    assert await tricam("bronze", "--url", "ftp://x") == 2


def test_ws_url() -> None:
    assert ws_url("ws://127.0.0.1:8080/ws") == "ws://127.0.0.1:8080/ws"
    assert ws_url("http://127.0.0.1:8080") == "ws://127.0.0.1:8080/ws"
    assert ws_url("https://tricam.example/?token=x") == "wss://tricam.example/ws?token=x"
    with pytest.raises(ValueError):
        ws_url("127.0.0.1:8080")


async def test_switches_the_live_call_of_a_serve_server(start_server: StartServer) -> None:
    """In ``tricam serve`` the command's own session has no call: ``scope: server`` carries the
    style to the calls that do (the one feeding the virtual camera), behind a token."""
    from tests.streamer.conftest import is_bronze

    server = await start_server(access=AccessPolicy(token="hotkey-token"))
    server.http.headers["Authorization"] = "Bearer hotkey-token"
    c = await server.connect()
    await c.call(160, 120)
    await c.wait_frames(3)
    assert await tricam("bronze", "--url", ws(server.url), "--token", "hotkey-token") == 0
    await c.expect("state", lambda m: m["style"] == "bronze")
    frames = await c.wait_frames(5)
    assert is_bronze(frames[-1].mean_rgb)
    assert await tricam("none", "--url", ws(server.url), "--token", "wrong") == 2
