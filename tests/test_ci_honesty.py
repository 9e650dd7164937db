"""A browser test that skips fails the run where CI is set (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SKIPPING = '''
import pytest

@pytest.mark.browser
def test_needs_a_browser():
    pytest.skip("no browser here")

def test_plain_skip():
    pytest.skip("not a browser test")
'''


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    test = tmp_path / "test_skipping.py"
    test.write_text(SKIPPING)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-c", str(ROOT / "pyproject.toml"),
         "--rootdir", str(tmp_path), str(test)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def test_browser_skip_fails_under_ci(tmp_path: Path) -> None:
    run = _run(tmp_path, "1")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 1 skipped" in run.stdout
    assert "may not skip" in run.stdout and "no browser here" in run.stdout


def test_browser_skip_is_a_skip_elsewhere(tmp_path: Path) -> None:
    for ci in (None, "0", "false"):
        run = _run(tmp_path, ci)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "2 skipped" in run.stdout
