"""Suite-wide rules.

CI honesty: where the ``CI`` environment variable is set (``.ci/run`` sets it), a test
marked ``browser`` that skips is reported as a failure with the skip's reason, so CI
cannot go green without its real-browser tests. Elsewhere they skip with their reason.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest


def ci_requires_browsers() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, Any]:
    report = yield
    if report.skipped and item.get_closest_marker("browser") is not None and ci_requires_browsers():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI is set, so a real-browser test may not skip; it skipped because: {reason}"
    return report
