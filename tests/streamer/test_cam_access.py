"""``tricam cam``'s remote control takes the same Origin and token rules as ``tricam serve``:
no other web page and no one without the token can switch the style of the person's camera."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from engine.registry import build_engine
from streamer.auth import AccessPolicy
from streamer.cam import CamPipeline, ControlServer
from streamer.capture import FrameSource
from tests.e2e.clips import make_clip

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def control(tmp_path: Path) -> Iterator[ControlServer]:
    clip = tmp_path / "blue.mp4"
    make_clip(clip, width=96, height=64, seconds=1.0, fps=25, real=False)
    engine = build_engine(load_core_model=False)
    src = FrameSource(str(clip))
    src.start()
    pipe = CamPipeline(engine, src)
    server = ControlServer(pipe, engine, "127.0.0.1", 0, access=AccessPolicy(token="s3cret-token"))
    server.start()
    pipe.start()
    try:
        yield server
    finally:
        server.close()
        pipe.stop()
        src.close()


async def test_remote_control_needs_the_token_and_a_same_origin_page(control: ControlServer) -> None:
    ws_url = control.url + "ws"
    async with aiohttp.ClientSession() as http:
        for kwargs in ({}, {"headers": {"Authorization": "Bearer wrong"}}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await http.ws_connect(ws_url, **kwargs)  # type: ignore[arg-type]
            assert e.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await http.ws_connect(ws_url + "?token=s3cret-token", headers={"Origin": "https://evil.example"})
        assert e.value.status == 403
        page = control.url.rstrip("/")
        async with http.ws_connect(ws_url + "?token=s3cret-token", headers={"Origin": page}) as ws:
            hello = await ws.receive_json(timeout=5)
            assert hello["mode"] == "control"
            await ws.receive_json(timeout=5)  # state
            await ws.send_json({"type": "set_style", "style": "bronze", "id": 1})
            reply = await ws.receive_json(timeout=5)
            assert (reply["type"], reply["style"]) == ("state", "bronze")
