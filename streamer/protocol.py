"""The ``/ws`` protocol (docs/protocol.md) as pure functions: parse, validate, build replies.

Nothing here touches a socket or the event loop, so every rule is tested directly. The
websocket handler in ``streamer.session`` is a thin adapter: it feeds raw messages to
:func:`parse`, turns :class:`ProtocolError` into an ``error`` reply, and encodes what the
builders return.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from engine.api import EngineError, IntensityError, StyleInfo, StyleRegistry, UnknownStyleError

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024
"""Largest text message the server accepts; larger ones get ``too_large``."""

ErrorCode = Literal[
    "bad_json", "bad_message", "too_large", "unknown_style", "out_of_range", "bad_sdp", "busy", "internal",
    "rate_limited", "too_many_tracks", "style_failed", "style_timeout", "sink_failed", "bad_frame",
]
FATAL_CODES: frozenset[str] = frozenset({"busy", "bad_sdp"})
"""Errors after which the client's call cannot go on as it is: it reconnects (with backoff).
Every other error leaves the session and its call running; the client shows it and goes on."""
Mode = Literal["webrtc", "control"]
Scope = Literal["session", "server"]


class ProtocolError(Exception):
    """A message the server refuses; becomes an ``error`` reply, the session stays up."""

    def __init__(self, code: ErrorCode, message: str, request_id: Any = None) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.request_id = request_id


# --- client -> server -----------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    sdp: str
    id: Any = None


@dataclass(frozen=True)
class SetStyle:
    style: str
    intensity: float | None = None
    id: Any = None
    scope: Scope = "session"
    """``server``: every live session of this server takes the style (a hotkey from a terminal
    reaches the call that feeds the virtual camera), and sessions that open later start with it."""


@dataclass(frozen=True)
class ListStyles:
    id: Any = None


@dataclass(frozen=True)
class GetStats:
    id: Any = None


@dataclass(frozen=True)
class Bye:
    id: Any = None


ClientMessage = Offer | SetStyle | ListStyles | GetStats | Bye


def _request_id(obj: Mapping[str, Any]) -> Any:
    rid = obj.get("id")
    # Echo only JSON scalars: a client's id is a handle, not a payload to bounce back.
    if rid is None or isinstance(rid, str | int | float | bool):
        return rid
    return None


def _str_field(obj: Mapping[str, Any], name: str, kind: str, rid: Any) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise ProtocolError("bad_message", f"{kind} needs a non-empty string field {name!r}.", rid)
    return value


def parse(raw: str | bytes) -> ClientMessage:
    """Turn one websocket message into a client message, or raise :class:`ProtocolError`.

    ``bytes`` means a binary websocket frame, which the protocol does not use.
    """
    if isinstance(raw, bytes | bytearray):
        raise ProtocolError("bad_message", "Binary messages are not part of this protocol; send JSON text.")
    # A UTF-8 character takes 1-4 bytes: only encode when the character count leaves doubt.
    size = len(raw) if len(raw) > MAX_MESSAGE_BYTES or 4 * len(raw) <= MAX_MESSAGE_BYTES else len(
        raw.encode("utf-8", "surrogatepass")
    )
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            "too_large", f"Message too large (at least {size} bytes; the limit is {MAX_MESSAGE_BYTES} bytes)."
        )
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise ProtocolError("bad_json", f"Message is not valid JSON: {e}.") from None
    if not isinstance(obj, dict):
        raise ProtocolError("bad_message", "A message must be a JSON object with a 'type' field.")
    rid = _request_id(obj)
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad_message", "A message needs a string 'type' field.", rid)
    if kind == "offer":
        return Offer(sdp=_str_field(obj, "sdp", "offer", rid), id=rid)
    if kind == "set_style":
        style = _str_field(obj, "style", "set_style", rid)
        intensity = obj.get("intensity")
        if intensity is not None:
            # bool is an int in Python; a client sending true almost certainly has a bug.
            if isinstance(intensity, bool) or not isinstance(intensity, int | float):
                raise ProtocolError("bad_message", "set_style's 'intensity' must be a number.", rid)
            intensity = float(intensity)
            if not math.isfinite(intensity):
                raise ProtocolError("out_of_range", f"intensity {intensity} is not a finite number.", rid)
        scope = obj.get("scope", "session")
        if scope not in ("session", "server"):
            raise ProtocolError("bad_message", "set_style's 'scope' must be \"session\" or \"server\".", rid)
        return SetStyle(style=style, intensity=intensity, id=rid, scope=scope)
    if kind == "list_styles":
        return ListStyles(id=rid)
    if kind == "get_stats":
        return GetStats(id=rid)
    if kind == "bye":
        return Bye(id=rid)
    raise ProtocolError(
        "bad_message",
        f"Unknown message type {kind!r}; expected one of offer, set_style, list_styles, get_stats, bye.",
        rid,
    )


def validate_style(registry: StyleRegistry, msg: SetStyle) -> tuple[str, float]:
    """The (style, intensity) a ``set_style`` asks for, checked against the registry."""
    try:
        intensity = registry.validate(msg.style, msg.intensity)
    except UnknownStyleError as e:
        raise ProtocolError("unknown_style", str(e), msg.id) from None
    except IntensityError as e:
        raise ProtocolError("out_of_range", str(e), msg.id) from None
    except EngineError as e:  # any other refusal from the engine is still the client's request
        raise ProtocolError("bad_message", str(e), msg.id) from None
    return msg.style, intensity


# --- server -> client -----------------------------------------------------------------


def _with_id(msg: dict[str, Any], request_id: Any) -> dict[str, Any]:
    if request_id is not None:
        msg["id"] = request_id
    return msg


def hello(session: str, mode: Mode) -> dict[str, Any]:
    return {
        "type": "hello",
        "session": session,
        "version": PROTOCOL_VERSION,
        "mode": mode,
        "max_message_bytes": MAX_MESSAGE_BYTES,
    }


def answer(sdp: str, request_id: Any = None) -> dict[str, Any]:
    return _with_id({"type": "answer", "sdp": sdp}, request_id)


def styles(infos: Iterable[StyleInfo], current: str, request_id: Any = None) -> dict[str, Any]:
    return _with_id({"type": "styles", "styles": [i.to_json() for i in infos], "current": current}, request_id)


def state(style: str, intensity: float, request_id: Any = None) -> dict[str, Any]:
    return _with_id({"type": "state", "style": style, "intensity": intensity}, request_id)


STATS_FIELDS = (
    "fps_in", "fps_out", "latency_ms", "engine_ms", "dropped", "faces", "too_small",
    "frames_in", "frames_out", "style", "intensity", "uptime_s", "errors", "failing",
)


def stats(figures: Mapping[str, Any], request_id: Any = None) -> dict[str, Any]:
    """A ``stats`` message; fields the source lacks are sent as ``null`` so clients see one shape."""
    msg: dict[str, Any] = {"type": "stats"}
    for name in STATS_FIELDS:
        msg[name] = figures.get(name)
    return _with_id(msg, request_id)


def error(code: ErrorCode, message: str, request_id: Any = None, *, style: str | None = None) -> dict[str, Any]:
    """An ``error`` event; ``fatal`` tells the client whether to reconnect (see :data:`FATAL_CODES`)."""
    msg: dict[str, Any] = {"type": "error", "code": code, "message": message, "fatal": code in FATAL_CODES}
    if style is not None:
        msg["style"] = style
    return _with_id(msg, request_id)


def from_exception(exc: ProtocolError) -> dict[str, Any]:
    return error(exc.code, exc.message, exc.request_id)


def encode(msg: Mapping[str, Any]) -> str:
    # allow_nan=False: NaN/Infinity are not JSON and browsers' JSON.parse rejects them.
    return json.dumps(msg, allow_nan=False, separators=(",", ":"))
