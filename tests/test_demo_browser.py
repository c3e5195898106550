"""The demo page in a real browser: Debian's headless Chromium driven by Selenium through
Debian's chromedriver (no browser or driver download). Types a sentence, submits, reads the
label and the bars, checks them against the runtime's answer for that text, screenshots.

Needs `apt-get install chromium chromium-driver` (.ci/run installs them); skipped without
them on a developer machine, but fails in CI (CI=true) so a missing browser is never silent.
"""

from __future__ import annotations

import os
import shutil

import pytest

from demo_exports import DemoServer, classifier_export

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("CI"):
        pytest.fail("the browser test needs Debian's chromium and chromium-driver packages", pytrace=False)
    pytest.skip("no chromium/chromedriver (apt-get install chromium chromium-driver)", allow_module_level=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    export = classifier_export(tmp_path_factory)
    server = DemoServer(export, tmp_path_factory.mktemp("demo-browser") / "stderr.log")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield export, server, driver
    finally:
        driver.quit()
        server.stop()


def submit(driver, url: str, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    box = driver.find_element(By.ID, "text")
    box.clear()
    box.send_keys(text)
    driver.find_element(By.ID, "submit").click()
    WebDriverWait(driver, 60).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state")
                                    in ("answered", "error"))


def test_page_shows_the_runtimes_label_with_bars(page, tmp_path):
    from selenium.webdriver.common.by import By

    from demo_app.model import DemoModel

    export, server, driver = page
    model = DemoModel.load(export)
    for text in ("the movie was great", "bad terrible cafe"):
        submit(driver, server.url, text)
        expected = model.classify(text)
        assert driver.find_element(By.ID, "error").get_attribute("hidden") is not None
        assert driver.find_element(By.ID, "label").text == expected.label
        rows = driver.find_elements(By.CSS_SELECTOR, "#bars .row")
        assert [r.get_attribute("data-label") for r in rows] == list(model.export.labels)
        for row in rows:
            shown = float(row.find_element(By.CLASS_NAME, "value").text.rstrip("%"))
            assert shown == pytest.approx(100 * expected.probabilities[row.get_attribute("data-label")], abs=0.051)
        assert driver.find_element(By.ID, "artifact").text == "tflite-fp32.tflite"
        assert driver.find_element(By.ID, "runtime").text.startswith("ai-edge-litert")
        assert " ms model" in driver.find_element(By.ID, "latency").text
        assert not driver.find_element(By.ID, "note").is_displayed()
    shot = tmp_path / "demo-page.png"
    assert driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 5000


def test_page_shows_the_truncation_note(page, tmp_path):
    from selenium.webdriver.common.by import By

    _, server, driver = page
    submit(driver, server.url, " ".join(["the"] * 30 + ["good"]))
    note = driver.find_element(By.ID, "note")
    assert note.is_displayed()
    assert note.text == "The text has 33 tokens; the model read the first 16 (its sequence length is 16)."
    driver.save_screenshot(str(tmp_path / "demo-page-truncated.png"))
