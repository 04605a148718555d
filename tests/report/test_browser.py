"""The report in a real headless browser: what a reader sees, not only that it loads.

Fails on escaped markup (a table shown as its HTML source), counts the table cells the
browser rendered, checks every image decodes and that a screenshot is not blank (pixel
variance, many colours). Needs Debian packages chromium and chromium-driver (tests/run.sh
installs them); skipped only when they are missing. Set HCISIM_SCREENSHOTS=DIR to keep the
screenshots for a look.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from matplotlib import image as mpimg
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from hcisim.observations import Observations
from hcisim.report import write_report
from tests.report.runs import big_run, model_run, month_run, small_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="needs chromium and chromium-driver (Debian packages)"),
]

# Text that appears on screen only when HTML was escaped instead of rendered.
ESCAPED = ("<table", "</td>", "<tr", "&lt;", "&gt;", "&amp;", "<p class")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    opts = webdriver.ChromeOptions()
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1280,1000"):
        opts.add_argument(arg)
    assert CHROMIUM is not None and CHROMEDRIVER is not None
    opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def _console(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return entries


def _open(driver: webdriver.Chrome, page: Path) -> list[dict[str, Any]]:
    _console(driver)  # drop what earlier pages logged
    driver.get(page.as_uri())
    driver.execute_script("return document.readyState")
    return _console(driver)


def _cells(driver: webdriver.Chrome, css: str) -> int:
    return int(driver.execute_script(
        f"return document.querySelectorAll({css!r}).length"))


def _screenshot(driver: webdriver.Chrome, path: Path) -> np.ndarray:
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1280, min(height, 8000))
    assert driver.save_screenshot(str(path))
    keep = os.environ.get("HCISIM_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    pixels: np.ndarray = mpimg.imread(path)
    return pixels


@pytest.mark.parametrize("make", [small_run, big_run, model_run, month_run],
                         ids=["three-vms", "hundred-vms", "model-default", "month-two-faults"])
def test_report_shows_rendered_tables_and_images_and_no_console_error(
        browser: webdriver.Chrome, tmp_path: Path, make: Any) -> None:
    result = make(tmp_path / "run")
    page = write_report(result)
    logs = _open(browser, page)
    assert browser.title.startswith("hcisim report:")
    shown = browser.find_element(By.TAG_NAME, "body").text
    leaked = [s for s in ESCAPED if s in shown]
    assert leaked == [], f"escaped markup visible on the page: {leaked}"
    # Tables are real tables: a row of 13 cells per VM, a row per failover pair and per
    # event, a row of 8 per host in the HA plan.
    obs = Observations.load(result)
    n_vms = len(json.loads((result / "summary.json").read_text())["vms"])
    assert n_vms >= 3
    assert _cells(browser, "#vm-table table.data tbody tr") == n_vms
    assert _cells(browser, "#vm-table table.data tbody td") == 13 * n_vms
    assert _cells(browser, "#pairs-table tbody tr") == len(obs["failover_pairs"])
    assert _cells(browser, "#events-table tbody tr") == len(obs["events"]) > 0
    assert _cells(browser, "#ha-table tbody td") >= 3 * 8
    assert _cells(browser, "table.claims td") >= 7
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth,"
        " i.naturalHeight])")
    faults = len(obs["events"].query("kind == 'fault_start'"))
    assert len(images) == 3 + faults  # whole run: I/O, states, bricks; a zoom per fault
    for alt, complete, width, height in images:
        assert complete and width > 0 and height > 0, alt
    errors = [e for e in logs if e.get("level") in ("SEVERE", "ERROR")]
    assert errors == []
    for link in browser.find_elements(By.CSS_SELECTOR, "a[href$='.csv'], a[href$='.png']"):
        href = link.get_attribute("href") or ""
        assert Path(unquote(urlparse(href).path)).is_file(), href
    headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h2")]
    assert headings[:2] == ["Claims", "Throughput and latency"]
    assert "Around each fault" in headings and "Scenario" in headings and "Data" in headings
    pixels = _screenshot(browser, tmp_path / f"report-{make.__name__}.png")
    rgb = pixels[..., :3]
    assert rgb.shape[1] >= 1200 and rgb.shape[0] >= 2000
    assert float(rgb.std()) > 0.05  # not a blank page
    colours = np.unique((rgb * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 100  # plots, text and badges


def test_user_text_stays_escaped_in_the_browser(browser: webdriver.Chrome,
                                                tmp_path: Path) -> None:
    """A description with markup shows as text (nothing injected), tables still render."""
    result = small_run(tmp_path / "run")
    scenario = result / "scenario.yaml"
    text = scenario.read_text()
    assert "description: ''" in text
    scenario.write_text(text.replace("description: ''",
                                     "description: '<b>bold</b> & <i>x</i>'", 1))
    _open(browser, write_report(result))
    assert "<b>bold</b> & <i>x</i>" in browser.find_element(By.TAG_NAME, "body").text
    assert [b for b in browser.find_elements(By.TAG_NAME, "b") if b.text == "bold"] == []
    assert _cells(browser, "table.data tbody td") > 0


def test_capacity_page_shows_its_tables_and_plots(browser: webdriver.Chrome,
                                                  tmp_path: Path) -> None:
    from hcisim.capacity import load_spec, size, write_capacity
    from tests.report.runs import REPO

    result = size(*load_spec(REPO / "scenarios" / "capacity" / "spec.yaml"))
    page = write_capacity(result, tmp_path)["capacity.html"]
    logs = _open(browser, page)
    shown = browser.find_element(By.TAG_NAME, "body").text
    assert [s for s in ESCAPED if s in shown] == []
    checks = sum(len(a["checks"]) for a in result["assessments"])
    assert _cells(browser, "table.checks tr") == checks + 1  # a row per check and the header
    assert _cells(browser, "table.checks td") == 8 * checks
    sizes = browser.execute_script(
        "return Array.from(document.images).map(i => i.naturalWidth * i.naturalHeight)")
    assert len(sizes) == 2 and all(s > 0 for s in sizes)
    assert [e for e in logs if e.get("level") in ("SEVERE", "ERROR")] == []
