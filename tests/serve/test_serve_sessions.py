"""`rnnc serve`'s streaming sessions over HTTP: chunks sent to a session give what
`rnnc.runtime` gives on the whole sequence (per step) or on the sequence so far (a
last-step classifier), for random chunk splits and several sessions interleaved; the
session limit (503, Retry-After), the idle expiry (an injected clock), close, unknown
ids, bad chunks (which leave the state as it was), concurrent chunks to one session
(run one at a time) and the open-sessions gauge."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")
pytest.importorskip("rnnc_onnx")
from serve_stream_models import FEATURES, streaming_models  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from rnnc import runtime  # noqa: E402
from rnnc.serve.app import ServeSettings, build_app  # noqa: E402
from rnnc.serve.models import ServedModel  # noqa: E402

RNG = np.random.default_rng(11)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return streaming_models(tmp_path_factory.mktemp("streaming"))


@pytest.fixture(scope="module")
def served(files: dict[str, Path], model_files: dict[str, Path]) -> list[ServedModel]:
    plain_moods = ServedModel(runtime.load(model_files["moods"]), "plain")  # exported without streaming state
    return [*(ServedModel.open(p) for p in files.values()), plain_moods]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def app_of(served: list[ServedModel], **settings: float) -> tuple[TestClient, Clock]:
    app = build_app(served, ServeSettings(**settings))  # type: ignore[arg-type]
    clock = Clock()
    app.state.sessions.clock = clock
    return TestClient(app, raise_server_exceptions=False), clock


@pytest.fixture()
def client(served: list[ServedModel]) -> TestClient:
    return app_of(served)[0]


def opened(client: TestClient, model: str) -> str:
    answer = client.post(f"/v1/models/{model}/sessions")
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_name"] == model
    return answer.json()["session"]


def sent(client: TestClient, session: str, body: object) -> dict:
    answer = client.post(f"/v1/sessions/{session}", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def splits(steps: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Random chunk bounds covering [0, steps), each chunk at least one step."""
    cuts = sorted(rng.choice(np.arange(1, steps), size=rng.integers(1, min(5, steps)), replace=False).tolist())
    bounds = [0, *cuts, steps]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def test_per_step_chunks_equal_the_whole_sequence_with_sessions_interleaved(client: TestClient, files: dict[str, Path]) -> None:
    reference = runtime.load(files["steps"])
    sequences = [RNG.normal(size=(int(RNG.integers(6, 15)), FEATURES)).astype(np.float32) for _ in range(4)]
    sessions = [opened(client, "steps") for _ in sequences]
    assert len(set(sessions)) == 4 and all(len(s) >= 24 for s in sessions)
    plans = [splits(len(x), RNG) for x in sequences]
    got: list[list[list[float]]] = [[] for _ in sequences]
    turns = [i for i, plan in enumerate(plans) for _ in plan]
    RNG.shuffle(turns)  # the sessions' chunks interleaved in a random order
    done = [0] * len(sequences)
    for i in turns:
        a, b = plans[i][done[i]]
        done[i] += 1
        answer = sent(client, sessions[i], {"instances": [sequences[i][a:b].tolist()]})
        assert answer["session"] == sessions[i] and answer["steps"] == b
        assert len(answer["predictions"]) == 1 and len(answer["predictions"][0]["y"]) == b - a
        got[i] += answer["predictions"][0]["y"]
    for x, y in zip(sequences, got, strict=True):
        np.testing.assert_allclose(np.array(y), reference.run(x[None])[0], atol=1e-5)


def test_a_last_step_classifier_predicts_the_sequence_so_far_after_each_chunk(client: TestClient, files: dict[str, Path]) -> None:
    reference = runtime.load(files["moods"])
    x = RNG.normal(size=(12, FEATURES)).astype(np.float32)
    session = opened(client, "moods")
    for a, b in splits(12, RNG):
        said = sent(client, session, {"instances": [x[a:b].tolist()]})["predictions"][0]
        want = reference.run(x[None, :b])[0]
        assert said["label"] == ["calm", "glad", "sad"][int(want.argmax())]
        np.testing.assert_allclose([said["probabilities"][c] for c in ("calm", "glad", "sad")], want, atol=1e-5)


