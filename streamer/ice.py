"""Restricting the ICE host candidates a peer connection offers.

aioice gathers host candidates from every interface address, and it always skips
127.0.0.1 (``aioice.ice.get_host_addresses``), so a server cannot be told "offer loopback
only" through any aioice or aiortc option. We wrap that module-level function once: the
wrapper returns the addresses held in a :class:`contextvars.ContextVar` when one is set,
and defers to aioice otherwise. aiortc gathers inside the coroutine that calls
``setLocalDescription`` (through ``asyncio.gather``, whose tasks copy the caller's
context), so only connections negotiated under :func:`host_addresses` are affected; every
other connection in the process keeps aioice's behaviour.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import logging
import threading
from collections.abc import Callable, Iterator, Sequence

import aioice.ice

log = logging.getLogger(__name__)

_HOSTS: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar("tricam_ice_hosts", default=None)
_install_lock = threading.Lock()
_original: Callable[..., list[str]] | None = None


def _restricted(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    hosts = _HOSTS.get()
    assert _original is not None
    if hosts is None:
        return _original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    out = []
    for h in hosts:
        v = ipaddress.ip_address(h).version
        if (v == 4 and use_ipv4) or (v == 6 and use_ipv6):
            out.append(h)
    return out


def install() -> None:
    """Wrap aioice's host-address lookup (idempotent, behaviour-neutral until a restriction is set)."""
    global _original
    with _install_lock:
        if _original is not None:
            return
        _original = aioice.ice.get_host_addresses
        aioice.ice.get_host_addresses = _restricted


def validate_hosts(hosts: Sequence[str]) -> tuple[str, ...]:
    """Normalise a list of literal IP addresses; raises ``ValueError`` on anything else."""
    return tuple(str(ipaddress.ip_address(h)) for h in hosts)


@contextlib.contextmanager
def host_addresses(hosts: Sequence[str] | None) -> Iterator[None]:
    """Within this context, peer connections gather host candidates only on ``hosts``.

    ``None`` or an empty sequence means no restriction (aioice's own choice).
    """
    if not hosts:
        yield
        return
    install()
    token = _HOSTS.set(validate_hosts(hosts))
    try:
        yield
    finally:
        _HOSTS.reset(token)
