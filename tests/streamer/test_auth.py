"""Who may act on the server: the Origin rule and the token, over real HTTP and websockets on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
from typing import Any

import aiohttp
import pytest

from streamer.auth import (
    AccessPolicy,
    add_access_arguments,
    check_origin,
    check_token,
    is_loopback,
    normalize_origin,
    page_url,
    policy_from_args,
    presented_token,
)
from streamer.server import create_app, serve_app
from streamer.uploads import UPLOADS_KEY
from tests.streamer.conftest import LOOPBACK, Server, StartServer, basic_engine

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
    "0000000c4944415478da63f8cfc0000003010100c9fe92ef0000000049454e44ae426082"
)


# -- the rules, without sockets ---------------------------------------------------------------


def test_normalize_origin() -> None:
    assert normalize_origin("HTTP://Example.COM/") == "http://example.com"
    assert normalize_origin("https://example.com:443") == "https://example.com"
    assert normalize_origin("http://example.com:80") == "http://example.com"
    assert normalize_origin("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert normalize_origin("http://[::1]:8080") == "http://[::1]:8080"
    for bad in ("null", "", "example.com", "ftp://example.com", "http://example.com/path",
                "http://user@example.com", "http://example.com?x=1", "http://example.com:99999"):
        with pytest.raises(ValueError):
            normalize_origin(bad)


def test_is_loopback() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST", "localhost."):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "", "192.168.1.5", "example.com", "localhost.example.com", "128.0.0.1"):
        assert not is_loopback(host), host


def test_origin_rule() -> None:
    open_ = AccessPolicy()
    assert check_origin(open_, None, "127.0.0.1:8080", False) is None  # not a browser
    assert check_origin(open_, "http://127.0.0.1:8080", "127.0.0.1:8080", False) is None
    assert check_origin(open_, "http://localhost:8080/", "localhost:8080", False) is None
    assert check_origin(open_, "https://127.0.0.1:8080", "127.0.0.1:8080", True) is None
    # Scheme must match too: an http page is not the https server's origin.
    assert check_origin(open_, "http://127.0.0.1:8080", "127.0.0.1:8080", True) is not None
    for foreign in ("http://evil.example", "null", "http://127.0.0.1:9999", "file://", "garbage"):
        denied = check_origin(open_, foreign, "127.0.0.1:8080", False)
        assert denied is not None and denied.status == 403, foreign
    # DNS rebinding: evil.example resolving to 127.0.0.1 is same-origin with itself,
    # which counts only when a token stands behind it.
    assert check_origin(open_, "http://evil.example:8080", "evil.example:8080", False) is not None
    assert check_origin(AccessPolicy(token="t"), "http://evil.example:8080", "evil.example:8080", False) is None
    allowed = AccessPolicy(allowed_origins=("HTTPS://Tricam.Example/",))
    assert allowed.allowed_origins == ("https://tricam.example",)
    assert check_origin(allowed, "https://tricam.example", "127.0.0.1:8080", False) is None
    assert check_origin(allowed, "https://tricam.example:8443", "127.0.0.1:8080", False) is not None


def test_token_rule() -> None:
    assert presented_token({"Authorization": "Bearer abc"}, {"token": "zzz"}) == "abc"
    assert presented_token({"Authorization": "bearer  abc "}, {}) == "abc"
    assert presented_token({}, {"token": "q"}) == "q"
    assert presented_token({"Authorization": "Basic xyz"}, {}) is None
    assert check_token(AccessPolicy(), None) is None
    policy = AccessPolicy(token="sécret")
    assert check_token(policy, "sécret") is None
    required, wrong = check_token(policy, None), check_token(policy, "nope")
    assert required is not None and (required.status, required.code) == (401, "token_required")
    assert wrong is not None and (wrong.status, wrong.code) == (401, "bad_token")
    with pytest.raises(ValueError):
        AccessPolicy(token="")


def _args(*argv: str, port: int = 8080) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_access_arguments(parser)
    ns = parser.parse_args(list(argv))
    ns.port = port
    return ns


def test_policy_on_loopback_needs_no_token() -> None:
    policy, generated = policy_from_args(_args(), "127.0.0.1", environ={})
    assert policy == AccessPolicy() and generated is None
    policy, generated = policy_from_args(_args(), "localhost", environ={})
    assert policy.token is None and generated is None


def test_policy_beyond_loopback_generates_and_logs_a_token(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="streamer.auth"):
        policy, generated = policy_from_args(_args(port=9000), "0.0.0.0", environ={})
    assert generated is not None and policy.token == generated and len(generated) >= 32
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"http://0.0.0.0:9000/?token={generated}" in r.getMessage() for r in warnings)
    other, _ = policy_from_args(_args(), "::", environ={})
    assert other.token is not None and other.token != generated


def test_policy_takes_the_given_token_and_origins(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="streamer.auth"):
        policy, generated = policy_from_args(
            _args("--token", "abc", "--allow-origin", "https://A.example/", "--allow-origin", "http://b.example:81"),
            "0.0.0.0", environ={"TRICAM_TOKEN": "from-env"})
    assert policy == AccessPolicy("abc", ("https://a.example", "http://b.example:81")) and generated is None
    assert "abc" not in caplog.text  # a token the person chose is theirs to know
    policy, generated = policy_from_args(_args(), "0.0.0.0", environ={"TRICAM_TOKEN": "from-env"})
    assert policy.token == "from-env" and generated is None
    policy, _ = policy_from_args(_args(), "127.0.0.1", environ={"TRICAM_TOKEN": "from-env"})
    assert policy.token == "from-env"  # asked for, so required even on loopback
    policy, generated = policy_from_args(_args(), "127.0.0.1", environ={"TRICAM_TOKEN": ""})
    assert policy.token is None and generated is None
    with pytest.raises(ValueError, match="TRICAM_TOKEN"):
        policy_from_args(_args(), "127.0.0.1", environ={"TRICAM_TOKEN": "has space"})


def test_bad_options_are_refused() -> None:
    with pytest.raises(SystemExit):
        _args("--allow-origin", "null")
    with pytest.raises(SystemExit):
        _args("--allow-origin", "https://example.com/app")
    with pytest.raises(SystemExit):
        _args("--token", "")


def test_page_url() -> None:
    assert page_url("127.0.0.1", 8080, None) == "http://127.0.0.1:8080/"
    assert page_url("::", 8080, "a/b+c") == "http://[::]:8080/?token=a%2Fb%2Bc"


# -- the server ----------------------------------------------------------------------------------


async def ws_status(server: Server, path: str = "/ws", headers: dict[str, str] | None = None) -> int | dict[str, Any]:
    """The handshake's HTTP status when refused; the ``hello`` message when accepted."""
    try:
        ws = await server.http.ws_connect(server.url + path, headers=headers)
    except aiohttp.WSServerHandshakeError as e:
        return e.status
    try:
        msg = await ws.receive_json(timeout=5.0)
    finally:
        await ws.close()
    return msg