def test_text_chunks_and_a_graphs_chunks_with_its_static_input(client: TestClient, files: dict[str, Path]) -> None:
    words = runtime.load(files["words"])
    session = opened(client, "words")
    for piece, so_far in (("a sma", "a sma"), ("ll te", "a small te"), ("st", "a small test")):
        said = sent(client, session, {"texts": [piece]})["predictions"][0]
        want = words.predict_texts([so_far])[0]
        np.testing.assert_allclose([said["probabilities"][c] for c in "abc"], want, atol=1e-5)
    churn = runtime.load(files["churn"])
    events, profile = RNG.normal(size=(9, FEATURES)).astype(np.float32), [0.5, -1.0]
    session = opened(client, "churn")
    for a, b in splits(9, RNG):
        said = sent(client, session, {"instances": [{"events": events[a:b].tolist(), "profile": profile}]})["predictions"][0]
        want = churn.run({"events": events[None, :b], "profile": np.array([profile], np.float32)})["churn"][0]
        np.testing.assert_allclose([said["churn"]["probabilities"][c] for c in ("stay", "leave")], want, atol=1e-5)


def test_bad_chunks_are_refused_and_leave_the_state_as_it_was(client: TestClient, files: dict[str, Path]) -> None:
    reference = runtime.load(files["steps"])
    x = RNG.normal(size=(6, FEATURES)).astype(np.float32)
    session = opened(client, "steps")
    first = sent(client, session, {"instances": [x[:3].tolist()]})["predictions"][0]["y"]
    bad = {
        "instances[0]: [steps, 3] features expected, got shape [2, 2]": {"instances": [[[1, 2], [3, 4]]]},
        "a session carries one sequence": {"instances": [x[3:].tolist(), x[3:].tolist()]},
        "instances[0] has 1 dimensions, expected 2": {"instances": [[]]},
        "'instances' must be a non-empty list": {"instances": []},
        "'texts' is for a model trained on raw text": {"texts": ["abc"]},
        "the body must be {\"instances\": [...]}": {"chunk": [1]},
    }
    for message, body in bad.items():
        answer = client.post(f"/v1/sessions/{session}", json=body)
        assert answer.status_code == 400 and message in answer.json()["error"], (message, answer.text)
    answer = client.post(f"/v1/sessions/{session}", content=b'{"instances": [[[NaN, 1, 2]]]}')
    assert answer.status_code == 400 and "NaN" in answer.json()["error"]
    answer = client.post(f"/v1/sessions/{session}", content=b"{not json")
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["error"]
    rest = sent(client, session, {"instances": [x[3:].tolist()]})
    assert rest["steps"] == 6
    np.testing.assert_allclose(np.array(first + rest["predictions"][0]["y"]), reference.run(x[None])[0], atol=1e-5)


def test_unknown_sessions_models_and_models_without_streaming_state(client: TestClient) -> None:
    answer = client.post("/v1/sessions/no-such-id", json={"instances": [[[1, 2, 3]]]})
    assert answer.status_code == 404 and answer.json()["error"].startswith("session 'no-such-id' is expired or unknown")
    assert client.delete("/v1/sessions/no-such-id").status_code == 404
    answer = client.post("/v1/models/lstm/sessions")
    assert answer.status_code == 404 and answer.json()["error"].startswith("unknown model 'lstm'; served: moods, steps")
    answer = client.post("/v1/sessions")
    assert answer.status_code == 404 and "several models are served" in answer.json()["error"]
    answer = client.post("/v1/models/plain/sessions")
    assert answer.status_code == 400
    assert answer.json()["error"] == ("model 'plain' was exported without streaming state, so it cannot keep a session; export it "
                                      "with export.streaming: true (e.g. rnnc compile --backend onnx --set export.streaming=true)")
    assert client.get("/v1/sessions/x").status_code == 405


