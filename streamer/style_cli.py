"""``tricam style NAME``: switch a running server's style from a shell or a hotkey.

One websocket to ``/ws`` (docs/protocol.md): wait for ``hello``, send one ``set_style``
(or ``list_styles``) with ``id`` 1, read the reply carrying that id, close. The message
asks for ``scope: "server"`` so the style reaches every live session of the server — the
call feeding the virtual camera — not only this short-lived one.

Exit status: 0 done (one result on stdout), 1 the server refused (its message is
logged), 2 no usable server (refused connection, 401/403, timeout, busy).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from streamer.auth import TOKEN_ENV

log = logging.getLogger(__name__)

DESCRIPTION = "Switch the style of a running tricam server (tricam serve or tricam cam), e.g. from a hotkey."
DEFAULT_URL = "ws://127.0.0.1:8080/ws"
REQUEST_ID = 1


class Unreachable(Exception):
    """No usable server at the URL: the message says why (exit status 2)."""


class Refused(Exception):
    """The server answered with an ``error`` (exit status 1)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="style to switch to (see --list)")
    parser.add_argument("--intensity", type=float, default=None, help="style intensity (default: the style's)")
    parser.add_argument("--list", action="store_true", help="print the server's style names, one a line")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the server's websocket (default {DEFAULT_URL}); "
                        "an http:// page address works too")
    parser.add_argument("--token", default=None, help=f"the server's token (default ${TOKEN_ENV})")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="S",
                        help="give up after S seconds (default 5)")


def ws_url(url: str) -> str:
    """``http(s)://host:port[/]`` → ``ws(s)://host:port/ws``; a ws(s) URL is kept as is."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(f"--url needs a ws://, wss://, http:// or https:// address, got {url!r}")
    path = "/ws" if parts.scheme in ("http", "https") and parts.path in ("", "/") else parts.path
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    """The one message this command sends."""
    if args.list:
        return {"type": "list_styles", "id": REQUEST_ID}
    msg: dict[str, Any] = {"type": "set_style", "style": args.name, "scope": "server", "id": REQUEST_ID}
    if args.intensity is not None:
        msg["intensity"] = args.intensity
    return msg


async def exchange(url: str, message: dict[str, Any], token: str | None, timeout: float) -> dict[str, Any]:
    """Send ``message`` after ``hello``; returns the server's reply with the same ``id``.

    Raises:
        Unreachable: no connection, refused handshake (401/403), ``busy``, timeout.
    """
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        async with asyncio.timeout(timeout):
            # No proxy: a hotkey talks to a server on this machine or LAN, never through one.
            async with connect(url, additional_headers=headers, proxy=None, open_timeout=None) as ws:
                async for raw in ws:
                    msg = json.loads(raw)
                    if not isinstance(msg, dict):
                        continue
                    if msg.get("type") == "hello":
                        await ws.send(json.dumps(message))
                    elif msg.get("id") == message["id"]:
                        return msg
                    elif msg.get("type") == "error" and msg.get("code") == "busy":
                        raise Unreachable(f"the server at {url} is busy: {msg.get('message')}")
                raise Unreachable(f"the server at {url} closed the connection without replying")
    except InvalidStatus as e:
        status = e.response.status_code
        why = {401: "it needs the right token (--token or $TRICAM_TOKEN)",
               403: "it refused this client's origin"}.get(status, f"HTTP {status}")
        raise Unreachable(f"the server at {url} refused the connection: {why}") from None
    except TimeoutError:
        raise Unreachable(f"no reply from {url} within {timeout:g} s") from None
    except InvalidURI as e:
        raise Unreachable(f"not a websocket URL: {e}") from None
    except (OSError, InvalidHandshake, ConnectionClosed) as e:
        raise Unreachable(f"cannot reach a tricam server at {url}: {e or type(e).__name__}") from None
    except json.JSONDecodeError:
        raise Unreachable(f"{url} does not speak the tricam protocol") from None


def outcome(reply: dict[str, Any]) -> str:
    """The result line for a reply. Raises :class:`Refused` for an ``error``."""
    kind = reply.get("type")
    if kind == "error":
        raise Refused(str(reply.get("message") or reply.get("code")))
    try:
        if kind == "state":
            return f"style {reply['style']} intensity {float(reply['intensity']):g}"
        if kind == "styles":
            return "\n".join(str(s["name"]) for s in reply["styles"])
    except (KeyError, TypeError, ValueError):
        raise Refused(f"a malformed {kind!r} reply") from None
    raise Refused(f"unexpected reply {kind!r}")


def run(args: argparse.Namespace) -> int:
    if args.list == (args.name is not None):
        log.error("give a style NAME or --list (one of them)")
        return 2
    try:
        url = ws_url(args.url)
    except ValueError as e:
        log.error("%s", e)
        return 2
    token = args.token or os.environ.get(TOKEN_ENV) or None
    try:
        reply = asyncio.run(exchange(url, build_request(args), token, args.timeout))
        line = outcome(reply)
    except Unreachable as e:
        log.error("%s", e)
        return 2
    except Refused as e:
        log.error("the server refused: %s", e)
        return 1
    sys.stdout.write(line + "\n")
    return 0