def own_origin(server: Server) -> str:
    return server.url  # http://127.0.0.1:PORT


async def test_foreign_origin_gets_403_before_any_upgrade(start_server: StartServer) -> None:
    server = await start_server(access=AccessPolicy())
    for origin in ("http://evil.example", "null", "http://127.0.0.1:1", "https://" + server.url[7:]):
        assert await ws_status(server, headers={"Origin": origin}) == 403, origin
        async with server.http.post(server.url + "/upload", data=PNG_1PX,
                                    headers={"Origin": origin, "Content-Type": "image/png"}) as r:
            assert r.status == 403
            assert (await r.json())["error"]["code"] == "forbidden_origin"
    assert server.hub.sessions == {} and len(server.app[UPLOADS_KEY]) == 0


async def test_same_origin_allowed_origins_and_no_origin_pass(start_server: StartServer) -> None:
    server = await start_server(access=AccessPolicy(allowed_origins=("https://tricam.example",)))
    for headers in ({"Origin": own_origin(server)}, {"Origin": own_origin(server) + "/"},
                    {"Origin": "https://TRICAM.example"}, {}):
        hello = await ws_status(server, headers=headers)
        assert isinstance(hello, dict) and hello["type"] == "hello", headers
        async with server.http.post(server.url + "/upload", data=PNG_1PX,
                                    headers={**headers, "Content-Type": "image/png"}) as r:
            assert r.status == 200, await r.text()


