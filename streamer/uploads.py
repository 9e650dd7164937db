"""``POST /upload``: a reference photo, checked, decoded and kept in memory.

The body is a JPEG, PNG or WebP image — raw with its ``Content-Type``, or the one file
field ``file`` of a ``multipart/form-data`` form. Every limit is enforced before the work
it protects: the byte cap while reading (never the whole body first), the pixel cap on
the image header before decoding, a per-address rate. Decoding runs off the event loop.
:class:`UploadStore` keeps the newest images as RGB arrays for the features that use a
reference (``get(id)``); the protocol is in docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import collections
import io
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
from aiohttp import BodyPartReader, web

from streamer.auth import json_error

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_MAX_BYTES = 8 * MIB
CONTENT_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
"""Accepted media types and the only PIL decoders they may reach."""
_FORMAT_TYPES = {f: t for t, f in CONTENT_TYPES.items()}
_ALIASES = {"image/jpg": "image/jpeg"}
_MULTIPART_SLACK = 64 * 1024
"""Room for boundaries, part headers and small extra fields beside the file in a form."""
_CHUNK = 64 * 1024


class UploadError(Exception):
    """A refused upload; becomes ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = DEFAULT_MAX_BYTES
    """Largest encoded image accepted (``--max-upload-mb``)."""
    max_side: int = 4096
    """Largest width or height."""
    max_pixels: int = 4096 * 4096
    """Largest width × height, checked on the header before decoding."""
    per_minute: int = 30
    """Uploads (accepted or not) per client address per minute."""

    def __post_init__(self) -> None:
        if min(self.max_bytes, self.max_side, self.max_pixels, self.per_minute) < 1:
            raise ValueError("upload limits must be positive")


@dataclass(frozen=True)
class Upload:
    """What the server answers (and remembers) about one stored image."""

    id: str
    width: int
    height: int
    bytes: int
    """Size of the encoded upload."""
    content_type: str
    """What the bytes turned out to be (``image/jpeg``, ``image/png`` or ``image/webp``)."""

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "width": self.width, "height": self.height, "bytes": self.bytes,
                "content_type": self.content_type}


class UploadStore:
    """The newest uploads as read-only RGB arrays, by random id; oldest evicted past either cap.

    Thread-safe: handlers add on the event loop, features may read from worker threads.
    """

    def __init__(self, max_items: int = 32, max_total_bytes: int = 256 * MIB) -> None:
        if max_items < 1 or max_total_bytes < 1:
            raise ValueError("store caps must be positive")
        self.max_items = max_items
        self.max_total_bytes = max_total_bytes
        self._items: collections.OrderedDict[str, tuple[Upload, np.ndarray]] = collections.OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def add(self, image: np.ndarray, *, nbytes: int, content_type: str) -> Upload:
        """Keep ``image`` (H, W, 3) uint8; returns its record with a fresh id."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
        image = np.ascontiguousarray(image)
        image.setflags(write=False)  # shared with every reader: nobody edits it in place
        upload = Upload(secrets.token_urlsafe(12), int(image.shape[1]), int(image.shape[0]), nbytes, content_type)
        with self._lock:
            self._items[upload.id] = (upload, image)
            self._total += image.nbytes
            # Keep at least the newest one, even if it alone exceeds the byte budget.
            while len(self._items) > 1 and (len(self._items) > self.max_items or self._total > self.max_total_bytes):
                _, (_, old) = self._items.popitem(last=False)
                self._total -= old.nbytes
        return upload

    def get(self, upload_id: str) -> np.ndarray:
        """The RGB image (H, W, 3) uint8, read-only. Raises KeyError when unknown or evicted."""
        with self._lock:
            return self._items[upload_id][1]

    def info(self, upload_id: str) -> Upload:
        """The record of an upload. Raises KeyError when unknown or evicted."""
        with self._lock:
            return self._items[upload_id][0]

    def __contains__(self, upload_id: object) -> bool:
        with self._lock:
            return upload_id in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class RateLimiter:
    """At most ``limit`` events per ``window_s`` per key (a sliding window), with bounded memory."""

    def __init__(self, limit: int, window_s: float = 60.0, max_keys: int = 4096) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._events: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()

    def hit(self, key: str, now: float | None = None) -> float:
        """Record an event; 0 when allowed, else seconds until one would be."""
        now = time.monotonic() if now is None else now
        events = self._events.pop(key, None) or collections.deque()
        while events and events[0] <= now - self.window_s:
            events.popleft()
        self._events[key] = events  # most recently seen last
        if len(self._events) > self.max_keys:
            self._events.popitem(last=False)
        if len(events) >= self.limit:
            return max(0.0, events[0] + self.window_s - now)
        events.append(now)
        return 0.0


def decode_image(data: bytes, limits: UploadLimits) -> tuple[np.ndarray, str]:
    """Encoded JPEG/PNG/WebP → (RGB (H, W, 3) uint8, its media type), upright per EXIF.

    Raises:
        UploadError: 413 when the header claims too many pixels, 400 when not a
            readable JPEG/PNG/WebP.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        # Only these decoders: a "PNG" must not reach PIL's rarer, riskier parsers.
        im = Image.open(io.BytesIO(data), formats=list(CONTENT_TYPES.values()))
    except Image.DecompressionBombError:  # a header claiming over twice PIL's own pixel cap
        raise _too_many_pixels(limits) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise UploadError(400, "bad_image", "Not a readable JPEG, PNG or WebP image.") from None
    with im:
        width, height = im.size
        if max(width, height) > limits.max_side or width * height > limits.max_pixels:
            raise _too_many_pixels(limits)
        if width < 1 or height < 1:
            raise UploadError(400, "bad_image", "The image is empty.")
        # Phones' multi-picture JPEGs open as "MPO"; the first picture is a plain JPEG.
        content_type = _FORMAT_TYPES.get(im.format or "", "image/jpeg")
        try:
            im.load()
            upright = ImageOps.exif_transpose(im)
            rgb = np.asarray(upright.convert("RGB"), dtype=np.uint8)
        except (OSError, SyntaxError, ValueError, EOFError):  # truncated or corrupt pixel data
            raise UploadError(400, "bad_image", "The image data is corrupt or truncated.") from None
    return rgb, content_type


