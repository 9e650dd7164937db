"""Who may act on a tricam server: an Origin check and an optional token.

Any web page a person visits can open ``ws://127.0.0.1:8080/ws``; without a check it
could switch styles or send video into their virtual camera. :class:`AccessPolicy` says
who may act, and :func:`access_middleware` enforces it before any handler runs, so a
refused websocket is never upgraded and a refused upload never read:

- **Origin.** A request that carries an ``Origin`` header (browsers always send one on
  websockets and on POSTs) must come from the page's own origin or from an
  ``--allow-origin`` entry; anything else — ``null`` included — gets 403. Without a
  token, the page's own origin only counts when the ``Host`` header names a loopback
  address: a DNS-rebinding page (``http://evil.example:8080`` resolving to 127.0.0.1)
  is same-origin with itself, but it cannot name itself ``localhost``. Requests without
  ``Origin`` (``tricam style``, curl, aiortc clients) pass this check.
- **Token.** With a token, every protected request must present it, as the query
  parameter ``token`` or ``Authorization: Bearer TOKEN``; otherwise 401.

Commands share the options: :func:`add_access_arguments` adds ``--token`` and
``--allow-origin``, :func:`policy_from_args` turns them (and ``TRICAM_TOKEN``) into a
policy, generating a token when the server listens beyond loopback without one.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import logging
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:  # aiohttp is imported where it is used, so `tricam serve --help` stays quick
    from aiohttp import web
    from aiohttp.abc import AbstractAccessLogger
    from aiohttp.typedefs import Handler, Middleware

log = logging.getLogger(__name__)

TOKEN_ENV = "TRICAM_TOKEN"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(text: str) -> str:
    """``scheme://host[:port]`` in canonical form: lowercase, default port and trailing slash dropped.

    Raises:
        ValueError: not an http(s) origin (a path, query, user info or ``null``).
    """
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        raise ValueError(f"not an origin: {text!r}") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None or parts.password is not None:
        raise ValueError(f"not an http(s) origin: {text!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"an origin has no path, query or fragment: {text!r}")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _origin_arg(text: str) -> str:
    try:
        return normalize_origin(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{e} (e.g. https://example.com:8443)") from None


def _token_arg(text: str) -> str:
    if not text or any(c.isspace() or not c.isprintable() for c in text):
        raise argparse.ArgumentTypeError("a token must be non-empty, without spaces or control characters")
    return text


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (with or without brackets or a port-free Host)."""
    name = host.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AccessPolicy:
    """Who may act on the server (open ``/ws``, ``POST /upload``).

    Static files and ``/healthz`` are public; everything else is checked.
    """

    token: str | None = None
    """Required on every protected request when set (query ``token`` or ``Authorization: Bearer``)."""
    allowed_origins: tuple[str, ...] = ()
    """Browser origins accepted besides the page's own; normalised by :func:`normalize_origin`."""

    def __post_init__(self) -> None:
        if self.token is not None and not self.token:
            raise ValueError("an empty token would match nothing a client can send; use None for no token")
        object.__setattr__(self, "allowed_origins", tuple(normalize_origin(o) for o in self.allowed_origins))


@dataclass(frozen=True)
class Denied:
    """Why a request was refused: HTTP status, a stable code, a short sentence."""

    status: int
    code: str
    message: str


def check_origin(policy: AccessPolicy, origin: str | None, host: str, secure: bool) -> Denied | None:
    """The Origin rule for one request; ``host`` is its ``Host`` header. None: allowed."""
    if origin is None:
        return None  # not a browser: browsers always send Origin where it matters
    try:
        claimed = normalize_origin(origin)
    except ValueError:  # "null" (sandboxed frames, file:// pages) or garbage: foreign
        return Denied(403, "forbidden_origin", "Requests from other web pages are not allowed.")
    if claimed in policy.allowed_origins:
        return None
    try:
        own = normalize_origin(f"{'https' if secure else 'http'}://{host}")
    except ValueError:
        own = None
    # Same-origin alone proves nothing without a token when the name may be rebound.
    if claimed == own and (policy.token is not None or is_loopback(_hostname(host))):
        return None
    return Denied(403, "forbidden_origin", "Requests from other web pages are not allowed.")


def _hostname(host: str) -> str:
    try:
        return urlsplit(f"//{host}").hostname or ""
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return ""


