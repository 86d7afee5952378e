"""Headless Chromium against a live server, for the page's tests: `browser_test` skips
(saying why) where Chromium, chromedriver or Selenium is missing, `LiveServer` runs an
app under uvicorn on a free loopback port in a thread, `browser` is one Chromium for a
test module, `predicted` types into the page and presses Predict, `charted` reads back
what the page drew."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

uvicorn = pytest.importorskip("uvicorn")

from starlette.applications import Starlette  # noqa: E402

WAIT = 30  # seconds for the browser to show something, on a loaded machine

def browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return "Chromium is not installed (apt-get install chromium chromium-driver)"
    return None


browser_test = pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")


class LiveServer:
    """uvicorn on a free loopback port in a thread."""

    def __init__(self, app: Starlette):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self.socket.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


def chrome(width: int = 900, height: int = 700) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or ""), options=options)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if why := browser_missing():
        pytest.skip(why)
    driver = chrome()
    yield driver
    driver.quit()


def predicted(driver: Any, url: str, typed: str) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    box = driver.find_element(By.ID, "input")
    box.clear()
    box.send_keys(typed)
    driver.find_element(By.ID, "predict").click()
    WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "result").is_displayed() or d.find_element(By.ID, "error").is_displayed())
    return driver


def charted(driver: Any) -> tuple[dict[str, float], list[list[float]]]:
    """What the page drew: bars by label, and each line's points."""
    from selenium.webdriver.common.by import By

    bars = {e.get_attribute("data-label"): float(e.get_attribute("data-value")) for e in driver.find_elements(By.CSS_SELECTOR, "svg.bars g.entry")}
    points = [[float(p.get_attribute("data-value")) for p in u.find_elements(By.CSS_SELECTOR, "circle.point")]
              for u in driver.find_elements(By.CSS_SELECTOR, "svg.lines g.unit")]
    return bars, points
