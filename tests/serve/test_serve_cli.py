"""`rnnc serve` as a user runs it: a live server in a subprocess that Triton's own HTTP
client talks to (the same numbers as `rnnc.runtime`), a SIGTERM that lets the request in
flight finish before exiting 0, and bad arguments refused in one line with status 2."""

from __future__ import annotations

import json
import shutil
import signal
import ssl
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("uvicorn")
httpclient = pytest.importorskip("tritonclient.http")

from rnnc import runtime  # noqa: E402

RNNC = [sys.executable, "-m", "rnnc"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(*args: str, scheme: str = "http") -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    unverified = ssl._create_unverified_context() if scheme == "https" else None  # a self-signed test certificate
    server = subprocess.Popen([*RNNC, "serve", *args, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"rnnc serve exited {server.returncode}: {server.stdout.read() if server.stdout else ''}")
        try:
            with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/v2/health/ready", timeout=2, context=unverified) as answer:
                if answer.status == 200:
                    return server, port
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    server.kill()
    raise AssertionError("rnnc serve did not become ready in 60 s")


def stop(server: subprocess.Popen[str]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def live(model_files: dict[str, Path]) -> Iterator[int]:
    server, port = start(str(model_files["moods"]), str(model_files["churn"]))
    yield port
    stop(server)


def test_tritons_http_client_gets_the_runtimes_numbers(live: int, model_files: dict[str, Path]) -> None:
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{live}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("moods")
    meta = client.get_model_metadata("churn")
    assert [(i["name"], i["datatype"], i["shape"]) for i in meta["inputs"]] == [
        ("events", "FP32", [-1, -1, 3]), ("profile", "FP32", [-1, 2]), ("events.lengths", "INT64", [-1])]
    x = np.random.default_rng(1).normal(size=(4, 6, 3)).astype(np.float32)
    lengths = np.array([6, 1, 3, 5], np.int64)
    for binary in (True, False):
        inputs = [httpclient.InferInput("x", list(x.shape), "FP32"), httpclient.InferInput("lengths", [4], "INT64")]
        inputs[0].set_data_from_numpy(x, binary_data=binary)
        inputs[1].set_data_from_numpy(lengths, binary_data=binary)
        result = client.infer("moods", inputs, outputs=[httpclient.InferRequestedOutput("y", binary_data=binary)],
                              model_version="1" if binary else "")
        np.testing.assert_allclose(result.as_numpy("y"), runtime.load(model_files["moods"]).run(x, lengths), atol=1e-6)
    events, profile = x[:2], np.ones((2, 2), np.float32)
    inputs = [httpclient.InferInput("events", list(events.shape), "FP32"), httpclient.InferInput("profile", [2, 2], "FP32")]
    inputs[0].set_data_from_numpy(events)
    inputs[1].set_data_from_numpy(profile)
    answer = client.infer("churn", inputs)  # no outputs named: the client asks them all in binary
    assert answer.get_output("churn")["parameters"]["binary_data_size"] == 2 * 2 * 4
    churn = answer.as_numpy("churn")
    np.testing.assert_allclose(churn, runtime.load(model_files["churn"]).run({"events": events, "profile": profile})["churn"], atol=1e-6)
    with pytest.raises(httpclient.InferenceServerException, match="unknown model 'nope'"):
        client.infer("nope", inputs)


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(slow_model: Path) -> None:
    server, port = start(str(slow_model), "--max-body-mb", "64")
    x = np.random.default_rng(2).normal(size=(64, 16_000, 3)).astype(np.float32)  # seconds of LSTM(256) here
    header = json.dumps({"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": x.nbytes}}]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/slow/infer", data=header + x.tobytes(),
                                     headers={"Inference-Header-Content-Length": str(len(header))})
    answers: list[dict] = []
    answered: list[float] = []

    def send() -> None:
        with urllib.request.urlopen(request, timeout=120) as answer:
            answers.append(json.loads(answer.read()))
        answered.append(time.monotonic())

    sender = threading.Thread(target=send)
    try:
        sender.start()
        time.sleep(0.3)  # the body is across; the model is running
        server.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        sender.join(120)
        assert server.wait(30) == 0
    finally:
        stop(server)
    assert len(answers) == 1 and answers[0]["outputs"][0]["shape"] == [64, 3]
    assert answered[0] > signalled  # it was in flight when the signal came
    log = server.stdout.read() if server.stdout else ""
    assert "Shutting down" in log and "Traceback" not in log


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a test certificate")
def test_tls_with_a_certificate_and_key(model_files: dict[str, Path], tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True, timeout=60)
    server, port = start(str(model_files["moods"]), "--ssl-certfile", str(cert), "--ssl-keyfile", str(key), scheme="https")
    try:
        request = urllib.request.Request(f"https://127.0.0.1:{port}/v1/predict", data=b'{"instances": [[[1, 2, 3]]]}')
        with urllib.request.urlopen(request, timeout=30, context=ssl._create_unverified_context()) as answer:
            assert json.loads(answer.read())["predictions"][0]["label"] in ("calm", "glad", "sad")
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP is not spoken on a TLS port
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/live", timeout=5)
    finally:
        stop(server)


@pytest.mark.parametrize("args, expected", [
    (["no/such/model.onnx"], "no/such/model.onnx: no such file or directory"),
    (["MODEL", "--port", "70000"], "--port must lie in [0, 65535], got 70000"),
    (["MODEL", "--max-batch", "0"], "--max-batch must be at least 1, got 0"),
    (["MODEL", "--ssl-certfile", "cert.pem"], "--ssl-certfile and --ssl-keyfile go together"),
    (["NOT_A_MODEL"], "not_a_model.onnx"),
    (["EMPTY_DIR"], "a directory without model.onnx"),
    (["MODEL", "MODEL"], "two models are named 'moods'"),
])
def test_bad_arguments_and_models_are_one_line_and_exit_2(args: list[str], expected: str, model_files: dict[str, Path],
                                                         tmp_path: Path) -> None:
    junk = tmp_path / "not_a_model.onnx"
    junk.write_bytes(b"not onnx")
    (tmp_path / "empty").mkdir()
    named = {"MODEL": str(model_files["moods"]), "NOT_A_MODEL": str(junk), "EMPTY_DIR": str(tmp_path / "empty")}
    args = [named.get(a, a) for a in args]
    done = subprocess.run([*RNNC, "serve", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_the_rest_of_the_cli_never_imports_the_server() -> None:
    script = ("import sys\nfrom rnnc.cli import build_parser\nbuild_parser()\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'prometheus_client') or m.startswith('rnnc.serve')))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def _children(pid: int) -> list[int]:
    """The worker processes under `pid` (multiprocessing's resource tracker left out)."""
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        pids = [int(p) for p in handle.read().split()]
    return [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts worker processes through /proc")
def test_workers_serve_from_several_processes_and_stop_on_sigterm(model_files: dict[str, Path]) -> None:
    server, port = start(str(model_files["moods"]), "--workers", "2")
    try:
        deadline = time.monotonic() + 30
        while len(_children(server.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = _children(server.pid)
        assert len(workers) == 2
        x = np.random.default_rng(4).normal(size=(2, 5, 3)).astype(np.float32)
        want = runtime.load(model_files["moods"]).run(x)
        body = json.dumps({"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]})
        for _ in range(8):  # a new connection each: either worker may answer
            request = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/moods/infer", data=body.encode())
            with urllib.request.urlopen(request, timeout=30) as answer:
                got = np.array(json.loads(answer.read())["outputs"][0]["data"], np.float32).reshape(want.shape)
            np.testing.assert_allclose(got, want, atol=1e-6)
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
        assert not any(Path(f"/proc/{w}").exists() and "zombie" not in Path(f"/proc/{w}/status").read_text() for w in workers)
    finally:
        stop(server)


def test_bad_worker_count_is_one_line(model_files: dict[str, Path]) -> None:
    done = subprocess.run([*RNNC, "serve", str(model_files["moods"]), "--workers", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.strip().endswith("--workers must be at least 1, got 0"), done.stderr


def _batch_runs(port: int, model: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        scraped = answer.read().decode()
    prefix = f'rnnc_serve_batch_rows_count{{model="{model}"}} '
    return next((float(line[len(prefix):]) for line in scraped.splitlines() if line.startswith(prefix)), 0.0)


def test_a_client_that_disconnects_while_queued_costs_no_run(slow_model: Path) -> None:
    """A slow request runs; a second waits behind it and its client leaves; only the slow
    one runs. That needs the slow run to outlast the second client by a margin, which
    each attempt checks from its own clock: a faster machine doubles the run's length."""
    server, port = start(str(slow_model), "--max-batch", "1", "--max-body-mb", "64")
    try:
        body = json.dumps({"instances": [[[0.1, 0.2, 0.3]] * 4]}).encode()
        for steps in (8_000, 16_000, 32_000, 64_000):
            x = np.random.default_rng(5).normal(size=(64, steps, 3)).astype(np.float32)
            header = json.dumps({"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                                             "parameters": {"binary_data_size": x.nbytes}}]}).encode()
            slow = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/slow/infer", data=header + x.tobytes(),
                                          headers={"Inference-Header-Content-Length": str(len(header))})
            answered: list[float] = []
            sender = threading.Thread(target=lambda: (urllib.request.urlopen(slow, timeout=120).read(), answered.append(time.monotonic())))
            runs_before = _batch_runs(port, "slow")
            sender.start()
            time.sleep(0.3)  # the slow one runs; the next waits behind it, then its client leaves
            with socket.create_connection(("127.0.0.1", port)) as conn:
                conn.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                time.sleep(0.05)
            left = time.monotonic()
            sender.join(120)
            time.sleep(0.3)
            assert answered, "the slow request got no answer"
            if answered[0] - left >= 0.5:  # the second client left well before the slow run ended
                break
        else:
            raise AssertionError(f"even {steps} steps ran out before the second client left")
        assert _batch_runs(port, "slow") - runs_before == 1  # the slow request alone ran
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            assert 'status="499"' in answer.read().decode()
    finally:
        stop(server)
