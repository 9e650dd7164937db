"""The /ws protocol as pure functions: no sockets, no event loop."""

from __future__ import annotations

import json
import math

import pytest

from engine.api import StyleRegistry
from engine.styles.basic import Bronze, PassThrough
from streamer import protocol as p

REGISTRY = StyleRegistry([PassThrough(), Bronze()])


def code_of(raw: str | bytes) -> str:
    with pytest.raises(p.ProtocolError) as e:
        p.parse(raw)
    assert e.value.message  # every refusal explains itself
    return e.value.code


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"type": "offer", "sdp": "v=0"}', p.Offer(sdp="v=0")),
        ('{"type": "set_style", "style": "bronze"}', p.SetStyle(style="bronze")),
        ('{"type": "set_style", "style": "bronze", "intensity": 1}', p.SetStyle(style="bronze", intensity=1.0)),
        ('{"type": "list_styles", "id": "a"}', p.ListStyles(id="a")),
        ('{"type": "get_stats", "id": 12, "extra": [1, 2]}', p.GetStats(id=12)),
        ('{"type": "bye"}', p.Bye()),
    ],
)
def test_parse_valid(raw: str, expected: p.ClientMessage) -> None:
    assert p.parse(raw) == expected


def test_intensity_is_float() -> None:
    msg = p.parse('{"type": "set_style", "style": "bronze", "intensity": 1}')
    assert isinstance(msg, p.SetStyle) and type(msg.intensity) is float


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{nope", "bad_json"),
        ("", "bad_json"),
        ("[1, 2]", "bad_message"),
        ('"offer"', "bad_message"),
        ("{}", "bad_message"),
        ('{"type": 3}', "bad_message"),
        ('{"type": "dance"}', "bad_message"),
        ('{"type": "offer"}', "bad_message"),
        ('{"type": "offer", "sdp": ""}', "bad_message"),
        ('{"type": "set_style"}', "bad_message"),
        ('{"type": "set_style", "style": 5}', "bad_message"),
        ('{"type": "set_style", "style": "bronze", "intensity": "high"}', "bad_message"),
        ('{"type": "set_style", "style": "bronze", "intensity": true}', "bad_message"),
        ('{"type": "set_style", "style": "bronze", "intensity": NaN}', "out_of_range"),
        ('{"type": "set_style", "style": "bronze", "intensity": Infinity}', "out_of_range"),
        (b'{"type": "bye"}', "bad_message"),
    ],
)
def test_parse_refusals(raw: str | bytes, code: str) -> None:
    assert code_of(raw) == code


def test_size_limit_counts_utf8_bytes() -> None:
    pad = p.MAX_MESSAGE_BYTES - len('{"type": "bye", "pad": ""}')
    assert p.parse('{"type": "bye", "pad": "' + "x" * pad + '"}') == p.Bye()
    assert code_of('{"type": "bye", "pad": "' + "x" * (pad + 1) + '"}') == "too_large"
    # Fewer characters than the limit, more bytes: 3 bytes per "€".
    euros = '{"type": "bye", "pad": "' + "€" * (p.MAX_MESSAGE_BYTES // 3) + '"}'
    assert len(euros) < p.MAX_MESSAGE_BYTES
    assert code_of(euros) == "too_large"


def test_request_id_is_echoed_on_errors() -> None:
    with pytest.raises(p.ProtocolError) as e:
        p.parse('{"type": "dance", "id": "req-9"}')
    assert p.from_exception(e.value) == {
        "type": "error", "code": "bad_message", "message": e.value.message, "fatal": False, "id": "req-9"
    }
    # Only scalar ids are echoed.
    with pytest.raises(p.ProtocolError) as e:
        p.parse('{"type": "dance", "id": {"big": "object"}}')
    assert "id" not in p.from_exception(e.value)


def test_validate_style() -> None:
    assert p.validate_style(REGISTRY, p.SetStyle("bronze")) == ("bronze", 1.0)
    assert p.validate_style(REGISTRY, p.SetStyle("bronze", 0.25)) == ("bronze", 0.25)
    with pytest.raises(p.ProtocolError) as e:
        p.validate_style(REGISTRY, p.SetStyle("marble", id=4))
    assert (e.value.code, e.value.request_id) == ("unknown_style", 4)
    assert "bronze, none" in e.value.message
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(p.ProtocolError) as e:
            p.validate_style(REGISTRY, p.SetStyle("bronze", bad))
        assert e.value.code == "out_of_range"


def test_server_messages() -> None:
    hello = p.hello("abc", "control")
    assert hello == {"type": "hello", "session": "abc", "version": p.PROTOCOL_VERSION, "mode": "control",
                     "max_message_bytes": p.MAX_MESSAGE_BYTES}
    styles = p.styles(REGISTRY.infos(), "none", request_id=1)
    assert [s["name"] for s in styles["styles"]] == ["none", "bronze"] and styles["id"] == 1
    assert styles["styles"][1]["intensity_max"] == 1.0
    assert p.state("bronze", 0.5) == {"type": "state", "style": "bronze", "intensity": 0.5}
    stats = p.stats({"fps_in": 30.0, "dropped": 2, "unrelated": 1})
    assert set(stats) == {"type", *p.STATS_FIELDS}
    assert stats["fps_in"] == 30.0 and stats["faces"] is None
    assert json.loads(p.encode(stats))["dropped"] == 2
    with pytest.raises(ValueError):
        p.encode({"type": "stats", "latency_ms": math.nan})  # browsers cannot parse NaN
