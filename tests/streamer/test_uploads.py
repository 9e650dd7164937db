"""``POST /upload``: reference photos checked, capped, decoded and stored; over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import struct
import time
import zlib
from typing import Any

import aiohttp
import numpy as np
import pytest
from PIL import Image

from streamer.auth import AccessPolicy
from streamer.uploads import UPLOADS_KEY, RateLimiter, UploadError, UploadLimits, UploadStore, decode_image
from tests.streamer.conftest import LOOPBACK, Server, StartServer


def gradient(width: int = 48, height: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x + y) % 256], -1).astype(np.uint8)


def encode(image: np.ndarray | Image.Image, fmt: str, **kw: object) -> bytes:
    im = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def png_header_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG start (valid CRCs) whose IHDR claims ``width`` × ``height``."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


LIMITS = UploadLimits()


# -- decoding, without sockets -------------------------------------------------------------------


def test_decode_png_jpeg_webp() -> None:
    img = gradient()
    rgb, kind = decode_image(encode(img, "PNG"), LIMITS)
    assert kind == "image/png" and rgb.dtype == np.uint8 and np.array_equal(rgb, img)
    rgb, kind = decode_image(encode(img, "JPEG", quality=95), LIMITS)
    assert kind == "image/jpeg" and rgb.shape == (32, 48, 3) and np.abs(rgb.astype(int) - img).mean() < 6
    rgb, kind = decode_image(encode(img, "WEBP", lossless=True), LIMITS)
    assert kind == "image/webp" and np.array_equal(rgb, img)
    # Palette, grey and alpha images all come out RGB.
    for mode in ("P", "L", "RGBA", "1"):
        rgb, _ = decode_image(encode(Image.fromarray(img).convert(mode), "PNG"), LIMITS)
        assert rgb.shape == (32, 48, 3), mode


def test_decode_applies_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": phones store portraits this way
    rgb, _ = decode_image(encode(gradient(40, 20), "JPEG", exif=exif.tobytes()), LIMITS)
    assert rgb.shape == (40, 20, 3)


@pytest.mark.parametrize("data", [
    b"", b"hello, world", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, b"\xff\xd8\xff" + b"\x00" * 50,
    encode(gradient(), "PNG")[:-40], encode(gradient(), "JPEG")[:200],
    encode(gradient(), "GIF"), encode(gradient(), "BMP"), encode(gradient(), "TIFF"),
])
def test_decode_refuses_what_is_not_a_readable_image(data: bytes) -> None:
    with pytest.raises(UploadError) as e:
        decode_image(data, LIMITS)
    assert (e.value.status, e.value.code) == (400, "bad_image")


def test_decode_refuses_huge_dimensions_before_decoding() -> None:
    for data in (png_header_claiming(100_000, 100_000), png_header_claiming(5000, 2000),
                 png_header_claiming(4097, 1)):
        t0 = time.monotonic()
        with pytest.raises(UploadError) as e:
            decode_image(data, LIMITS)
        assert (e.value.status, e.value.code) == (413, "image_too_large")
        assert time.monotonic() - t0 < 0.5
    real = encode(Image.new("1", (5000, 5000)), "PNG")  # 25 MP, a few KB compressed
    assert len(real) < 100_000
    with pytest.raises(UploadError, match="too large"):
        decode_image(real, LIMITS)
    ok, _ = decode_image(encode(Image.new("1", (4096, 16)), "PNG"), LIMITS)
    assert ok.shape == (16, 4096, 3)


def test_store_evicts_oldest_by_count_and_bytes() -> None:
    store = UploadStore(max_items=2)
    a, b, c = (store.add(gradient(8, 8) + i, nbytes=10, content_type="image/png") for i in range(3))
    assert a.id not in store and b.id in store and c.id in store and len(store) == 2
    with pytest.raises(KeyError):
        store.get(a.id)
    img = store.get(c.id)
    assert img.shape == (8, 8, 3) and not img.flags.writeable
    assert store.info(c.id).to_json() == {"id": c.id, "width": 8, "height": 8, "bytes": 10,
                                           "content_type": "image/png"}
    small = UploadStore(max_items=10, max_total_bytes=3 * 64 * 64 * 3)
    ids = [small.add(gradient(64, 64), nbytes=1, content_type="image/png").id for _ in range(5)]
    assert [i in small for i in ids] == [False, False, True, True, True]
    huge = small.add(gradient(200, 200), nbytes=1, content_type="image/png")
    assert list(filter(small.__contains__, [*ids, huge.id])) == [huge.id]  # the newest always stays
    with pytest.raises(ValueError):
        store.add(np.zeros((4, 4), np.uint8), nbytes=1, content_type="image/png")


def test_rate_limiter_window() -> None:
    limiter = RateLimiter(limit=2, window_s=60.0, max_keys=2)
    assert limiter.hit("a", 0.0) == 0 and limiter.hit("a", 1.0) == 0
    assert limiter.hit("a", 2.0) == pytest.approx(58.0)
    assert limiter.hit("b", 2.0) == 0  # per key
    assert limiter.hit("a", 60.5) == 0  # the first event left the window
    limiter.hit("c", 61.0)
    limiter.hit("d", 61.0)  # beyond max_keys the least recently seen key is forgotten
    assert len(limiter._events) == 2


# -- the endpoint --------------------------------------------------------------------------------


async def post(server: Server, data: bytes | aiohttp.FormData, content_type: str | None = None,
               ) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": content_type} if content_type else {}
    async with server.http.post(server.url + "/upload", data=data, headers=headers) as r:
        return r.status, await r.json()


def form(data: bytes, content_type: str, field: str = "file") -> aiohttp.FormData:
    f = aiohttp.FormData()
    f.add_field("note", "my reference photo")
    f.add_field(field, data, filename="me.img", content_type=content_type)
    return f


async def test_upload_raw_and_multipart(start_server: StartServer) -> None:
    server = await start_server(access=AccessPolicy())
    store = server.app[UPLOADS_KEY]
    img = gradient()
    png = encode(img, "PNG")
    status, body = await post(server, png, "image/png")
    assert status == 200 and body == {"id": body["id"], "width": 48, "height": 32, "bytes": len(png),
                                      "content_type": "image/png"}
    assert np.array_equal(store.get(str(body["id"])), img)
    status, body = await post(server, encode(img, "JPEG"), "image/jpg")
    assert status == 200 and body["content_type"] == "image/jpeg"
    status, body = await post(server, form(encode(img, "WEBP", lossless=True), "image/webp"))
    assert status == 200 and body["content_type"] == "image/webp"
    assert np.array_equal(store.get(str(body["id"])), img)
    # The reported type is what the bytes are, not what was declared.
    status, body = await post(server, png, "image/jpeg")
    assert status == 200 and body["content_type"] == "image/png"
    assert len(store) == 4


async def test_upload_refusals(start_server: StartServer) -> None:
    server = await start_server()
    png = encode(gradient(), "PNG")
    cases: list[tuple[bytes | aiohttp.FormData, str | None, int, str]] = [
        (png, "text/plain", 415, "unsupported_type"),
        (png, "image/gif", 415, "unsupported_type"),
        (png, "application/octet-stream", 415, "unsupported_type"),
        (form(png, "image/gif"), None, 415, "unsupported_type"),
        (form(png, "image/png", field="photo"), None, 400, "bad_request"),
        (b"\x89PNG\r\n\x1a\nnot really", "image/png", 400, "bad_image"),
        (png[:-30], "image/png", 400, "bad_image"),
        (b"", "image/png", 400, "bad_image"),
        (png_header_claiming(100_000, 100_000), "image/png", 413, "image_too_large"),
        (encode(Image.new("1", (5000, 5000)), "PNG"), "image/png", 413, "image_too_large"),
    ]
    for data, content_type, want_status, want_code in cases:
        status, body = await post(server, data, content_type)
        assert (status, body["error"]["code"]) == (want_status, want_code), (content_type, want_code)
        assert isinstance(body["error"]["message"], str)
    async with server.http.get(server.url + "/upload") as r:
        assert r.status == 404  # only POST acts; a GET is a static-file lookup, and there is none
    assert len(server.app[UPLOADS_KEY]) == 0


async def test_oversized_body_is_refused_while_reading(start_server: StartServer) -> None:
    limits = UploadLimits(max_bytes=64 * 1024)
    server = await start_server(upload_limits=limits)
    status, body = await post(server, b"\0" * (200 * 1024), "image/png")
    assert (status, body["error"]["code"]) == (413, "too_large")
    status, body = await post(server, form(b"\0" * (200 * 1024), "image/png"))
    assert (status, body["error"]["code"]) == (413, "too_large")

    port = int(server.url.rsplit(":", 1)[1])
    head = f"POST /upload HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nContent-Type: image/png\r\n"

    async def status_of(request_start: bytes) -> int:
        """Send the start of a request and nothing more; the status the server answers with."""
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        try:
            writer.write(request_start)
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 5.0)
        finally:
            writer.close()
        return int(line.split()[1])

    # 2 GB announced, none of it sent: refused on the header alone.
    assert await status_of(f"{head}Content-Length: 2000000000\r\n\r\n".encode()) == 413
    # Chunked, no length: refused once past the cap, while the body is still unfinished.
    chunk = b"\0" * (48 * 1024)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(2))
    assert await status_of(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + chunked) == 413
    assert len(server.app[UPLOADS_KEY]) == 0


async def test_eviction_through_the_endpoint(start_server: StartServer) -> None:
    store = UploadStore(max_items=2)
    server = await start_server(uploads=store)
    ids = []
    for i in range(3):
        status, body = await post(server, encode(gradient(8 + i, 8), "PNG"), "image/png")
        assert status == 200
        ids.append(str(body["id"]))
    assert server.app[UPLOADS_KEY] is store
    assert [i in store for i in ids] == [False, True, True]
    assert store.get(ids[2]).shape == (8, 10, 3)


async def test_rate_limit_per_address(start_server: StartServer) -> None:
    server = await start_server(upload_limits=UploadLimits(per_minute=3))
    statuses = []
    for _ in range(4):
        async with server.http.post(server.url + "/upload", data=b"junk",
                                    headers={"Content-Type": "image/png"}) as r:
            statuses.append(r.status)
            retry = r.headers.get("Retry-After")
            body = await r.json()
    assert statuses == [400, 400, 400, 429]  # refused uploads count too
    assert body["error"]["code"] == "rate_limited" and retry is not None and 1 <= int(retry) <= 60