def _too_many_pixels(limits: UploadLimits) -> UploadError:
    return UploadError(413, "image_too_large",
                       f"The image is too large: at most {limits.max_side} pixels a side and "
                       f"{limits.max_pixels / 1e6:.1f} megapixels.")


def _media_type(value: str | None) -> str:
    mime = (value or "").split(";", 1)[0].strip().lower()
    mime = _ALIASES.get(mime, mime)
    if mime not in CONTENT_TYPES:
        raise UploadError(415, "unsupported_type",
                          f"Send a JPEG, PNG or WebP image (image/jpeg, image/png, image/webp), not {mime or 'nothing'}.")
    return mime


def _too_big(limits: UploadLimits) -> UploadError:
    return UploadError(413, "too_large", f"The upload is over {limits.max_bytes / MIB:g} MiB.")


async def _read_capped(read_chunk: Callable[[int], Awaitable[bytes]], cap: int, too_big: UploadError) -> bytes:
    """Read until the end, raising ``too_big`` as soon as more than ``cap`` bytes arrived."""
    buf = bytearray()
    while chunk := await read_chunk(_CHUNK):
        buf += chunk
        if len(buf) > cap:
            raise too_big
    return bytes(buf)


async def read_upload(request: web.Request, limits: UploadLimits) -> tuple[bytes, str]:
    """The encoded image and its declared media type, from a raw or multipart body.

    Raises:
        UploadError: 415 for another type, 413 past ``max_bytes``, 400 for a form
            without exactly one ``file`` field.
    """
    declared = request.content_length
    if request.content_type == "multipart/form-data":
        if declared is not None and declared > limits.max_bytes + _MULTIPART_SLACK:
            raise _too_big(limits)
        return await _read_form(request, limits)
    mime = _media_type(request.content_type)
    if declared is not None and declared > limits.max_bytes:
        raise _too_big(limits)  # refused on the header alone: nothing of the body read
    return await _read_capped(request.content.read, limits.max_bytes, _too_big(limits)), mime


async def _read_form(request: web.Request, limits: UploadLimits) -> tuple[bytes, str]:
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError):  # e.g. no boundary
        raise UploadError(400, "bad_request", "A malformed multipart form.") from None
    found: tuple[bytes, str] | None = None
    other = 0  # bytes of fields other than `file`, capped so a form cannot stream for ever
    for _ in range(16):
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise UploadError(400, "bad_request", "Nested multipart forms are not accepted.")
        if part.name == "file":
            if found is not None:
                raise UploadError(400, "bad_request", "Send one file field named 'file'.")
            mime = _media_type(part.headers.get("Content-Type"))
            found = (await _read_capped(part.read_chunk, limits.max_bytes, _too_big(limits)), mime)
        else:
            other += len(await _read_capped(part.read_chunk, _MULTIPART_SLACK - other,
                                            UploadError(413, "too_large", "The form's other fields are too large.")))
    else:
        raise UploadError(400, "bad_request", "Too many fields in the form.")
    if found is None:
        raise UploadError(400, "bad_request", "The form has no file field named 'file'.")
    return found


def upload_handler(store: UploadStore, limits: UploadLimits) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The ``POST /upload`` handler. Access (Origin, token) is the middleware's job."""
    limiter = RateLimiter(limits.per_minute, 60.0)

    async def handle(request: web.Request) -> web.Response:
        try:
            wait = limiter.hit(request.remote or "?")
            if wait > 0:
                return json_error(429, "rate_limited", "Too many uploads; try again in a minute.",
                                  {"Retry-After": str(max(1, round(wait)))})
            data, _declared = await read_upload(request, limits)
            # Decoding a 16-megapixel JPEG takes a while: off the loop.
            rgb, actual = await asyncio.get_running_loop().run_in_executor(None, decode_image, data, limits)
        except UploadError as e:
            log.info("upload from %s refused: %s", request.remote, e.code)
            response = json_error(e.status, e.code, e.message)
            if e.status == 413:
                response.force_close()  # the rest of that body is not worth a kept-alive connection
            return response
        upload = store.add(rgb, nbytes=len(data), content_type=actual)
        log.info("upload %s: %dx%d %s, %d bytes", upload.id, upload.width, upload.height, actual, len(data))
        return web.json_response(upload.to_json())

    return handle


UPLOADS_KEY = web.AppKey("tricam_uploads", UploadStore)
"""Where :func:`streamer.server.create_app` keeps the store (features look uploads up by id)."""
