"""Run a command in a fresh network namespace that has only ``lo``, so nothing it does can
reach another machine (or this machine's other addresses).

Needs root and util-linux ``unshare``; :func:`unavailable` says why not when it cannot work.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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


@dataclass
class IsolatedRun:
    result: dict[str, Any]
    """What the inside script wrote to its ``--out`` JSON (empty if it wrote nothing)."""
    returncode: int | None
    stderr: str
    wall_s: float


def run_isolated(module: str, args: Sequence[str], *, out: Path, cwd: Path, timeout: float) -> IsolatedRun:
    """``python -m module args --out OUT`` in a fresh namespace, in its own process group.

    The whole group is killed on timeout and again after exit, so a hung run cannot leave a
    server or browser behind.
    """
    t0 = time.monotonic()
    proc = subprocess.Popen(
        command([sys.executable, "-m", module, *args, "--out", str(out)]),
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
    with contextlib.suppress(ProcessLookupError):  # stragglers of a run that did finish
        os.killpg(proc.pid, signal.SIGKILL)
    result: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    return IsolatedRun(result, proc.returncode, stderr, round(time.monotonic() - t0, 1))
