"""`rnnc serve`'s app in process: the Open Inference Protocol's routes and /v1/predict give
what `rnnc.runtime` gives, and every bad request gets a 4xx JSON line naming the field."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")
from starlette.testclient import TestClient  # noqa: E402

from rnnc import runtime  # noqa: E402
from rnnc.serve.app import ServeSettings, build_app  # noqa: E402
from rnnc.serve.models import ServedModel  # noqa: E402

RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def served(model_files: dict[str, Path]) -> dict[str, ServedModel]:
    return {name: ServedModel.open(path) for name, path in model_files.items()}


@pytest.fixture(scope="module")
def client(served: dict[str, ServedModel]) -> TestClient:
    return TestClient(build_app(list(served.values()), ServeSettings(max_body_bytes=256 * 1024)), raise_server_exceptions=False)


def softmax_check(p: dict[str, float]) -> None:
    assert abs(sum(p.values()) - 1) < 1e-5


def test_a_run_directory_is_served_under_its_spec_name(model_files: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "some-run"
    run.mkdir()
    (run / "model.onnx").write_bytes(model_files["moods"].read_bytes())
    model = ServedModel.open(run)
    assert model.name == "moods" and model.predictor.classes == ["calm", "glad", "sad"]


def test_health_server_and_model_metadata(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "rnnc"
    assert client.get("/v2/models/moods/ready").json() == {"name": "moods", "ready": True}
    meta = client.get("/v2/models/churn").json()
    assert meta["inputs"] == [{"name": "events", "datatype": "FP32", "shape": [-1, -1, 3]},
                              {"name": "profile", "datatype": "FP32", "shape": [-1, 2]},
                              {"name": "events.lengths", "datatype": "INT64", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "churn", "datatype": "FP32", "shape": [-1, 2]}]
    assert client.get("/v2/models/moods/versions/1").json() == client.get("/v2/models/moods").json()
    other = client.get("/v2/models/moods/versions/2")
    assert other.status_code == 404 and other.json()["error"] == "model 'moods' has one version, 1; got version '2'"
    assert client.get("/v2/models/words").json()["inputs"][0] == {"name": "x", "datatype": "INT64", "shape": [-1, -1]}


def test_infer_with_json_tensors_equals_the_runtime_with_and_without_lengths(client: TestClient, model_files: dict[str, Path]) -> None:
    x = RNG.normal(size=(2, 4, 3)).astype(np.float32)
    lengths = np.array([4, 2])
    predictor = runtime.load(model_files["moods"])
    body = {"inputs": [{"name": "x", "shape": [2, 4, 3], "datatype": "FP32", "data": x.ravel().tolist()},
                       {"name": "lengths", "shape": [2], "datatype": "INT64", "data": lengths.tolist()}]}
    answer = client.post("/v2/models/moods/infer", json=body).json()
    assert answer["model_name"] == "moods" and answer["outputs"][0]["name"] == "y" and answer["outputs"][0]["shape"] == [2, 3]
    np.testing.assert_allclose(np.reshape(answer["outputs"][0]["data"], (2, 3)), predictor.run(x, lengths), atol=1e-6)
    # nested data, no lengths: every step real
    body = {"inputs": [{"name": "x", "shape": [2, 4, 3], "datatype": "FP32", "data": x.tolist()}]}
    y = np.reshape(client.post("/v2/models/moods/infer", json=body).json()["outputs"][0]["data"], (2, 3))
    np.testing.assert_allclose(y, predictor.run(x), atol=1e-6)
    assert np.abs(y[1] - predictor.run(x, lengths)[1]).max() > 1e-4  # the lengths did matter


def test_infer_on_a_graph_with_named_inputs(client: TestClient, model_files: dict[str, Path]) -> None:
    events = RNG.normal(size=(3, 5, 3)).astype(np.float32)
    profile = RNG.normal(size=(3, 2)).astype(np.float32)
    body = {"inputs": [{"name": "events", "shape": [3, 5, 3], "datatype": "FP32", "data": events.ravel().tolist()},
                       {"name": "profile", "shape": [3, 2], "datatype": "FP32", "data": profile.ravel().tolist()},
                       {"name": "events.lengths", "shape": [3], "datatype": "INT64", "data": [5, 1, 3]}],
            "outputs": [{"name": "churn"}]}
    out = client.post("/v2/models/churn/infer", json=body).json()["outputs"][0]
    expected = runtime.load(model_files["churn"]).run({"events": events, "profile": profile}, {"events": np.array([5, 1, 3])})["churn"]
    np.testing.assert_allclose(np.reshape(out["data"], out["shape"]), expected, atol=1e-6)


def test_v1_predict_pads_instances_of_different_lengths_and_names_classes(client: TestClient, model_files: dict[str, Path]) -> None:
    short, long = RNG.normal(size=(2, 3)), RNG.normal(size=(6, 3))
    answer = client.post("/v1/models/moods/predict", json={"instances": [short.tolist(), long.tolist()]}).json()
    predictor = runtime.load(model_files["moods"])
    for said, seq in zip(answer["predictions"], (short, long), strict=True):
        p = predictor.run(seq[None].astype(np.float32))[0]
        assert said["label"] == ["calm", "glad", "sad"][int(p.argmax())]
        assert said["probability"] == pytest.approx(float(p.max()), abs=1e-6)
        assert list(said["probabilities"]) == ["calm", "glad", "sad"]
        np.testing.assert_allclose(list(said["probabilities"].values()), p, atol=1e-6)
        softmax_check(said["probabilities"])


def test_v1_predict_per_step_regression_gives_each_instance_its_own_steps(client: TestClient, model_files: dict[str, Path]) -> None:
    a, b = RNG.normal(size=(1, 3)), RNG.normal(size=(4, 3))
    answer = client.post("/v1/models/steps/predict", json={"instances": [a.tolist(), b.tolist()]}).json()["predictions"]
    predictor = runtime.load(model_files["steps"])
    assert [len(p["y"]) for p in answer] == [1, 4]
    np.testing.assert_allclose(answer[1]["y"], predictor.run(b[None].astype(np.float32))[0], atol=1e-6)


def test_v1_predict_texts_and_graph_instances(client: TestClient, model_files: dict[str, Path]) -> None:
    texts = ["a small test", "of"]
    answer = client.post("/v1/models/words/predict", json={"texts": texts}).json()["predictions"]
    expected = runtime.load(model_files["words"]).predict_texts(texts)
    np.testing.assert_allclose([list(p["probabilities"].values()) for p in answer], expected, atol=1e-6)
    instances = [{"events": [[0.5, -1.0, 2.0], [0.0, 0.1, 0.2]], "profile": [1.0, -1.0]},
                 {"events": RNG.normal(size=(5, 3)).tolist(), "profile": [0.0, 2.0]}]  # padded to 5 steps with the first
    answer = client.post("/v1/models/churn/predict", json={"instances": instances}).json()["predictions"]
    graph = runtime.load(model_files["churn"])
    for instance, said in zip(instances, answer, strict=True):
        p = graph.run({k: np.asarray([v], np.float32) for k, v in instance.items()})["churn"][0]
        assert said["churn"]["label"] == ["stay", "leave"][int(p.argmax())]
        np.testing.assert_allclose(list(said["churn"]["probabilities"].values()), p, atol=1e-6)


BAD_INFER = {
    "malformed JSON": (b'{"inputs": [', "not valid JSON"),
    "not an object": (b"[1, 2]", "JSON object"),
    "nested too deeply": (b"[" * 100_000 + b"]" * 100_000, "nests lists or objects too deeply"),
    "no inputs": (b'{"outputs": []}', "'inputs'"),
    "wrong datatype name": (b'{"inputs": [{"name": "x", "shape": [1, 1, 3], "datatype": "FLOAT", "data": [1, 2, 3]}]}', "'datatype' must be one of"),
    "data count off": (b'{"inputs": [{"name": "x", "shape": [1, 2, 3], "datatype": "FP32", "data": [1, 2, 3]}]}', "holds 3 values, shape [1, 2, 3] needs 6"),
    "wrong features": (b'{"inputs": [{"name": "x", "shape": [1, 1, 2], "datatype": "FP32", "data": [1, 2]}]}', "got shape [1, 1, 2]"),
    "NaN": (b'{"inputs": [{"name": "x", "shape": [1, 1, 3], "datatype": "FP32", "data": [NaN, 2, 3]}]}', "NaN"),
    "overflow to inf": (b'{"inputs": [{"name": "x", "shape": [1, 1, 3], "datatype": "FP32", "data": [1e400, 2, 3]}]}', "NaN, inf"),
    "a string in data": (b'{"inputs": [{"name": "x", "shape": [1, 1, 3], "datatype": "FP32", "data": ["a", 2, 3]}]}', "not a FP32 value"),
    "unknown input": (b'{"inputs": [{"name": "z", "shape": [1], "datatype": "FP32", "data": [1]}]}', "unknown input 'z'"),
    "float lengths": (b'{"inputs": [{"name": "x", "shape": [1, 1, 3], "datatype": "FP32", "data": [1, 2, 3]},'
                      b' {"name": "lengths", "shape": [1], "datatype": "FP32", "data": [1.0]}]}', "input 'lengths' takes INT64"),
    "lengths past the steps": (b'{"inputs": [{"name": "x", "shape": [1, 1, 3], "datatype": "FP32", "data": [1, 2, 3]},'
                               b' {"name": "lengths", "shape": [1], "datatype": "INT64", "data": [5]}]}', "lengths must lie in [1, 1]"),
    "negative shape": (b'{"inputs": [{"name": "x", "shape": [-1, 3], "datatype": "FP32", "data": []}]}', "non-negative integers"),
    "unknown output": (b'{"inputs": [{"name": "x", "shape": [1, 1, 3], "datatype": "FP32", "data": [1, 2, 3]}], "outputs": [{"name": "q"}]}', "unknown output 'q'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INFER))
def test_each_bad_infer_request_gets_a_400_naming_the_problem(client: TestClient, case: str) -> None:
    body, expected = BAD_INFER[case]
    answer = client.post("/v2/models/moods/infer", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert expected in error and "\n" not in error and "Traceback" not in answer.text


BAD_PREDICT = {
    "no instances": ({"rows": []}, 'the body must be {"instances": [...]}'),
    "empty list": ({"instances": []}, "non-empty list"),
    "ragged steps": ({"instances": [[[1, 2, 3], [1, 2]]]}, "instances[0] must be a rectangular list"),
    "wrong features": ({"instances": [[[1, 2]]]}, "instances[0]: [steps, 3] features expected, got shape [1, 2]"),
    "no steps": ({"instances": [[]]}, "instances[0]"),
    "texts for a feature model": ({"texts": ["hi"]}, "'texts' is for a model trained on raw text"),
    "NaN in the second of two": ({"instances": [[[1, 2, 3]], [[1, None, 3], [1, 2, 3]]]}, "instances[1]: x holds NaN"),
}


@pytest.mark.parametrize("case", sorted(BAD_PREDICT))
def test_each_bad_predict_request_gets_a_400(client: TestClient, case: str) -> None:
    body, expected = BAD_PREDICT[case]
    answer = client.post("/v1/models/moods/predict", json=body)
    assert answer.status_code == 400 and expected in answer.json()["error"], answer.text


def test_unknown_model_path_and_method_and_big_bodies(client: TestClient) -> None:
    answer = client.post("/v2/models/nope/infer", json={"inputs": []})
    assert answer.status_code == 404 and answer.json()["error"] == "unknown model 'nope'; served: moods, steps, words, churn"
    assert client.post("/v1/predict", json={"instances": [[[1, 2, 3]]]}).status_code == 404  # several models: name one
    assert client.get("/v9/what").json() == {"error": "no such path: /v9/what"}
    wrong = client.get("/v2/models/moods/infer")
    assert wrong.status_code == 405 and wrong.json()["error"] == "GET is not allowed on /v2/models/moods/infer"
    big = client.post("/v2/models/moods/infer", content=b" " * 300_000, headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and "262,144 bytes" in big.json()["error"]

    def streamed() -> object:  # no Content-Length: the limit is counted as the bytes come
        for _ in range(30):
            yield b" " * 10_000
    chunked = client.post("/v2/models/moods/infer", content=streamed())
    assert chunked.status_code == 413 and "262,144 bytes" in chunked.json()["error"]


def test_each_request_is_one_json_access_line(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="rnnc.serve.access"):
        client.get("/v2/health/live")
        client.post("/v2/models/nope/infer", json={})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "rnnc.serve.access"]
    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("GET", "/v2/health/live", 200), ("POST", "/v2/models/nope/infer", 404)]
    assert all(line["ms"] >= 0 and line["time"] > 0 for line in lines)


def test_a_server_side_failure_is_a_json_line_and_logged_not_a_traceback(served: dict[str, ServedModel],
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    async def broken(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise RuntimeError("secret internal detail")
    app = build_app([served["moods"]], ServeSettings(), runners={"moods": broken})
    with caplog.at_level(logging.ERROR, logger="rnnc.serve"):
        answer = TestClient(app, raise_server_exceptions=False).post("/v1/predict", json={"instances": [[[1, 2, 3]]]})
    assert answer.status_code == 500
    assert set(answer.json()) == {"error"} and "secret" not in answer.text and "Traceback" not in answer.text
    assert "secret internal detail" in caplog.text


def test_a_token_guards_everything_but_health_and_cors_is_off_unless_configured(served: dict[str, ServedModel]) -> None:
    client = TestClient(build_app([served["moods"]], ServeSettings(token="s3cret")))
    body = {"instances": [[[1, 2, 3]]]}
    assert client.get("/v2/health/live").status_code == 200 and client.get("/v2/health/ready").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
        answer = client.post("/v1/predict", json=body, headers=headers)
        assert answer.status_code == 401 and "Bearer" in answer.json()["error"]
        assert client.get("/v2/models/moods", headers=headers).status_code == 401
    assert client.post("/v1/predict", json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/").status_code == 200 and client.get("/static/page.js").status_code == 200  # the page asks for the token
    assert client.get("/v1/models").status_code == 401
    preflight = {"Origin": "http://elsewhere.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/v1/predict", headers=preflight).headers
    open_to = TestClient(build_app([served["moods"]], ServeSettings(cors_origins=("http://elsewhere.example",))))
    allowed = open_to.options("/v1/predict", headers=preflight)
    assert allowed.headers["access-control-allow-origin"] == "http://elsewhere.example"


def test_binary_tensor_extension_in_and_out(client: TestClient, model_files: dict[str, Path]) -> None:
    x = RNG.normal(size=(1, 3, 3)).astype(np.float32)
    header = json.dumps({"inputs": [{"name": "x", "shape": [1, 3, 3], "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}],
                         "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}).encode()
    answer = client.post("/v2/models/moods/infer", content=header + x.tobytes(),
                         headers={"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"})
    assert answer.status_code == 200, answer.text
    size = int(answer.headers["inference-header-content-length"])
    meta = json.loads(answer.content[:size])
    y = np.frombuffer(answer.content[size:], np.float32).reshape(meta["outputs"][0]["shape"])
    np.testing.assert_allclose(y, runtime.load(model_files["moods"]).run(x), atol=1e-6)


def test_past_max_queue_requests_get_503_with_retry_after(served: dict[str, ServedModel]) -> None:
    moods, release = served["moods"], threading.Event()

    def slow(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        release.wait(10)
        return moods.run(feeds)
    held = SimpleNamespace(**{k: getattr(moods, k) for k in ("name", "predictor", "graph", "inputs", "outputs", "lengths_of",
                                                               "sequence_inputs")}, run=slow, input=moods.input)
    app = build_app([held], ServeSettings(max_queue=2))  # type: ignore[list-item]
    body = {"instances": [[[1, 2, 3]]]}

    async def crowd() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            waiting = [asyncio.create_task(client.post("/v1/predict", json=body)) for _ in range(2)]
            await asyncio.sleep(0.2)
            third = await client.post("/v1/predict", json=body)
            release.set()
            return [third, *await asyncio.gather(*waiting)]
    third, *first = asyncio.run(crowd())
    assert third.status_code == 503 and third.headers["retry-after"] == "1" and "busy" in third.json()["error"]
    assert [r.status_code for r in first] == [200, 200]


def test_concurrent_requests_share_runs_give_their_own_answers_and_are_counted(served: dict[str, ServedModel],
                                                                              model_files: dict[str, Path]) -> None:
    from prometheus_client.parser import text_string_to_metric_families
    app = build_app([served["moods"]], ServeSettings(max_batch=64, max_delay_ms=50))
    sequences = [RNG.normal(size=(n, 3)).astype(np.float32) for n in (1, 4, 2, 7, 3, 5, 6, 2)]

    async def crowd() -> tuple[list[httpx.Response], str]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            answers = await asyncio.gather(*(client.post("/v1/predict", json={"instances": [s.tolist()]}) for s in sequences))
            return list(answers), (await client.get("/metrics")).text
    answers, exposition = asyncio.run(crowd())
    predictor = runtime.load(model_files["moods"])
    for answer, seq in zip(answers, sequences, strict=True):
        said = answer.json()["predictions"][0]["probabilities"]
        np.testing.assert_allclose(list(said.values()), predictor.run(seq[None])[0], atol=1e-6)
    assert app.state.batchers["moods"].runs < len(sequences)  # joined: fewer runs than requests
    families = {f.name: f for f in text_string_to_metric_families(exposition)}
    counted = [s for s in families["rnnc_serve_requests"].samples if s.name == "rnnc_serve_requests_total"]
    assert [(s.labels["model"], s.labels["endpoint"], s.labels["status"], s.value) for s in counted] == [("moods", "predict", "200", 8.0)]
    assert [(s.labels["model"], s.value >= 1) for s in families["rnnc_serve_sessions"].samples] == [("moods", True)]
