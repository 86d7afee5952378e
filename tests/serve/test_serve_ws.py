"""`rnnc serve`'s WebSocket sessions: a session per connection whose replies equal
`rnnc.runtime` on the whole sequence, bad messages answered with a JSON error on a
connection that stays open, the session freed when the socket closes, refusals (token,
unknown model, no streaming state, the session limit, idle), and one run against a live
uvicorn with the `websockets` client."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")
websockets = pytest.importorskip("websockets")
pytest.importorskip("rnnc_onnx")
from page_browser import LiveServer  # noqa: E402
from serve_stream_models import FEATURES, streaming_models  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from rnnc import runtime  # noqa: E402
from rnnc.serve.app import ServeSettings, build_app  # noqa: E402
from rnnc.serve.models import ServedModel  # noqa: E402

RNG = np.random.default_rng(5)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return streaming_models(tmp_path_factory.mktemp("ws"))


@pytest.fixture(scope="module")
def served(files: dict[str, Path], model_files: dict[str, Path]) -> list[ServedModel]:
    return [ServedModel.open(files["steps"]), ServedModel.open(files["moods"]), ServedModel(runtime.load(model_files["moods"]), "plain")]


def open_sessions(client: TestClient) -> float:
    line = next(ln for ln in client.get("/metrics").text.splitlines() if ln.startswith('rnnc_serve_open_sessions{model="steps"}'))
    return float(line.split()[-1])


def until(condition, seconds: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_connection_is_a_session_and_bad_messages_keep_it_open(served: list[ServedModel], files: dict[str, Path]) -> None:
    client = TestClient(build_app(served, ServeSettings(max_body_bytes=4096)))
    x = RNG.normal(size=(10, FEATURES)).astype(np.float32)
    got: list[list[float]] = []
    with client.websocket_connect("/v1/models/steps/sessions/ws") as ws:
        assert open_sessions(client) == 1
        ws.send_text(json.dumps({"instances": [x[:4].tolist()]}))
        first = ws.receive_json()
        assert first["model_name"] == "steps" and first["steps"] == 4 and len(first["session"]) >= 24
        got += first["predictions"][0]["y"]
        refusals = {
            "not json": "the body is not valid JSON",
            json.dumps({"instances": [[[1, 2]]]}): "instances[0]: [steps, 3] features expected, got shape [1, 2]",
            json.dumps({"instances": [x[4:5].tolist()] * 2}): "a session carries one sequence",
            json.dumps({"instances": [[[1, 2, 3]] * 500]}): "the message is larger than the server's limit of 4,096 bytes",
        }
        for message, error in refusals.items():
            ws.send_text(message)
            reply = ws.receive_json()
            assert error in reply["error"] and reply["status"] in (400, 413), reply
        ws.send_bytes(json.dumps({"instances": [x[4:7].tolist()]}).encode())  # a binary message is JSON too
        got += ws.receive_json()["predictions"][0]["y"]
        ws.send_text(json.dumps({"instances": [x[7:].tolist()]}))
        last = ws.receive_json()
        assert last["steps"] == 10 and last["session"] == first["session"]
        got += last["predictions"][0]["y"]
    np.testing.assert_allclose(np.array(got), runtime.load(files["steps"]).run(x[None])[0], atol=1e-5)
    assert until(lambda: open_sessions(client) == 0), "closing the socket frees the session"
    answer = client.post(f"/v1/sessions/{first['session']}", json={"instances": [x[:1].tolist()]})
    assert answer.status_code == 404


def test_refused_connections_say_why_and_close(served: list[ServedModel]) -> None:
    client = TestClient(build_app(served, ServeSettings(max_sessions=1)))
    for path, status, code, words in (("/v1/models/lstm/sessions/ws", 404, 1008, "unknown model 'lstm'"),
                                      ("/v1/models/plain/sessions/ws", 400, 1008, "exported without streaming state"),
                                      ("/v1/sessions/ws", 404, 1008, "several models are served")):
        with client.websocket_connect(path) as ws:
            reply = ws.receive_json()
            assert reply["status"] == status and words in reply["error"], reply
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == code
    held = client.post("/v1/models/moods/sessions").json()["session"]
    with client.websocket_connect("/v1/models/steps/sessions/ws") as ws:
        reply = ws.receive_json()
        assert reply["status"] == 503 and "holds 1 sessions, its limit" in reply["error"]
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1013  # try again later
    client.delete(f"/v1/sessions/{held}")
    with client.websocket_connect("/v1/models/steps/sessions/ws") as ws:
        ws.send_text(json.dumps({"instances": [[[0.1, 0.2, 0.3]]]}))
        assert ws.receive_json()["steps"] == 1


def test_the_token_is_asked_on_the_upgrade(served: list[ServedModel]) -> None:
    client = TestClient(build_app(served, ServeSettings(token="s3cret")))
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        with pytest.raises(WebSocketDisconnect) as refused:
            with client.websocket_connect("/v1/models/steps/sessions/ws", headers=headers):
                pass
        assert refused.value.code == 1008
    with client.websocket_connect("/v1/models/steps/sessions/ws", headers={"Authorization": "Bearer s3cret"}) as ws:
        ws.send_text(json.dumps({"instances": [[[0.1, 0.2, 0.3]]]}))
        assert ws.receive_json()["steps"] == 1


def test_a_page_of_another_origin_may_not_open_a_session(served: list[ServedModel]) -> None:
    client = TestClient(build_app(served, ServeSettings(cors_origins=("http://tool.example",))))
    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect("/v1/models/steps/sessions/ws", headers={"Origin": "http://evil.example"}):
            pass
    assert refused.value.code == 1008
    for origin in ("http://testserver", "http://tool.example", None):  # its own (the test client's host), one allowed, none
        headers = {} if origin is None else {"Origin": origin}
        with client.websocket_connect("/v1/models/steps/sessions/ws", headers=headers) as ws:
            ws.send_text(json.dumps({"instances": [[[0.1, 0.2, 0.3]]]}))
            assert ws.receive_json()["steps"] == 1, origin


def test_a_quiet_connection_is_closed_after_the_idle_time(served: list[ServedModel]) -> None:
    client = TestClient(build_app(served, ServeSettings(session_idle_s=0.3)))
    with client.websocket_connect("/v1/models/steps/sessions/ws") as ws:
        began = time.monotonic()
        reply = ws.receive_json()
        assert reply == {"error": "no message for 0.3 s: the session is closed", "status": 408}
        assert time.monotonic() - began >= 0.25
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1000
    assert open_sessions(client) == 0


def test_a_live_server_with_the_websockets_client(served: list[ServedModel], files: dict[str, Path]) -> None:
    from websockets.asyncio.client import connect

    x = RNG.normal(size=(9, FEATURES)).astype(np.float32)
    reference = runtime.load(files["moods"])

    async def talk(url: str) -> list[dict]:
        replies = []
        async with connect(url.replace("http", "ws") + "/v1/models/moods/sessions/ws",
                           additional_headers={"Authorization": "Bearer s3cret"}) as ws:
            for a, b in ((0, 2), (2, 7), (7, 9)):
                await ws.send(json.dumps({"instances": [x[a:b].tolist()]}))
                replies.append(json.loads(await ws.recv()))
        return replies

    with LiveServer(build_app(served, ServeSettings(token="s3cret"))) as server:
        replies = asyncio.run(talk(server.url))
        for reply, b in zip(replies, (2, 7, 9), strict=True):
            said = reply["predictions"][0]
            assert reply["steps"] == b
            np.testing.assert_allclose([said["probabilities"][c] for c in ("calm", "glad", "sad")],
                                       reference.run(x[None, :b])[0], atol=1e-5)
        metrics = lambda: httpx.get(server.url + "/metrics", headers={"Authorization": "Bearer s3cret"}).text  # noqa: E731
        assert until(lambda: 'rnnc_serve_open_sessions{model="moods"} 0.0' in metrics())
