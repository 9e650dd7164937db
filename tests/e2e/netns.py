"""Run a command in a fresh network namespace that has only ``lo``, so nothing it does can
reach another machine (or this machine's other addresses).

Needs root and util-linux ``unshare``; :func:`unavailable` says why not when it cannot work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence


def unavailable() -> str | None:
    """None when :func:`command` can be used here; otherwise the reason, for a skip message."""
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "a fresh network namespace (unshare -n) needs root"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (util-linux / iproute2)"
    try:
        probe = subprocess.run(
            ["unshare", "-n", "--", "ip", "link", "set", "lo", "up"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unshare -n failed: {e}"
    if probe.returncode != 0:
        return f"unshare -n is not permitted here: {probe.stderr.strip() or probe.returncode}"
    return None


def command(argv: Sequence[str]) -> list[str]:
    """``argv`` wrapped to run in a new network namespace (call :func:`bring_up_loopback` inside)."""
    return ["unshare", "-n", "--", *argv]


def bring_up_loopback() -> None:
    """Inside the namespace: bring ``lo`` up and refuse to go on if any other link exists."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=10)
    links = subprocess.run(["ip", "-o", "link", "show"], check=True, capture_output=True, text=True, timeout=10)
    names = [line.split(":")[1].strip().split("@")[0] for line in links.stdout.splitlines() if line.strip()]
    if names != ["lo"]:
        raise RuntimeError(f"not an isolated namespace: links {names}; refusing to start a browser here")
