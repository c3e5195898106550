"""The demo page in a real browser: Debian's headless Chromium driven by Selenium through
Debian's chromedriver (no browser or driver download). For a classifier export: types a
sentence, submits, reads the label and the bars; for a token-classification export: the
entities marked in the text (an emoji before one must not shift it) and listed; for a
question-answering export: the answer marked in the context. Each is checked against the
runtime's answer for that input, and screenshotted.

Needs `apt-get install chromium chromium-driver` (.ci/run installs them); skipped without
them on a developer machine, but fails in CI (CI=true) so a missing browser is never silent.
"""

from __future__ import annotations

import os
import shutil

import pytest

from demo_exports import DemoServer, classifier_export, ner_export, qa_export

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("CI"):
        pytest.fail("the browser test needs Debian's chromium and chromium-driver packages", pytrace=False)
    pytest.skip("no chromium/chromedriver (apt-get install chromium chromium-driver)", allow_module_level=True)


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,900"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(60)
    yield browser
    browser.quit()


def served(make_export, tmp_path_factory, name: str):
    export = make_export(tmp_path_factory)
    server = DemoServer(export, tmp_path_factory.mktemp(name) / "stderr.log")
    return export, server


@pytest.fixture(scope="module")
def page(driver, tmp_path_factory):
    export, server = served(classifier_export, tmp_path_factory, "demo-browser")
    yield export, server, driver
    server.stop()


@pytest.fixture(scope="module")
def ner_page(driver, tmp_path_factory):
    export, server = served(ner_export, tmp_path_factory, "demo-browser-ner")
    yield export, server, driver
    server.stop()


@pytest.fixture(scope="module")
def qa_page(driver, tmp_path_factory):
    export, server = served(qa_export, tmp_path_factory, "demo-browser-qa")
    yield export, server, driver
    server.stop()


def submit(driver, url: str, text: str, question: str | None = None) -> None:
    """Load the page, wait until it knows its task (GET /api/info), fill it in and send it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 60).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-task"))
    if question is not None:
        driver.find_element(By.ID, "question").send_keys(question)
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


def marks(driver) -> list[dict]:
    from selenium.webdriver.common.by import By

    return [{"text": m.text, "start": int(m.get_attribute("data-start")), "end": int(m.get_attribute("data-end")),
             "type": m.get_attribute("data-type")} for m in driver.find_elements(By.CSS_SELECTOR, "#marked mark")]


def test_ner_page_marks_the_runtimes_entities(ner_page, tmp_path):
    from selenium.webdriver.common.by import By

    from demo_app.model import DemoModel

    export, server, driver = ner_page
    model = DemoModel.load(export)
    text = "bob zed was at the cafe \U0001f600 kim , the movie"  # the emoji is 2 UTF-16 units, 1 code point
    submit(driver, server.url, text)
    expected = model.entities(text).entities
    assert driver.find_element(By.ID, "error").get_attribute("hidden") is not None
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-task") == "token-classification"
    assert driver.find_element(By.ID, "submit").text == "Find entities"
    assert marks(driver) == [{k: e[k] for k in ("text", "start", "end", "type")} for e in expected]
    assert {"text": "kim", "start": 26, "end": 29, "type": "PER"} in marks(driver)  # after the emoji
    assert driver.find_element(By.ID, "marked").text.replace("PER", "").replace("LOC", "") == text
    assert driver.find_element(By.ID, "label").text == f"{len(expected)} entities"
    items = driver.find_elements(By.CSS_SELECTOR, "#entity-list li")
    assert [i.get_attribute("data-type") for i in items] == [e["type"] for e in expected]
    assert driver.find_element(By.ID, "latency").text.endswith("(20 tokens in 2 windows)")
    driver.save_screenshot(str(tmp_path / "demo-page-ner.png"))
    submit(driver, server.url, " ".join(["ann zed , the cafe was good ."] * 4))
    assert driver.find_element(By.ID, "note").text.startswith("The text has 50 tokens; the model read it in 4 windows")
    assert len(marks(driver)) == len(model.entities(" ".join(["ann zed , the cafe was good ."] * 4)).entities)


def test_qa_page_marks_the_answer_in_the_context(qa_page, tmp_path):
    from selenium.webdriver.common.by import By

    from demo_app.model import DemoModel

    export, server, driver = qa_page
    model = DemoModel.load(export)
    context = "the movie was , the cafe was ! a b the movie was terrible . the cafe , the movie ! a b c"
    submit(driver, server.url, context, question="what was it ?")
    expected = model.answer("what was it ?", context)
    assert driver.find_element(By.ID, "question").is_displayed()
    assert driver.find_element(By.ID, "label").text == expected.answer == "terrible"
    assert marks(driver) == [{"text": "terrible", "start": expected.start, "end": expected.end, "type": None}]
    assert driver.find_element(By.ID, "marked").text == context
    assert driver.find_element(By.ID, "note").text == \
        "The context was read in 2 overlapping windows of at most 32 tokens."
    assert not driver.find_element(By.ID, "bars").find_elements(By.CLASS_NAME, "row")
    shot = tmp_path / "demo-page-qa.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 5000
