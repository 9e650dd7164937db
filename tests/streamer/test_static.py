"""Static files: only plain files directly inside the client directory, whatever the request line says.

Requests go over a raw socket so the request target reaches the server exactly as
written (an HTTP client library would normalise ``..`` away before sending).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.streamer.conftest import LOOPBACK, Server, StartServer

SECRET = "top secret outside the client dir"


async def raw_get(server: Server, target: str) -> tuple[int, bytes]:
    """Status and body of ``GET target`` sent byte for byte."""
    port = int(server.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 5.0)
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.fixture
def client_dir(tmp_path: Path) -> Path:
    """tmp/client/{index.html, app.js, links to outside}, tmp/secret.txt, tmp/outside/."""
    root = tmp_path / "client"
    root.mkdir()
    (root / "index.html").write_text("<!doctype html><title>t</title>")
    (root / "app.js").write_text("// app")
    (root / ".env").write_text(SECRET)
    (tmp_path / "secret.txt").write_text(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "inner.txt").write_text(SECRET)
    (root / "evil.txt").symlink_to(tmp_path / "secret.txt")
    (root / "evil-dir").symlink_to(tmp_path / "outside", target_is_directory=True)
    (root / "etc-passwd").symlink_to("/etc/passwd")
    (root / "alias.js").symlink_to(root / "app.js")  # inside the directory: harmless
    (root / "sub").mkdir()
    (root / "sub" / "nested.js").write_text("// nested")
    return root


async def test_client_files_are_served(start_server: StartServer, client_dir: Path) -> None:
    server = await start_server(client_dir=client_dir)
    assert (await raw_get(server, "/"))[0] == 200
    assert await raw_get(server, "/app.js") == (200, b"// app")
    assert await raw_get(server, "/alias.js") == (200, b"// app")


@pytest.mark.parametrize("target", [
    "/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/..%2fsecret.txt", "/..%2Fsecret.txt",
    "/%2e%2e%2fsecret.txt", "/..%5csecret.txt", "/..%5Csecret.txt", "/..\\secret.txt", "/.%2e/secret.txt",
    "/../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "//etc/passwd", "/%2fetc%2fpasswd",
    "/evil.txt", "/evil-dir/inner.txt", "/evil-dir", "/etc-passwd", "/sub/nested.js", "/sub", "/.env",
    "/..", "/.", "/%2e%2e", "/app.js%00.png", "/app.js/", "/client/app.js", "/../client/app.js",
])
async def test_traversal_and_escaping_links_get_404(
    start_server: StartServer, client_dir: Path, target: str
) -> None:
    server = await start_server(client_dir=client_dir)
    status, body = await raw_get(server, target)
    assert status == 404, (target, status)
    assert SECRET.encode() not in body and b"root:" not in body


def test_fixture_links_really_point_outside(client_dir: Path) -> None:
    # Guards the test above: the links exist and resolve where they should.
    assert os.path.realpath(client_dir / "evil.txt") == str((client_dir.parent / "secret.txt").resolve())
    assert (client_dir / "evil.txt").read_text() == SECRET
