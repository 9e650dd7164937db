"""scripts/bench_load.py end to end, briefly: a real server subprocess, real aiortc calls on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts import bench_load

CALL_KEYS = {"call", "session", "frames_sent", "frames_received", "frames_lost", "frames_misread",
             "frames_skipped_by_client", "sent_fps", "received_fps", "latency_p50_ms", "latency_p95_ms",
             "latency_max_ms", "server_reported"}


@pytest.fixture(scope="module")
def server() -> Iterator[bench_load.ServerHandle]:
    # One server for both runs: its start (engine, 3D core) is the slowest part.
    with bench_load.tricam_server(max_sessions=2, sample_s=4.0) as s:
        yield s


def test_two_calls_flow_and_report(server: bench_load.ServerHandle) -> None:
    r = bench_load.run_load(calls=2, style="none", seconds=4.0, warmup=0.5, source="synthetic", server=server)
    assert r["mode"] == "load"
    assert {"machine", "config", "summary", "calls", "server", "client"} <= r.keys()
    assert len(r["calls"]) == 2
    for call in r["calls"]:
        assert CALL_KEYS <= call.keys()
        assert call["received_fps"] > 0
        assert call["latency_p50_ms"] is not None and call["latency_p50_ms"] > 0
        assert call["server_reported"]["pushes"] >= 1  # the server's own stats pushes arrived
    assert len({c["session"] for c in r["calls"]}) == 2  # one websocket session per call
    assert r["server"]["cpu_percent_of_one_core"] > 0


def test_short_soak_has_rows_and_slopes(server: bench_load.ServerHandle, tmp_path: Path) -> None:
    # warmup 0: the soak starts at the sampler's next row anyway.
    r = bench_load.run_soak(seconds=12.0, warmup=0.0, source="synthetic", server=server)
    soak = r["soak"]
    rows = soak["rows"]
    assert len(rows) >= 2
    assert all({"t_s", "rss_mb", "fds", "sockets", "threads", "tasks"} <= row.keys() for row in rows)
    assert all(row["tasks"] > 0 and row["rss_mb"] > 0 for row in rows)
    assert any((row.get("received_fps") or 0) > 0 for row in rows[1:])
    assert {"rss_mb_per_min", "fds_per_min", "tasks_per_min", "threads_per_min",
            "latency_p50_ms_per_min"} <= soak["slopes"].keys()
    assert soak["flat"].keys() == soak["relative_change"].keys()
    assert "rule" in soak
    bench_load.plot_soak(r, tmp_path / "soak.png")
    assert (tmp_path / "soak.png").stat().st_size > 0


def test_rejects_sizes_the_stamp_does_not_fit() -> None:
    with pytest.raises(ValueError, match="--size"):
        bench_load.Config(size=(320, 240)).check()


def test_trends_flags_a_growing_count() -> None:
    rows = [{"t_s": 60.0 * i, "rss_mb": 300.0 + 5.0 * i, "fds": 20 + 3 * i, "sockets": 3, "threads": 11,
             "tasks": 13, "latency_p50_ms": 80.0, "received_fps": 30.0} for i in range(11)]
    t = bench_load.trends(rows, skip_s=60.0)
    assert t["flat"]["rss_mb"] is False and t["flat"]["fds"] is False
    assert t["flat"]["tasks"] is True and t["flat"]["latency_p50_ms"] is True
    assert t["slopes"]["fds_per_min"] == pytest.approx(3.0)
    assert t["all_flat"] is False
