"""The page on `rnnc serve`'s own app (`build_app` over `ServedModel`s), in headless
Chromium: what it draws for a text model, a graph's named output and a per-step
classifier equals `rnnc.runtime`'s numbers, and the server's refusal shows as its line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("starlette")
rnnc_onnx = pytest.importorskip("rnnc_onnx")

from page_browser import LiveServer, browser, browser_test, charted, predicted  # noqa: E402,F401  (browser: a fixture)
from starlette.applications import Starlette  # noqa: E402

from rnnc import runtime  # noqa: E402
from rnnc.initial import initial_weights  # noqa: E402
from rnnc.spec import model_from_mapping  # noqa: E402

FEATURES = 3  # as conftest's models
TAGGER = [{"type": "gru", "units": 4, "return_sequences": True}, {"type": "dense", "units": 3, "activation": "softmax"}]

def served_app(*paths: Path) -> Starlette:
    from rnnc.serve.app import ServeSettings, build_app
    from rnnc.serve.models import ServedModel

    return build_app([ServedModel.open(p) for p in paths], ServeSettings())


@browser_test
def test_on_rnnc_serve_a_text_models_bars_are_the_runtimes(browser: Any, model_files: dict[str, Path]) -> None:
    predictor = runtime.load(model_files["words"])
    with LiveServer(served_app(model_files["words"])) as live:
        predicted(browser, live.url + "/", "a test of")
        bars, _ = charted(browser)
    np.testing.assert_allclose([bars[c] for c in predictor.classes], predictor.predict_texts(["a test of"])[0], atol=1e-6)


@browser_test
def test_on_rnnc_serve_a_graphs_named_output_gets_its_own_bars(browser: Any, model_files: dict[str, Path]) -> None:
    from selenium.webdriver.common.by import By

    predictor = runtime.load(model_files["churn"])
    events = [[0.5, -0.2, 0.1], [0.3, 0.9, -0.4]]
    with LiveServer(served_app(model_files["churn"])) as live:
        predicted(browser, live.url + "/", json.dumps({"events": events, "profile": [0.2, -0.7]}))
        bars, _ = charted(browser)
        headline = browser.find_element(By.ID, "headline").text
    want = predictor.predict({"events": np.array([events], np.float32), "profile": np.array([[0.2, -0.7]], np.float32)})["churn"][0]
    np.testing.assert_allclose([bars["stay"], bars["leave"]], want, atol=1e-6)
    assert headline == f"{['stay', 'leave'][int(want.argmax())]} ({want.max():.4f})"


@browser_test
def test_on_rnnc_serve_a_per_step_classifier_draws_each_class_over_the_steps(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    model = model_from_mapping({"rnnc": 1, "name": "tagger", "input": {"shape": [None, FEATURES]}, "layers": TAGGER,
                                "loss": "sparse_categorical_crossentropy", "optimizer": "adam"})
    path = tmp_path / "tagger.onnx"
    rnnc_onnx.export(model, initial_weights(model, seed=3), path, classes=["n", "v", "x"])
    predictor = runtime.load(path)
    x = np.round(np.random.default_rng(2).uniform(-1, 1, (5, FEATURES)), 3).astype(np.float32)
    with LiveServer(served_app(path)) as live:
        predicted(browser, live.url + "/", "\n".join(",".join(f"{v:g}" for v in row) for row in x))
        _, points = charted(browser)
        legend = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "svg.lines text.legend")]
        headline = browser.find_element(By.ID, "headline").text
        predicted(browser, live.url + "/", "1, 2\n3, 4")
        refused = browser.find_element(By.ID, "error").text
    want = predictor.predict(x[None])[0]  # [steps, classes]
    np.testing.assert_allclose(np.array(points).T, want, atol=1e-6)
    assert legend == ["n", "v", "x"]
    assert headline == " ".join(predictor.classes[i] for i in want.argmax(-1))
    assert refused == f"instances[0]: [steps, {FEATURES}] features expected, got shape [2, 2]"  # the server's line, as sent