async def test_rebound_name_without_token_is_foreign(start_server: StartServer) -> None:
    server = await start_server(access=AccessPolicy())
    port = server.url.rsplit(":", 1)[1]
    # What a DNS-rebinding page at evil.example:PORT would send to 127.0.0.1:PORT.
    headers = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    assert await ws_status(server, headers=headers) == 403
    headers = {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}
    assert isinstance(await ws_status(server, headers=headers), dict)


async def test_token_required_on_ws_and_upload(start_server: StartServer) -> None:
    server = await start_server(access=AccessPolicy(token="s3cret"))
    assert await ws_status(server) == 401
    assert await ws_status(server, "/ws?token=wrong") == 401
    assert await ws_status(server, headers={"Authorization": "Bearer wrong"}) == 401
    assert await ws_status(server, headers={"Authorization": "Basic czNjcmV0"}) == 401
    assert server.hub.sessions == {}
    async with server.http.get(server.url + "/ws") as r:
        body = await r.json()
        assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        assert body == {"error": {"code": "token_required", "message": "A token is required."}}
    for query, headers in (("?token=s3cret", {}), ("", {"Authorization": "Bearer s3cret"})):
        hello = await ws_status(server, "/ws" + query, headers={**headers, "Origin": own_origin(server)})
        assert isinstance(hello, dict) and hello["type"] == "hello"
        async with server.http.post(server.url + "/upload" + query, data=PNG_1PX,
                                    headers={**headers, "Content-Type": "image/png"}) as r:
            assert r.status == 200
    async with server.http.post(server.url + "/upload?token=nope", data=PNG_1PX,
                                headers={"Content-Type": "image/png"}) as r:
        assert r.status == 401 and (await r.json())["error"]["code"] == "bad_token"
    # A foreign page is refused even with the token.
    assert await ws_status(server, "/ws?token=s3cret", headers={"Origin": "http://evil.example"}) == 403


async def test_public_paths_stay_open_with_a_token(start_server: StartServer) -> None:
    server = await start_server(access=AccessPolicy(token="s3cret"))
    for path in ("/", "/app.js", "/healthz"):
        async with server.http.get(server.url + path, headers={"Origin": "http://evil.example"}) as r:
            assert r.status == 200, path
        async with server.http.head(server.url + path) as r:
            assert r.status == 200, path
    async with server.http.get(server.url + "/healthz") as r:
        assert "s3cret" not in await r.text()
    async with server.http.get(server.url + "/nothing-here") as r:
        assert r.status == 404
    # A method that acts is never public, even on a public path.
    async with server.http.post(server.url + "/healthz") as r:
        assert r.status == 405


async def test_no_policy_is_todays_open_server(start_server: StartServer) -> None:
    server = await start_server()
    hello = await ws_status(server, headers={"Origin": "http://evil.example"})
    assert isinstance(hello, dict) and hello["type"] == "hello"


async def test_access_log_never_shows_the_token(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port = int(s.getsockname()[1])
    stop = asyncio.Event()
    app = create_app(basic_engine(), access=AccessPolicy(token="s3cret"))
    task = asyncio.ensure_future(serve_app(app, LOOPBACK, port, stop))
    try:
        with caplog.at_level(logging.INFO, logger="aiohttp.access"):
            async with aiohttp.ClientSession() as http:
                for _ in range(50):  # until the site is up
                    try:
                        async with http.get(f"http://{LOOPBACK}:{port}/app.js?token=s3cret",
                                            headers={"Referer": f"http://{LOOPBACK}:{port}/?token=s3cret"}) as r:
                            assert r.status == 200
                        break
                    except aiohttp.ClientConnectorError:
                        await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert any('"GET /app.js" 200' in line for line in lines), lines
    assert "s3cret" not in caplog.text
