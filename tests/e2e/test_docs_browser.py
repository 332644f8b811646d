"""/docs and /redoc in a real headless Chromium with the network off: every operation is shown,
a file can be imported from /docs, and the page asks nothing of any host but the server."""

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as when
from selenium.webdriver.support.select import Select

from tests.e2e.browser import console_errors, requests_made, wait
from tests.e2e.test_serve import Server

ADMIN_PASSWORD = "admin-pw-docs"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("docs")
    env = {**os.environ, "OUTDIAL_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'outdial.db'}",
           "OUTDIAL_ADMIN_PASSWORD": ADMIN_PASSWORD, "OUTDIAL_ENGINE_IN_PROCESS": "false"}
    running = Server(env, folder / "serve.log")
    yield running
    running.stop()


def assert_only_local(driver: WebDriver, server: Server) -> None:
    """Every request the page made since the last check went to this server. One the page's
    Content-Security-Policy refused never reached the network; only images may be refused
    (ReDoc links its logo from a CDN), as the page works without them."""
    requests, refused = requests_made(driver)
    sent = [r["request"]["url"] for id, r in requests.items() if id not in refused]
    foreign = [url for url in sent if not url.startswith((f"{server.url}/", "data:", "blob:"))]
    assert foreign == [], foreign
    assert any(url.endswith(".js") for url in sent), sent  # the assets were loaded, from here
    assert {requests[id].get("type") for id in refused} <= {"Image"}, [requests[id] for id in refused]


def documented_operations(server: Server) -> set[tuple[str, str]]:
    document = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}


def test_swagger_ui_lists_every_operation_offline(server: Server, browser: WebDriver) -> None:
    browser.get(f"{server.url}/docs")
    expected = documented_operations(server)
    wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= len(expected))
    shown = {
        (block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text,
         block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path"))
        for block in browser.find_elements(By.CSS_SELECTOR, ".opblock")
    }
    assert shown == expected
    assert ("POST", "/v1.0/outdials") in shown
    assert browser.find_element(By.CSS_SELECTOR, ".btn.authorize").is_displayed()  # security schemes
    # A body's example is what "Try it out" starts from.
    create = browser.find_element(By.ID, "operations-outdials-create_outdial")
    create.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    example = wait(browser).until(lambda d: create.find_elements(By.CSS_SELECTOR, ".body-param__example"))[0]
    assert json.loads(example.text)["name"] == "spring list"
    assert_only_local(browser, server)
    assert console_errors(browser) == []


def test_a_file_is_imported_from_swagger_ui(server: Server, browser: WebDriver, tmp_path: Path) -> None:
    """As a person would: authorize with a token, pick a CSV file, execute, read the answer."""
    token = httpx.post(f"{server.url}/auth/login", timeout=10,
                       json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
    outdial = httpx.post(f"{server.url}/v1.0/outdials", params={"token": token}, json={"name": "docs"},
                         timeout=10).json()
    upload = tmp_path / "list.csv"
    upload.write_text("name,destination_0\nAlice,+15559876543\nBob,+1555\n")

    browser.get(f"{server.url}/docs")
    wait(browser).until(when.element_to_be_clickable((By.CSS_SELECTOR, ".btn.authorize"))).click()
    browser.find_element(By.CSS_SELECTOR, ".auth-container input[type=text]").send_keys(token)
    browser.find_element(By.CSS_SELECTOR, ".auth-container .btn.modal-btn.auth").click()
    browser.find_element(By.CSS_SELECTOR, ".btn-done").click()

    block = browser.find_element(By.ID, "operations-imports-create_import")
    block.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    wait(browser).until(lambda d: block.find_elements(By.CSS_SELECTOR, ".try-out__btn"))[0].click()
    block.find_element(By.CSS_SELECTOR, "input[placeholder='outdial_id']").send_keys(outdial["id"])
    Select(block.find_element(By.CSS_SELECTOR, ".body-param-content-type select")).select_by_value("text/csv")
    wait(browser).until(lambda d: block.find_elements(By.CSS_SELECTOR, "input[type=file]"))[0].send_keys(str(upload))
    block.find_element(By.CSS_SELECTOR, ".btn.execute").click()

    status = wait(browser).until(
        lambda d: block.find_elements(By.CSS_SELECTOR, ".live-responses-table .response .response-col_status")
    )[0]
    answer = block.find_element(By.CSS_SELECTOR, ".live-responses-table .response .microlight").text
    assert status.text.startswith("200"), answer
    job = json.loads(answer)
    assert (job["status"], job["rows_imported"], job["rows_rejected"]) == ("done", 1, 1)
    assert_only_local(browser, server)


def test_redoc_renders_every_operation_offline(server: Server, browser: WebDriver) -> None:
    browser.get(f"{server.url}/redoc")
    expected = documented_operations(server)
    selector = "[data-section-id*='/operation/']"
    wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, selector)) >= len(expected))
    assert len(browser.find_elements(By.CSS_SELECTOR, selector)) == len(expected)
    text = browser.execute_script("return document.body.textContent")
    assert "/v1.0/outdials/{outdial_id}/imports" in text and "Create Outdial" in text
    assert_only_local(browser, server)
    assert console_errors(browser) == []
