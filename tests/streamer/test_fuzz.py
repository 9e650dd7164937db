"""Fuzzing the live server (scripts/fuzz_server.py): protocol, offers, frames.

Bounded for the default suite; the ``slow`` variants run the same generators longer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings

from scripts.fuzz_server import (
    ThreadedServer,
    call_still_works,
    fuzz_server_kwargs,
    protocol_messages,
    run_frame_fuzz,
    run_image_fuzz,
    run_protocol_fuzz,
    run_sdp_fuzz,
)
from streamer import protocol as p

pytestmark = pytest.mark.timeout(240)


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(protocol_messages())
def test_parse_accepts_or_refuses_clearly(message: str | bytes) -> None:
    try:
        parsed = p.parse(message)
    except p.ProtocolError as e:
        reply = p.from_exception(e)
        assert reply["message"] and reply["code"] in p.ErrorCode.__args__  # type: ignore[attr-defined]
        json.loads(p.encode(reply))  # the refusal itself is valid JSON a browser can parse
        return
    assert isinstance(parsed, p.Offer | p.SetStyle | p.ListStyles | p.GetStats | p.Bye)


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    with ThreadedServer(**fuzz_server_kwargs()) as s:
        yield s


def test_protocol_fuzz_over_a_real_websocket(server: ThreadedServer) -> None:
    fuzz = run_protocol_fuzz(server.url, 150, seed=1)
    assert fuzz.inputs >= 150
    errors = sum(v for k, v in fuzz.tally.items() if k.startswith("error:"))
    assert errors > 0 and set(fuzz.tally) & {"state", "styles", "stats"}  # refused and accepted both seen
    assert not [k for k in fuzz.tally if k.startswith("closed:")]
    assert asyncio.run(call_still_works(server.url, 2.0)) > 0


def test_malformed_offers_are_refused_and_the_session_lives(server: ThreadedServer) -> None:
    tally = asyncio.run(run_sdp_fuzz(server.url, 40, seed=2))
    assert tally.pop("session_alive") == 1
    assert sum(tally.values()) == 40
    assert set(tally) <= {"answer", "error:bad_sdp", "error:too_many_tracks", "error:bad_message",
                          "error:too_large"}, tally
    assert tally["error:bad_sdp"] >= 10


def test_random_frame_sizes_and_formats() -> None:
    tally = run_frame_fuzz(60, seed=3)
    assert tally["ok"] + tally["passed_through_after_error"] == 60
    assert tally["ok"] >= 50  # nearly every size and format is edited, not just survived


def test_corrupt_uploads_get_4xx_and_the_server_keeps_serving(server: ThreadedServer) -> None:
    base = server.url.replace("ws://", "http://").removesuffix("/ws")
    tally = asyncio.run(run_image_fuzz(base, 60, seed=4))
    assert sum(tally.values()) == 60
    assert tally["413:image_too_large"] >= 2 and tally["415:unsupported_type"] >= 2, tally
    assert tally["400:bad_image"] >= 10, tally
    assert asyncio.run(call_still_works(server.url, 1.5)) > 0


@pytest.mark.slow
def test_long_fuzz(server: ThreadedServer) -> None:
    fuzz = run_protocol_fuzz(server.url, 3000, seed=11)
    assert not [k for k in fuzz.tally if k.startswith("closed:")]
    tally = asyncio.run(run_sdp_fuzz(server.url, 600, seed=12))
    assert tally.pop("session_alive") == 1
    frames = run_frame_fuzz(1000, seed=13)
    assert frames["ok"] + frames["passed_through_after_error"] == 1000
    assert asyncio.run(call_still_works(server.url, 2.0)) > 0