def presented_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The token a request carries: ``Authorization: Bearer`` first, else query ``token``."""
    auth = headers.get("Authorization")
    if auth is not None:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer":
            return value.strip()
    return query.get("token")


def check_token(policy: AccessPolicy, presented: str | None) -> Denied | None:
    """The token rule for one request. None: allowed."""
    if policy.token is None:
        return None
    if not presented:
        return Denied(401, "token_required", "A token is required.")
    # Constant-time, on bytes: compare_digest refuses non-ASCII str.
    if not hmac.compare_digest(presented.encode("utf-8"), policy.token.encode("utf-8")):
        return Denied(401, "bad_token", "Wrong token.")
    return None


def check_request(policy: AccessPolicy, request: web.BaseRequest) -> Denied | None:
    """Both rules for one request, Origin first (it needs no secret to answer)."""
    return check_origin(policy, request.headers.get("Origin"), request.host, request.secure) or check_token(
        policy, presented_token(request.headers, request.query)
    )


def json_error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """The body every refusal shares: ``{"error": {"code", "message"}}``."""
    from aiohttp import web

    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


def access_middleware(policy: AccessPolicy, is_public: Callable[[web.Request], bool]) -> Middleware:
    """An aiohttp middleware applying ``policy`` to every request ``is_public`` does not exempt.

    Requests that match no route (404/405) pass through: they act on nothing. Refusals
    are JSON (:func:`json_error`) and happen before the handler, so a websocket is never
    upgraded and an upload body never read.
    """
    from aiohttp import web

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.http_exception is None and not is_public(request):
            denied = check_request(policy, request)
            if denied is not None:
                log.info("refused %s %s from %s: %s", request.method, request.path, request.remote, denied.code)
                headers = {"WWW-Authenticate": "Bearer"} if denied.status == 401 else None
                return json_error(denied.status, denied.code, denied.message, headers)
        return await handler(request)

    return middleware


def page_url(host: str, port: int, token: str | None) -> str:
    """The page address to open, carrying the token when there is one."""
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    url = f"http://{shown}:{port}/"
    return f"{url}?token={quote(token, safe='')}" if token else url


# --- command line ------------------------------------------------------------------------


def add_access_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add ``--token`` and ``--allow-origin`` (repeatable) to a server command's parser.

    Pair with :func:`policy_from_args`; ``args.token`` and ``args.allow_origin`` hold the
    values (``allow_origin`` already normalised).
    """
    parser.add_argument("--token", type=_token_arg, default=None,
                        help=f"clients must present this token (query ?token= or Authorization: Bearer); "
                             f"default: ${TOKEN_ENV}, else none on loopback and a generated one otherwise")
    parser.add_argument("--allow-origin", dest="allow_origin", action="append", type=_origin_arg, default=[],
                        metavar="ORIGIN",
                        help="also accept browser requests from this origin, e.g. https://tricam.example "
                             "(repeatable; the page's own origin is always accepted)")


def policy_from_args(
    args: argparse.Namespace, host: str, environ: Mapping[str, str] | None = None
) -> tuple[AccessPolicy, str | None]:
    """The policy a command's ``--token``/``--allow-origin`` ask for, listening on ``host``.

    The token is ``--token``, else ``$TRICAM_TOKEN`` (empty counts as unset), else — when
    ``host`` is not a loopback address — a fresh ``secrets.token_urlsafe(24)``, announced
    with a WARNING that carries the page URL (``args.port`` if present). On loopback
    without a token none is needed.

    Returns:
        (policy, the generated token or None when it was given or not needed).

    Raises:
        ValueError: ``$TRICAM_TOKEN`` is not a usable token.
    """
    env = os.environ if environ is None else environ
    token: str | None = getattr(args, "token", None)
    if token is None and env.get(TOKEN_ENV):
        try:
            token = _token_arg(env[TOKEN_ENV])
        except argparse.ArgumentTypeError as e:
            raise ValueError(f"${TOKEN_ENV}: {e}") from None
    generated = None
    if token is None and not is_loopback(host):
        token = generated = secrets.token_urlsafe(24)
        port = getattr(args, "port", None)
        log.warning(
            "listening on %s, beyond this machine, and no --token given: generated one. Open %s "
            "(use this machine's address if %s is not reachable by name)",
            host, page_url(host, port if port is not None else 8080, token), host,
        )
    policy = AccessPolicy(token=token, allowed_origins=tuple(getattr(args, "allow_origin", None) or ()))
    return policy, generated


def token_safe_access_logger() -> type[AbstractAccessLogger]:
    """An aiohttp access logger that never logs query strings or Referer (they carry the token).

    Pass as ``web.AppRunner(app, access_log_class=token_safe_access_logger())``.
    """
    from aiohttp.abc import AbstractAccessLogger

    class TokenSafeAccessLogger(AbstractAccessLogger):
        def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
            self.logger.info(
                '%s "%s %s" %d %.1f ms', request.remote, request.method, request.path, response.status, time * 1000
            )

    return TokenSafeAccessLogger
