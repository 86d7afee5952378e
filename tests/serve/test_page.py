"""The page at `/` of `rnnc serve`: what `/v1/models` tells it, that it loads nothing from
elsewhere, and, in headless Chromium against a live server (page_routes and a stand-in
/v1/predict), that it shows what `rnnc.runtime` predicts (a text classifier's bars, a
per-step regression's line), reads uploads and token ids, asks for a token, and shows
the server's error line. test_page_app.py runs the page on rnnc serve's own app."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

pytest.importorskip("starlette")
rnnc_onnx = pytest.importorskip("rnnc_onnx")

from page_browser import WAIT, LiveServer, browser, browser_test, predicted  # noqa: E402,F401  (browser: a fixture)
from starlette.applications import Starlette  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.middleware.base import BaseHTTPMiddleware  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from rnnc import ir, runtime  # noqa: E402
from rnnc.errors import DataError, UsageError  # noqa: E402
from rnnc.initial import initial_weights  # noqa: E402
from rnnc.serve.page import PUBLIC_PATHS, STATIC, page_routes  # noqa: E402
from rnnc.spec import model_from_mapping  # noqa: E402
from rnnc.text import Vocab  # noqa: E402

FEATURES = 3
TEXT_LAYERS = [
    {"type": "embedding", "vocab_size": 12, "dim": 4, "mask_zero": True},
    {"type": "gru", "units": 4},
    {"type": "dense", "units": 3, "activation": "softmax"},
]
GRAPH_LAYERS = [
    {"name": "h", "type": "gru", "units": 4, "input": "events"},
    {"name": "both", "type": "concatenate", "input": ["h", "profile"]},
    {"name": "churn", "type": "dense", "units": 2, "activation": "softmax"},
]
PER_STEP_LAYERS = [{"type": "gru", "units": 4, "return_sequences": True}, {"type": "dense", "units": 2}]


def export(folder: Path, name: str, input_: dict[str, Any], layers: list[dict[str, Any]], loss: str,
           classes: list[str] | None = None, text: bool = False) -> Path:
    model = model_from_mapping({"rnnc": 1, "name": name, "input": input_, "layers": layers, "loss": loss, "optimizer": "adam"})
    vocab = Vocab.build(["a small test of words"], ir.TextData(tokenizer="char", max_vocab=10)) if text else None
    path = folder / f"{name}.onnx"
    rnnc_onnx.export(model, initial_weights(model, seed=3), path, classes=classes, vocab=vocab)
    return path


def served(path: Path) -> SimpleNamespace:
    """A stand-in for rnnc.serve.models.ServedModel: what page_routes reads of one."""
    predictor = runtime.load(path)
    if isinstance(predictor, runtime.GraphPredictor):
        inputs = [{"name": i.name, "datatype": "INT64" if i.token_ids else "FP32", "shape": [-1, *(d or -1 for d in i.shape)]}
                  for i in predictor.inputs.values()]
        inputs += [{"name": f"{i.name}.lengths", "datatype": "INT64", "shape": [-1], "optional": True} for i in predictor.inputs.values() if i.takes_lengths]
        outputs = [{"name": o.name, "datatype": "FP32", "shape": [-1 if isinstance(d, str) else d for d in o.shape]}
                   for o in predictor.outputs.values()]
        return SimpleNamespace(name=path.stem, predictor=predictor, inputs=inputs, outputs=outputs)
    steps = predictor.timesteps or -1
    shape = [-1, steps] if predictor.token_ids else [-1, steps, predictor.features]
    inputs = [{"name": "x", "datatype": "INT64" if predictor.token_ids else "FP32", "shape": shape}]
    if predictor.takes_lengths:
        inputs.append({"name": "lengths", "datatype": "INT64", "shape": [-1], "optional": True})
    return SimpleNamespace(name=path.stem, predictor=predictor, inputs=inputs,
                           outputs=[{"name": "y", "datatype": "FP32", "shape": [-1 if isinstance(d, str) else d for d in predictor.output_shape]}])


def predict_route(model: SimpleNamespace) -> Route:
    """/v1/predict as the page expects it: probabilities by class, else the output `y`."""
    async def predict(request: Request) -> JSONResponse:
        body = await request.json()
        try:
            if "texts" in body:
                y = model.predictor.predict_texts(body["texts"])
            else:
                dtype = np.int64 if model.predictor.token_ids else np.float32
                y = np.concatenate([model.predictor.predict(np.asarray([row], dtype)) for row in body["instances"]])
        except (DataError, UsageError) as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        classes = model.predictor.classes
        if not classes:
            return JSONResponse({"predictions": [{"y": row.tolist()} for row in y]})
        return JSONResponse({"predictions": [
            {"label": classes[int(p.argmax())], "probability": float(p.max()), "probabilities": dict(zip(classes, map(float, p)))}
            for p in y
        ]})
    return Route("/v1/predict", predict, methods=["POST"])


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SimpleNamespace]:
    folder = tmp_path_factory.mktemp("page")
    text = export(folder, "words", {"shape": [None], "dtype": "int64"}, TEXT_LAYERS, "sparse_categorical_crossentropy", ["a", "b", "c"], text=True)
    per_step = export(folder, "steps", {"shape": [None, FEATURES]}, PER_STEP_LAYERS, "mse")
    ids = export(folder, "ids", {"shape": [None], "dtype": "int64"}, TEXT_LAYERS, "sparse_categorical_crossentropy", ["x", "y", "z"])
    graph = model_from_mapping({"rnnc": 2, "name": "churn", "inputs": {"events": {"shape": [None, FEATURES]}, "profile": {"shape": [2]}},
                                "layers": GRAPH_LAYERS, "outputs": {"churn": {"loss": "sparse_categorical_crossentropy"}}, "optimizer": "adam"})
    rnnc_onnx.export(graph, initial_weights(graph, seed=3), folder / "churn.onnx", classes={"churn": ["stay", "leave"]})
    return {"words": served(text), "steps": served(per_step), "ids": served(ids), "churn": served(folder / "churn.onnx")}


def test_models_json_says_what_each_model_takes_gives_and_where_to_post(models: dict[str, SimpleNamespace]) -> None:
    one = TestClient(Starlette(routes=page_routes([models["words"]]))).get("/v1/models").json()["models"]
    assert one == [{
        "name": "words", "input": "text", "output": "classes", "classes": ["a", "b", "c"], "features": None, "timesteps": None,
        "inputs": [{"name": "x", "datatype": "INT64", "shape": [-1, -1]}, {"name": "lengths", "datatype": "INT64", "shape": [-1], "optional": True}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}],
        "predict": "/v1/predict",
    }]
    several = TestClient(Starlette(routes=page_routes(list(models.values())))).get("/v1/models").json()["models"]
    assert [(m["name"], m["input"], m["output"], m["features"], m["predict"]) for m in several] == [
        ("words", "text", "classes", None, "/v1/models/words/predict"),
        ("steps", "sequence", "sequence", FEATURES, "/v1/models/steps/predict"),
        ("ids", "ids", "classes", None, "/v1/models/ids/predict"),
        ("churn", "json", "classes", None, "/v1/models/churn/predict"),
    ]
    assert several[3]["classes"] == ["stay", "leave"]
    assert [i["name"] for i in several[3]["inputs"]] == ["events", "profile", "events.lengths"]


def test_the_page_and_its_assets_are_served_with_a_policy_that_allows_only_this_server(models: dict[str, SimpleNamespace]) -> None:
    client = TestClient(Starlette(routes=page_routes([models["words"]])))
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    for name, kind in (("page.js", "text/javascript"), ("page.css", "text/css")):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
        assert asset.content == (STATIC / name).read_bytes()
    assert client.get("/static/index.html").status_code == 404  # only the named assets, no folder served
    assert client.get("/static/../page.py").status_code == 404


def test_nothing_in_the_page_points_outside_the_server() -> None:
    for name in ("index.html", "page.js", "page.css"):
        urls = re.findall(r"\w+://[^\s\"')]+", (STATIC / name).read_text())
        assert set(urls) <= {"http://www.w3.org/2000/svg"}, (name, urls)  # the SVG namespace is a name, never fetched


# --- in a browser ----------------------------------------------------------------------

def page_of(model: SimpleNamespace, token: str | None = None) -> Starlette:
    async def bearer(request: Request, call_next: Any) -> Any:  # as a server started with --token
        if token is None or request.url.path in PUBLIC_PATHS or request.headers.get("authorization") == f"Bearer {token}":
            return await call_next(request)
        return JSONResponse({"error": "Authorization: a bearer token is required"}, status_code=401)

    return Starlette(routes=[*page_routes([model]), predict_route(model)], middleware=[Middleware(BaseHTTPMiddleware, dispatch=bearer)])


@browser_test
def test_a_text_model_shows_its_class_probabilities_as_bars(browser: Any, models: dict[str, SimpleNamespace]) -> None:
    from selenium.webdriver.common.by import By

    model = models["words"]
    with LiveServer(page_of(model)) as live:
        predicted(browser, live.url + "/", "a test")
        assert browser.find_element(By.ID, "title").text == "rnnc serve: words"
        assert browser.find_element(By.ID, "about").text == "takes x INT64 [-1, -1]; classes a, b, c"  # lengths: the server's
        entries = browser.find_elements(By.CSS_SELECTOR, "svg.bars g.entry")
        shown = {e.get_attribute("data-label"): float(e.get_attribute("data-value")) for e in entries}
        texts = {e.find_element(By.CSS_SELECTOR, "text.label").text: e.find_element(By.CSS_SELECTOR, "text.value").text for e in entries}
    expected = model.predictor.predict_texts(["a test"])[0]
    assert list(shown) == [model.predictor.classes[i] for i in np.argsort(-expected, kind="stable")]  # likeliest first
    np.testing.assert_allclose([shown[c] for c in model.predictor.classes], expected, atol=1e-6)
    assert texts == {c: f"{p:.4f}" for c, p in zip(model.predictor.classes, expected)}
    best = model.predictor.classes[int(expected.argmax())]
    assert browser.find_element(By.ID, "headline").text == f"{best} ({expected.max():.4f})"


@browser_test
def test_a_pasted_sequence_shows_the_per_step_output_as_lines(browser: Any, models: dict[str, SimpleNamespace]) -> None:
    from selenium.webdriver.common.by import By

    model = models["steps"]
    x = np.round(np.random.default_rng(0).uniform(-1, 1, (6, FEATURES)), 3).astype(np.float32)
    csv = "a,b,c\n" + "\n".join(", ".join(f"{v:g}" for v in row) for row in x)  # with a header line, skipped
    with LiveServer(page_of(model)) as live:
        predicted(browser, live.url + "/", csv)
        assert browser.find_element(By.ID, "upload").is_displayed()
        units = browser.find_elements(By.CSS_SELECTOR, "svg.lines g.unit")
        shown = [[float(p.get_attribute("data-value")) for p in u.find_elements(By.CSS_SELECTOR, "circle.point")] for u in units]
    expected = model.predictor.predict(x[None])[0]  # [steps, units]
    np.testing.assert_allclose(np.array(shown).T, expected, atol=1e-5)


@browser_test
def test_a_bad_input_shows_the_servers_error_line(browser: Any, models: dict[str, SimpleNamespace]) -> None:
    from selenium.webdriver.common.by import By

    model = models["steps"]
    with LiveServer(page_of(model)) as live:
        predicted(browser, live.url + "/", "1, 2\n3, 4")  # two features where the model takes three
        error = browser.find_element(By.ID, "error").text
        assert error == f"the model takes input [batch, time, {FEATURES}], got shape [1, 2, 2]"
        assert not browser.find_element(By.ID, "result").is_displayed()
        predicted(browser, live.url + "/", "1, 2, x")  # refused by the page before it is sent
        assert browser.find_element(By.ID, "error").text == "line 1, column 3: 'x' is not a number"


@browser_test
def test_with_several_models_the_page_offers_each_and_opens_the_one_named_in_the_url(browser: Any, models: dict[str, SimpleNamespace]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    with LiveServer(Starlette(routes=page_routes(list(models.values())))) as live:
        browser.get(live.url + "/?model=steps")
        WebDriverWait(browser, WAIT).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        choice = Select(browser.find_element(By.ID, "model"))
        assert [o.text for o in choice.options] == list(models) and choice.first_selected_option.text == "steps"
        assert browser.find_element(By.ID, "title").text == "rnnc serve: steps"
        assert len(browser.find_element(By.ID, "input").get_attribute("value").splitlines()) == 5  # an example to edit
        choice.select_by_visible_text("churn")
        assert browser.find_element(By.ID, "title").text == "rnnc serve: churn"
        assert browser.find_element(By.ID, "input").get_attribute("value") == '{"events":[],"profile":[]}'


@browser_test
def test_token_ids_typed_comma_separated_give_the_runtimes_probabilities(browser: Any, models: dict[str, SimpleNamespace]) -> None:
    from selenium.webdriver.common.by import By

    model = models["ids"]
    with LiveServer(page_of(model)) as live:
        predicted(browser, live.url + "/", "3, 1, 4,\n1 5")  # commas, spaces and lines alike
        shown = {e.get_attribute("data-label"): float(e.get_attribute("data-value")) for e in browser.find_elements(By.CSS_SELECTOR, "svg.bars g.entry")}
        predicted(browser, live.url + "/", "3, 1.5")
        assert browser.find_element(By.ID, "error").text == "id 2: '1.5' is not an integer"
    expected = model.predictor.predict(np.array([[3, 1, 4, 1, 5]]))[0]
    np.testing.assert_allclose([shown[c] for c in model.predictor.classes], expected, atol=1e-6)


@browser_test
def test_a_server_that_wants_a_token_gets_it_from_the_page(browser: Any, models: dict[str, SimpleNamespace]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    model = models["words"]
    with LiveServer(page_of(model, token="s3cret")) as live:
        browser.get(live.url + "/")
        WebDriverWait(browser, WAIT).until(lambda d: d.find_element(By.ID, "login").is_displayed())
        assert browser.find_element(By.ID, "error").text == "could not read the models from /v1/models: Authorization: a bearer token is required"
        browser.find_element(By.ID, "token").send_keys("s3cret")
        browser.find_element(By.CSS_SELECTOR, "#login button").click()
        WebDriverWait(browser, WAIT).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        assert not browser.find_element(By.ID, "login").is_displayed()
        box = browser.find_element(By.ID, "input")
        box.send_keys("a test")
        browser.find_element(By.ID, "predict").click()
        WebDriverWait(browser, WAIT).until(lambda d: d.find_element(By.ID, "result").is_displayed() or d.find_element(By.ID, "error").is_displayed())
        shown = {e.get_attribute("data-label"): float(e.get_attribute("data-value")) for e in browser.find_elements(By.CSS_SELECTOR, "svg.bars g.entry")}
        browser.execute_script("sessionStorage.clear()")
    np.testing.assert_allclose([shown[c] for c in model.predictor.classes], model.predictor.predict_texts(["a test"])[0], atol=1e-6)


@browser_test
def test_an_uploaded_csv_file_is_predicted_as_pasted(browser: Any, models: dict[str, SimpleNamespace], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    model = models["steps"]
    x = np.round(np.random.default_rng(1).uniform(-1, 1, (4, FEATURES)), 3).astype(np.float32)
    upload = tmp_path / "window.csv"
    upload.write_text("\r\n".join(",".join(f"{v:g}" for v in row) for row in x) + "\r\n\r\n")  # Windows line ends, a blank line
    with LiveServer(page_of(model)) as live:
        browser.get(live.url + "/")
        WebDriverWait(browser, WAIT).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        browser.find_element(By.ID, "file").send_keys(str(upload))
        written = upload.read_bytes().decode().replace("\r", "")  # a textarea's value ends lines with \n
        WebDriverWait(browser, WAIT).until(lambda d: d.find_element(By.ID, "input").get_attribute("value").replace("\r", "") == written)
        browser.find_element(By.ID, "predict").click()
        WebDriverWait(browser, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "svg.lines g.unit"))
        shown = [[float(p.get_attribute("data-value")) for p in u.find_elements(By.CSS_SELECTOR, "circle.point")]
                 for u in browser.find_elements(By.CSS_SELECTOR, "svg.lines g.unit")]
    np.testing.assert_allclose(np.array(shown).T, model.predictor.predict(x[None])[0], atol=1e-5)
