"""The report in a real headless browser: it loads, every image renders, no console error.

Needs Debian packages: chromium, chromium-driver (tests/run.sh installs them); skipped only
when they are missing.
"""

from __future__ import annotations

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

from hcisim.report import write_report
from tests.report.runs import big_run, model_run, small_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="needs chromium and chromium-driver (Debian packages)"),
]


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


@pytest.mark.parametrize("make", [small_run, big_run, model_run],
                         ids=["three-vms", "hundred-vms", "model-default"])
def test_report_loads_with_every_image_rendered_and_no_console_error(
        browser: webdriver.Chrome, tmp_path: Path, make: Any) -> None:
    page = write_report(make(tmp_path))
    logs = _open(browser, page)
    assert browser.title.startswith("hcisim report:")
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth,"
        " i.naturalHeight])")
    assert len(images) == 3
    for alt, complete, width, height in images:
        assert complete and width > 0 and height > 0, alt
    errors = [e for e in logs if e.get("level") in ("SEVERE", "ERROR")]
    assert errors == []
    for link in browser.find_elements(By.CSS_SELECTOR, "a[href$='.csv'], a[href$='.png']"):
        href = link.get_attribute("href") or ""
        assert Path(unquote(urlparse(href).path)).is_file(), href
    headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h2")]
    assert headings[:1] == ["Claims"] and "Scenario" in headings and "Data" in headings


def test_screenshot_of_a_hundred_vm_report(browser: webdriver.Chrome, tmp_path: Path) -> None:
    page = write_report(big_run(tmp_path / "run"))
    _open(browser, page)
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    assert height > 2000  # plots and tables are laid out, not collapsed
    browser.set_window_size(1280, min(height, 6000))
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 50_000
    pixels = mpimg.imread(shot)
    assert pixels.shape[1] >= 1200 and pixels.shape[0] >= 1000
    colours = np.unique((pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 100  # plots, text and badges, not a blank page