def test_close_frees_the_session(client: TestClient) -> None:
    session = opened(client, "moods")
    sent(client, session, {"instances": [[[0.1, 0.2, 0.3]] * 4]})
    assert client.delete(f"/v1/sessions/{session}").json() == {"session": session, "closed": True, "steps": 4}
    answer = client.post(f"/v1/sessions/{session}", json={"instances": [[[0.1, 0.2, 0.3]]]})
    assert answer.status_code == 404 and "expired or unknown" in answer.json()["error"]
    assert client.delete(f"/v1/sessions/{session}").status_code == 404


def test_the_limit_answers_503_until_an_idle_session_expires(served: list[ServedModel]) -> None:
    client, clock = app_of(served, max_sessions=2, session_idle_s=60)
    first, second = opened(client, "moods"), opened(client, "steps")
    clock.now += 45
    sent(client, second, {"instances": [[[0.0, 0.1, 0.2]]]})  # used: it stays 60 s more
    full = client.post("/v1/models/moods/sessions")
    assert full.status_code == 503 and full.headers["Retry-After"] == "15"  # when the first expires
    assert "holds 2 sessions, its limit" in full.json()["error"]
    clock.now += 15  # the first has been idle 60 s: closed to make room
    third = opened(client, "moods")
    assert client.post(f"/v1/sessions/{first}", json={"instances": [[[1, 2, 3]]]}).status_code == 404
    sent(client, second, {"instances": [[[0.0, 0.1, 0.2]]]})
    sent(client, third, {"instances": [[[0.0, 0.1, 0.2]]]})
    clock.now += 59.5
    sent(client, third, {"instances": [[[0.0, 0.1, 0.2]]]})
    clock.now += 1
    expired = client.post(f"/v1/sessions/{second}", json={"instances": [[[1, 2, 3]]]})
    assert expired.status_code == 404 and "a session closes after 60 s unused" in expired.json()["error"]
    assert client.app.state.sessions.expired == 2  # type: ignore[attr-defined]


def test_the_gauge_counts_open_sessions(served: list[ServedModel]) -> None:
    client, clock = app_of(served, session_idle_s=10)

    def gauge() -> dict[str, float]:
        lines = [ln for ln in client.get("/metrics").text.splitlines() if ln.startswith("rnnc_serve_open_sessions{")]
        return {ln.split('"')[1]: float(ln.split()[-1]) for ln in lines}

    assert gauge() == {"moods": 0, "steps": 0, "words": 0, "churn": 0, "plain": 0}
    a, _, _ = opened(client, "moods"), opened(client, "moods"), opened(client, "churn")
    assert gauge() == {"moods": 2, "steps": 0, "words": 0, "churn": 1, "plain": 0}
    client.delete(f"/v1/sessions/{a}")
    assert gauge()["moods"] == 1
    clock.now += 10
    assert gauge() == {"moods": 0, "steps": 0, "words": 0, "churn": 0, "plain": 0}


def test_concurrent_chunks_to_one_session_run_one_at_a_time(served: list[ServedModel], files: dict[str, Path]) -> None:
    """Eight copies of one chunk at once: whatever their order, the answers are the
    outputs of that chunk repeated 1..8 times, each once, as one sequence."""
    app = build_app(served, ServeSettings())
    reference = runtime.load(files["steps"])
    chunk = RNG.normal(size=(3, FEATURES)).astype(np.float32)
    whole = reference.run(np.tile(chunk, (8, 1))[None])[0]

    async def go() -> list[dict]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rnnc") as http:
            session = (await http.post("/v1/models/steps/sessions")).json()["session"]
            answers = await asyncio.gather(*(http.post(f"/v1/sessions/{session}", json={"instances": [chunk.tolist()]})
                                             for _ in range(8)))
        return [a.json() for a in answers]

    answers = asyncio.run(go())
    assert sorted(a["steps"] for a in answers) == [3 * k for k in range(1, 9)]
    for answer in answers:
        k = answer["steps"] // 3
        np.testing.assert_allclose(np.array(answer["predictions"][0]["y"]), whole[3 * (k - 1) : 3 * k], atol=1e-5)


