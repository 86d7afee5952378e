"""`POST /v1/models/NAME/generate`: the same seed gives the text `rnnc generate --seed`
prints, as JSON and as server-sent events (one per token, then `end` with stats);
greedy gives the decoder's greedy tokens; an end id stops early; models that cannot
generate and bad fields are 400s that say why; a client that disconnects stops the
generation (tokens counted by the server's counter, against a live uvicorn)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")
pytest.importorskip("rnnc_onnx")
from page_browser import LiveServer  # noqa: E402
from serve_stream_models import generative_models, streaming_models  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from rnnc.cli import main  # noqa: E402
from rnnc.runtime_decode import load_decoder  # noqa: E402
from rnnc.serve.app import ServeSettings, build_app  # noqa: E402
from rnnc.serve.models import ServedModel  # noqa: E402

SSE = {"Accept": "text/event-stream"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("generate")
    return {**generative_models(folder), "moods": streaming_models(folder)["moods"]}


@pytest.fixture(scope="module")
def served(runs: dict[str, Path]) -> list[ServedModel]:
    return [ServedModel.open(path) for path in runs.values()]


@pytest.fixture(scope="module")
def client(served: list[ServedModel]) -> TestClient:
    return TestClient(build_app(served, ServeSettings(max_tokens=500)))


def cli_text(capsys: pytest.CaptureFixture[str], run: Path, *args: object) -> str:
    assert main(["generate", str(run), *map(str, args)]) == 0
    return capsys.readouterr().out.removesuffix("\n")


def events(raw: str) -> list[tuple[str, dict]]:
    """(event name, its data) of each server-sent event."""
    found = []
    for block in raw.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        found.append((fields.get("event", "message"), json.loads(fields["data"])))
    return found


def streamed(client: TestClient, model: str, body: dict) -> list[tuple[str, dict]]:
    with client.stream("POST", f"/v1/models/{model}/generate", json=body, headers=SSE) as answer:
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
        return events(answer.read().decode())


@pytest.mark.parametrize(("model", "prompt"), [("chars", "bad"), ("ids", "1 2")])
def test_the_same_seed_gives_rnnc_generates_text(client: TestClient, runs: dict[str, Path], model: str, prompt: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    for seed in (1, 2, 3):
        body = {"prompt": prompt, "max_tokens": 20, "seed": seed, "temperature": 0.8, "top_k": 5}
        answer = client.post(f"/v1/models/{model}/generate", json=body).json()
        want = cli_text(capsys, runs[model], "--prompt", prompt, "-n", 20, "--seed", seed, "--temperature", 0.8, "--top-k", 5)
        assert answer["text"] == want and answer["text"] == prompt + answer["completion"]
        said = streamed(client, model, body)
        assert said[-1][0] == "end" and all(name == "message" for name, _ in said[:-1])
        assert prompt + "".join(data["token"] for _, data in said[:-1]) == want
        end_id = load_decoder(runs[model]).plan.end
        assert [data["id"] for _, data in said[:-1]] == [i for i in answer["ids"] if i != end_id]
        assert said[-1][1]["tokens"] == len(answer["ids"]) == answer["stats"]["tokens"]
        assert said[-1][1]["finish"] == answer["finish"] == ("end" if answer["ids"][-1] == end_id else "length")
    first = client.post(f"/v1/models/{model}/generate", json={"prompt": prompt, "max_tokens": 20, "seed": 1}).json()
    other = client.post(f"/v1/models/{model}/generate", json={"prompt": prompt, "max_tokens": 20, "seed": 2}).json()
    assert first["ids"] != other["ids"]


def test_greedy_is_the_decoders_greedy_and_an_end_id_stops_early(client: TestClient, runs: dict[str, Path]) -> None:
    decoder = load_decoder(runs["chars"])
    answer = client.post("/v1/models/chars/generate", json={"prompt": "fed", "max_tokens": 30, "greedy": True}).json()
    assert answer["ids"] == list(decoder.generate("fed", 30)) and len(answer["ids"]) == 30 and answer["finish"] == "length"
    assert answer["completion"] == decoder.continuation(answer["ids"], after=True)
    finishes = {client.post("/v1/models/ids/generate", json={"prompt": "1 2", "max_tokens": 20, "seed": s}).json()["finish"]
                for s in range(8)}
    assert finishes == {"end", "length"}
    unknown = client.post("/v1/models/chars/generate", json={"prompt": "Bad?!", "max_tokens": 3, "greedy": True}).json()
    assert unknown["stats"]["unknown_tokens"] == ["?", "!"] and unknown["text"].startswith("Bad?!")  # lowercased: b is known
    assert client.post("/v1/models/chars/generate", json={"prompt": "bad", "max_tokens": 3}).json()["stats"]["unknown_tokens"] == []
    given_ids = client.post("/v1/models/ids/generate", json={"prompt": [1, 2], "max_tokens": 20, "seed": 4}).json()
    assert given_ids == client.post("/v1/models/ids/generate", json={"prompt": "1 2", "max_tokens": 20, "seed": 4}).json() | {
        "stats": given_ids["stats"]}


def test_models_that_cannot_generate_and_bad_fields_are_400s(client: TestClient) -> None:
    bad = {
        ("moods", '{"prompt": "a"}'): "model 'moods' cannot generate: the model has no feedback output (spec `feedback:`)",
        ("s2s", '{"prompt": "1 2"}'): "model 's2s' answers questions (question) rather than continuing a prompt",
        ("chars", '{"prompt": "a", "max_tokens": 501}'): "'max_tokens' must be a whole number in [1, 500] (the server's limit), got 501",
        ("chars", '{"prompt": "a", "max_tokens": 0}'): "'max_tokens' must be a whole number in [1, 500]",
        ("chars", '{"prompt": "a", "greedy": true, "seed": 3}'): "'greedy' takes the likeliest token and samples nothing: drop seed",
        ("chars", '{"prompt": "a", "temperature": 0}'): "temperature must be a number above 0, got 0.0",
        ("chars", '{"prompt": "a", "top_p": 2}'): "top_p must lie in (0, 1], got 2",
        ("chars", '{"prompt": "a", "top_k": 1.5}'): "'top_k' must be a whole number, got 1.5",
        ("chars", '{"prompt": "a", "beam": 3}'): "unknown field 'beam'; generate takes: prompt, max_tokens",
        ("chars", '{"prompt": 7}'): "'prompt' must be a string (or a list of token ids)",
        ("chars", '["a"]'): 'the body must be {"prompt": "...", "max_tokens": N, ...}',
        ("ids", '{"prompt": "1 99"}'): "prompt: token ids must lie in [0, 8] (vocab_size 9), got 99",
        ("ids", '{"prompt": ""}'): "prompt: a next-token model needs at least one token to continue",
    }
    for (model, body), message in bad.items():
        for headers in ({}, SSE):  # refused before any event is sent
            answer = client.post(f"/v1/models/{model}/generate", content=body.encode(), headers=headers)
            assert answer.status_code == 400 and message in answer.json()["error"], (body, answer.text)
    assert client.post("/v1/models/lstm/generate", json={"prompt": "a"}).status_code == 404
    counted = [ln for ln in client.get("/metrics").text.splitlines()
               if ln.startswith('rnnc_serve_requests_total{endpoint="generate",model="chars",status="400"}')]
    assert counted and float(counted[0].split()[-1]) == 2 * sum(model == "chars" for model, _ in bad)  # with and without SSE
    answer = client.post("/v1/generate", json={"prompt": "a"})
    assert answer.status_code == 404 and "several models are served" in answer.json()["error"]


def test_a_client_that_disconnects_stops_the_generation(served: list[ServedModel]) -> None:
    app = build_app(served, ServeSettings(max_tokens=100_000))

    def generated() -> float:
        text = httpx.get(server.url + "/metrics").text
        line = next((ln for ln in text.splitlines() if ln.startswith('rnnc_serve_generated_tokens_total{model="chars"}')), "x 0")
        return float(line.split()[-1])

    with LiveServer(app) as server:
        seen = 0
        with httpx.stream("POST", server.url + "/v1/models/chars/generate", headers=SSE, timeout=30,
                          json={"prompt": "bad", "max_tokens": 100_000, "seed": 1}) as answer:
            lines = answer.iter_lines()  # held: a dropped iterator closes the response
            for line in lines:
                seen += line.startswith("data: ")
                if seen == 5:
                    break
            time.sleep(0.3)
            connected = generated()  # still connected: it goes on (the socket's buffers take the events)
        counts = [generated()]  # left: the connection closed
        for _ in range(40):  # until the count stops moving
            time.sleep(0.1)
            counts.append(generated())
            if len(counts) >= 3 and counts[-1] == counts[-2] == counts[-3]:
                break
        assert counts[-1] == counts[-2] == counts[-3], counts
        assert 50 < connected <= counts[-1] < 20_000, (connected, counts)  # 100,000 asked
