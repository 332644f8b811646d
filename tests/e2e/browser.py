"""Debian's headless Chromium driven through its chromedriver, cut off from every host but this
machine, and what the page asked of the network (its DevTools performance log)."""

import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from tests import databases

WAIT_SECONDS = 30  # every wait on the page is bounded


def chromium() -> Iterator[WebDriver]:
    binary, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or chromedriver is None:
        message = "chromium and chromedriver are needed: apt-get install chromium chromium-driver"
        if databases.in_ci():
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        # No name resolves but the loopback address, and anything not on loopback goes to a
        # proxy that does not exist: the network is off for the page.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--proxy-server=http://127.0.0.1:9", "--disable-background-networking",
        "--no-first-run", "--window-size=1280,2000",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def requests_made(driver: WebDriver) -> tuple[dict[str, Any], set[str]]:
    """The requests the page made since the last call, by id, and the ids of those its
    Content-Security-Policy refused (they never reached the network)."""
    requests, refused = {}, set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requests[message["params"]["requestId"]] = message["params"]
        elif (message["method"] == "Network.loadingFailed"
              and message["params"].get("blockedReason") == "csp"):
            refused.add(message["params"]["requestId"])
    return requests, refused


def console_errors(driver: WebDriver) -> list[Any]:
    """Errors on the page's console, less the policy's own reports of what it refused."""
    return [entry for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and entry["source"] != "security"]


def wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    """A bounded wait; an element the page re-rendered meanwhile is looked for again."""
    return WebDriverWait(driver, WAIT_SECONDS, ignored_exceptions=(StaleElementReferenceException,))