@pytest.mark.parametrize("name", ["steps", "churn"])
def test_chunks_of_many_sessions_at_once_share_runs_and_equal_each_sequence_alone(
        served: list[ServedModel], files: dict[str, Path], name: str) -> None:
    """Six sessions send their chunks (of different lengths) at the same time, three
    rounds: they are joined into one run a round, padded, each row with its own state."""
    app = build_app(served, ServeSettings(max_delay_ms=200))
    reference = runtime.load(files[name])
    sequences = [RNG.normal(size=(int(RNG.integers(6, 12)), FEATURES)).astype(np.float32) for _ in range(6)]
    plans = [[(0, 1), (1, 4), (4, len(x))] if i % 2 else [(0, 3), (3, 5), (5, len(x))] for i, x in enumerate(sequences)]
    profile = [0.25, -0.5]

    def chunk(x: np.ndarray) -> dict:
        return {"instances": [{"events": x.tolist(), "profile": profile} if name == "churn" else x.tolist()]}

    async def go() -> list[list[dict]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rnnc") as http:
            sessions = [(await http.post(f"/v1/models/{name}/sessions")).json()["session"] for _ in sequences]
            rounds = []
            for r in range(3):
                answers = await asyncio.gather(*(http.post(f"/v1/sessions/{s}", json=chunk(x[plan[r][0] : plan[r][1]]))
                                                 for s, x, plan in zip(sessions, sequences, plans, strict=True)))
                rounds.append([a.json() for a in answers])
        return rounds

    rounds = asyncio.run(go())
    assert app.state.sessions.batchers[name].runs == 3  # type: ignore[attr-defined]  # one run a round, not 18
    for i, x in enumerate(sequences):
        if name == "steps":
            got = np.concatenate([np.array(rounds[r][i]["predictions"][0]["y"]) for r in range(3)])
            np.testing.assert_allclose(got, reference.run(x[None])[0], atol=1e-5)
            continue
        for r in range(3):
            b = plans[i][r][1]
            want = reference.run({"events": x[None, :b], "profile": np.array([profile], np.float32)})["churn"][0]
            said = rounds[r][i]["predictions"][0]["churn"]["probabilities"]
            np.testing.assert_allclose([said["stay"], said["leave"]], want, atol=1e-5)


def test_every_route_in_the_docs_examples_exists(served: list[ServedModel]) -> None:
    """Each curl command (and WebSocket URL) in docs/serve.md names a route the app has."""
    from starlette.routing import Match

    docs = (Path(__file__).resolve().parents[2] / "docs" / "serve.md").read_text()
    calls = []
    for line in docs.splitlines():
        if line.startswith("curl ") and (url := re.search(r"https?://[^/\s]+(/[^\s'\"]*)", line)):
            method = m.group(1) if (m := re.search(r" -X (\w+)", line)) else "POST" if " -d " in line else "GET"
            calls.append(("http", method, url.group(1)))
        calls += [("websocket", "GET", path) for path in re.findall(r"ws://[^/\s]+(/[^\s'\"]*)", line)]
    assert len(calls) >= 20 and {c[1] for c in calls} == {"GET", "POST", "DELETE"} and any(c[0] == "websocket" for c in calls)
    routes = build_app(served, ServeSettings()).routes
    for kind, method, path in calls:
        scope = {"type": kind, "path": path.replace("$S2", "x").replace("$S", "x"), "method": method}
        assert any(route.matches(scope)[0] == Match.FULL for route in routes), (kind, method, path)


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("--max-sessions", "0", "--max-sessions must be at least 1, got 0"),
    ("--session-idle-s", "0", "--session-idle-s must lie in (0, 86400], got 0.0"),
    ("--max-tokens", "-3", "--max-tokens must be at least 1, got -3"),
])
def test_bad_session_and_generate_flags_are_one_line_and_exit_2(files: dict[str, Path], flag: str, value: str, expected: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from rnnc.cli import main

    assert main(["serve", str(files["moods"]), flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(expected) and len(err.splitlines()) == 1 and "Traceback" not in err
