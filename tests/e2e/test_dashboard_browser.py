"""The dashboard at / in a real headless Chromium with the network off, against `outdial serve`
running its engine: log in, import a list, run a simulated campaign and watch it move, stop it.

Set OUTDIAL_DASHBOARD_SCREENSHOTS to a folder to keep the screenshots the README shows."""

import csv
import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select

from tests.e2e.browser import console_errors, requests_made, wait
from tests.e2e.test_serve import Server
from tests.webhook_support import Receiver

pytestmark = pytest.mark.slow

ADMIN_PASSWORD = "admin-pw-dashboard"
LAPTOP = (1280, 800)
PHONE = (390, 844)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("dashboard")
    env = {**os.environ, "OUTDIAL_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'outdial.db'}",
           "OUTDIAL_ADMIN_PASSWORD": ADMIN_PASSWORD, "OUTDIAL_ENGINE_POLL_SECONDS": "0.1",
           "OUTDIAL_IMPORT_WORKERS": "0",
           "OUTDIAL_WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "true"}  # the receiver is on this machine
    running = Server(env, folder / "serve.log")
    yield running
    running.stop()


def screenshot(driver: WebDriver, name: str) -> None:
    folder = os.environ.get("OUTDIAL_DASHBOARD_SCREENSHOTS")
    if folder:
        driver.save_screenshot(str(Path(folder) / f"dashboard-{name}.png"))


def log_in(driver: WebDriver, server: Server, password: str = ADMIN_PASSWORD) -> None:
    driver.get(f"{server.url}/")
    username = wait(driver).until(lambda d: d.find_elements(By.NAME, "username"))[0]
    username.clear()
    username.send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form[aria-label='Log in'] button[type=submit]").click()


def form(driver: WebDriver, label: str) -> WebElement:
    return wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, f"form[aria-label='{label}']"))[0]


def fill(within: WebElement, name: str, value: str) -> None:
    field = within.find_element(By.NAME, name)
    field.clear()
    field.send_keys(value)


def text_of(driver: WebDriver, element_id: str) -> str:
    found = driver.find_elements(By.ID, element_id)
    return found[0].text if found else ""


def number(driver: WebDriver, element_id: str) -> int:
    text = text_of(driver, element_id)
    return int(text) if text.isdigit() else -1


def table_rows(driver: WebDriver, table_id: str) -> list[list[str]]:
    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            for row in driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")]


def chart(driver: WebDriver) -> tuple[int, list[Any]]:
    """How many samples the live chart holds, and its latest (time, in flight, attempts/min,
    answered, exhausted)."""
    box = driver.find_element(By.ID, "live-chart")
    return int(box.get_attribute("data-points") or 0), json.loads(box.get_attribute("data-last") or "[]")


def assert_only_local(driver: WebDriver, server: Server) -> list[dict[str, Any]]:
    """Every request the page made since the last check went to this server, and the
    Content-Security-Policy had nothing to refuse. Returns those requests."""
    requests, refused = requests_made(driver)
    sent = [r["request"]["url"] for r in requests.values()]
    assert [url for url in sent if not url.startswith((f"{server.url}/", "data:", "blob:"))] == []
    assert refused == set(), [requests[id] for id in refused]
    assert any("/dashboard-assets/" in url for url in sent), sent  # the assets came from here
    return [r["request"] for r in requests.values()]


def script_errors(driver: WebDriver) -> list[Any]:
    """Console errors other than the network's own lines for answers the page reads (a 401 on a
    wrong password, a 404 from a server without webhooks or the event stream)."""
    return [entry for entry in console_errors(driver) if entry["source"] != "network"]


def test_a_wrong_password_shows_the_api_message(server: Server, browser: WebDriver) -> None:
    browser.set_window_size(*LAPTOP)
    log_in(browser, server, password="not-the-password")
    error = wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[role=alert]"))[0]
    expected = httpx.post(f"{server.url}/auth/login", timeout=10,
                          json={"username": "admin", "password": "not-the-password"}).json()
    assert error.text == expected["error"]["message"]
    assert browser.execute_script("return sessionStorage.getItem('outdial.token')") is None
    screenshot(browser, "login")
    assert_only_local(browser, server)
    assert script_errors(browser) == []


def test_an_operator_imports_a_list_and_runs_a_campaign(
    server: Server, browser: WebDriver, tmp_path: Path
) -> None:
    browser.set_window_size(*LAPTOP)
    log_in(browser, server)

    # An outdial, from its form to its own screen.
    new_outdial = form(browser, "New outdial")
    fill(new_outdial, "name", "spring list")
    new_outdial.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(browser).until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "spring list")
    assert "/#/outdials/" in browser.current_url

    # A CSV with 40 good rows and 2 bad ones: the counts and the bad rows are shown.
    upload = tmp_path / "spring.csv"
    with upload.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["name", "destination_0"])
        writer.writerows([f"person {n}", f"+1555987{n:04d}"] for n in range(40))
        writer.writerows([["short", "+1555"], ["words", "call me"]])
    importing = form(browser, "Import a file")
    importing.find_element(By.ID, "import-file").send_keys(str(upload))
    importing.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(browser).until(lambda d: "42 rows, 40 imported, 2 rejected" in text_of(d, "import-counts"))
    assert browser.find_element(By.CSS_SELECTOR, "#import-progress progress").get_attribute("value") == "100"
    bad_rows = table_rows(browser, "import-errors")
    assert [row[:2] for row in bad_rows] == [["41", "destination_0.target"], ["42", "destination_0"]]
    assert "+1555" in bad_rows[0][2]
    # A target refused by the API: its message, naming the field, is shown by the form.
    add = form(browser, "Add a target")
    fill(add, "destination_0", "+1555")
    add.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    refused = wait(browser).until(lambda d: add.find_elements(By.CSS_SELECTOR, "[role=alert]"))[0]
    assert refused.text.startswith("destination_0.target: '+1555' is not a valid E.164 phone number")
    wait(browser).until(lambda d: number(d, "stat-targets") == 40 and number(d, "stat-idle") == 40)
    browser.execute_script("document.getElementById('stats').scrollIntoView()")
    screenshot(browser, "outdial")
    wait(browser).until(lambda d: len(table_rows(d, "targets")) == 25)  # one page of 25
    browser.find_element(By.CSS_SELECTOR, "nav[aria-label='Targets pages'] button:last-child").click()
    wait(browser).until(lambda d: len(table_rows(d, "targets")) == 15)
    Select(browser.find_element(By.ID, "target-status")).select_by_value("done")
    wait(browser).until(lambda d: d.find_elements(By.XPATH, "//p[normalize-space(.)='No target done.']"))

    # A simulated channel, checked; an outplan that dials through it.
    browser.get(f"{server.url}/#/channels")
    new_channel = form(browser, "New channel")
    fill(new_channel, "name", "lab")
    fill(new_channel, "settings", json.dumps({"ring_min_ms": 300, "ring_max_ms": 1200, "talk_min_ms": 300,
                                              "talk_max_ms": 1200, "p_answered": 0.5, "seed": 7}))
    new_channel.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "button[aria-label='Check lab']"))[0].click()
    wait(browser).until(lambda d: table_rows(d, "channels") and table_rows(d, "channels")[0][3].startswith("ok"))
    screenshot(browser, "channels")

    browser.get(f"{server.url}/#/outplans")
    new_outplan = form(browser, "New outplan")
    fill(new_outplan, "name", "twice")
    fill(new_outplan, "dial_timeout", "5000")
    fill(new_outplan, "try_interval", "0")
    fill(new_outplan, "max_try_count_0", "2")
    Select(wait(browser).until(lambda d: new_outplan.find_elements(By.XPATH, ".//select[@name='sip_channel_id' and option[2]]"))[0]
           ).select_by_visible_text("lab (simulated)")
    new_outplan.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(browser).until(lambda d: [row[0] for row in table_rows(d, "outplans")] == ["twice"])

    # A campaign on both, run and watched live, then stopped: all without reloading the page.
    browser.get(f"{server.url}/#/campaigns")
    new_campaign = form(browser, "New campaign")
    fill(new_campaign, "name", "spring calls")
    fill(new_campaign, "concurrency", "2")
    wait(browser).until(lambda d: d.find_elements(By.XPATH, "//select[@id='campaign-outplan']/option"))
    Select(browser.find_element(By.ID, "campaign-outdial")).select_by_visible_text("spring list")
    Select(browser.find_element(By.ID, "campaign-outplan")).select_by_visible_text("twice")
    new_campaign.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(browser).until(lambda d: d.find_element(By.TAG_NAME, "h1").text.startswith("spring calls"))
    browser.execute_script("window.sameDocument = true")
    assert text_of(browser, "campaign-status") == "stop"

    # The screen follows the event stream (polled figures only as a fallback).
    wait(browser).until(lambda d: text_of(d, "live-source") == "live from the event stream")
    browser.find_element(By.ID, "campaign-run").click()
    wait(browser).until(lambda d: text_of(d, "campaign-status") == "run")
    wait(browser).until(lambda d: number(d, "live-attempts") > 0)
    first_attempts, (first_points, _) = number(browser, "live-attempts"), chart(browser)
    # The counts and the chart move on their own; the attempts per minute reach the chart.
    wait(browser).until(lambda d: number(d, "live-attempts") > first_attempts
                        and number(d, "live-answered") + number(d, "live-exhausted") > 0)
    wait(browser).until(lambda d: chart(d)[0] >= first_points + 2 and chart(d)[1][2] > 0)
    wait(browser).until(lambda d: any(row[3] for row in table_rows(d, "campaigncalls")))  # an outcome
    if os.environ.get("OUTDIAL_DASHBOARD_SCREENSHOTS"):  # a chart with a few more points to show
        wait(browser).until(lambda d: chart(d)[0] >= 8)
    screenshot(browser, "campaign")

    browser.find_element(By.ID, "campaign-stop").click()
    wait(browser).until(lambda d: text_of(d, "campaign-status") == "stop")
    assert browser.execute_script("return window.sameDocument") is True  # never reloaded
    stopped_at = number(browser, "live-attempts")
    token = httpx.post(f"{server.url}/auth/login", timeout=10,
                       json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
    campaigns = httpx.get(f"{server.url}/v1.0/campaigns", params={"token": token}, timeout=10).json()
    assert [c["status"] for c in campaigns["result"]] == ["stop"]
    assert 0 < stopped_at < 80  # stopped before the list was through

    browser.get(f"{server.url}/#/outdials")
    wait(browser).until(lambda d: (rows := table_rows(d, "outdials")) and rows[0][1] == "40")
    screenshot(browser, "outdials")
    requests = assert_only_local(browser, server)
    assert script_errors(browser) == []
    # The stream was read with the token in a header, from the newest event on.
    streams = [r for r in requests if r["url"].startswith(f"{server.url}/v1.0/events/stream")]
    assert streams and all(r["headers"].get("Authorization", "").startswith("Bearer ") for r in streams)
    assert all(r["headers"].get("Last-Event-ID", "").isdigit() for r in streams), streams


def test_the_main_screens_fit_a_phone(server: Server, browser: WebDriver) -> None:
    token = httpx.post(f"{server.url}/auth/login", timeout=10,
                       json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]

    def call(method: str, path: str, body: Any) -> Any:
        answer = httpx.request(method, f"{server.url}{path}", params={"token": token}, json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    outdial = call("POST", "/v1.0/outdials", {"name": "phone list"})
    call("POST", f"/v1.0/outdials/{outdial['id']}/targets",
         {"name": "someone", "destination_0": {"type": "tel", "target": "+15559870000"}})
    outplan = call("POST", "/v1.0/outplans", {"name": "once"})
    campaign = call("POST", "/v1.0/campaigns", {"name": "phone campaign", "outdial_id": outdial["id"],
                                                 "outplan_id": outplan["id"]})
    browser.set_window_size(*PHONE)
    log_in(browser, server)
    for screen, heading in [("outdials", "Outdials"), (f"outdials/{outdial['id']}", "phone list"),
                            ("campaigns", "Campaigns"), (f"campaigns/{campaign['id']}", "phone campaign"),
                            ("outplans", "Outplans"), ("channels", "Channels"), ("webhooks", "Webhooks"),
                            ("accesskeys", "Access keys")]:
        browser.get(f"{server.url}/#/{screen}")
        wait(browser).until(lambda d: d.find_element(By.TAG_NAME, "h1").text.startswith(heading))
        # Nothing wider than the screen: wide tables scroll inside their own box.
        width = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], (screen, width)
        assert browser.find_element(By.CSS_SELECTOR, "nav[aria-label=Screens]").is_displayed()
        if screen.startswith("campaigns/"):
            wait(browser).until(lambda d: d.find_element(By.ID, "live-targets").text == "1")
            screenshot(browser, "phone-campaign")
        elif screen.startswith("outdials/"):
            screenshot(browser, "phone-outdial")
    assert_only_local(browser, server)
    assert script_errors(browser) == []


def test_every_control_is_reached_with_the_keyboard(server: Server, browser: WebDriver) -> None:
    """Tab goes through the login form and then the screens' links, buttons and fields, each with
    a name a screen reader can say."""
    browser.set_window_size(*LAPTOP)
    browser.get(f"{server.url}/")
    wait(browser).until(lambda d: d.find_elements(By.NAME, "username"))
    reached = []
    for _ in range(3):
        browser.switch_to.active_element.send_keys("\t")
        reached.append(browser.switch_to.active_element)
    assert [e.get_attribute("name") or e.text for e in reached] == ["username", "password", "Log in"]
    log_in(browser, server)
    for screen in ("outdials", "campaigns", "outplans", "channels", "webhooks", "accesskeys"):
        browser.get(f"{server.url}/#/{screen}")
        wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "main form[aria-label^='New ']"))
        unnamed = browser.execute_script("""
            return [...document.querySelectorAll('input, select, textarea, button, a[href]')]
              .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                           && !e.textContent.trim())
              .map(e => e.outerHTML)""")
        assert unnamed == [], screen
        assert browser.execute_script("return document.querySelectorAll('[onclick]').length") == 0, screen


def test_webhooks_and_access_keys_are_managed_from_the_dashboard(server: Server, browser: WebDriver) -> None:
    """A webhook made with a generated secret, a signed test ping it receives, shown among its
    deliveries; an access key whose secret, shown once, works."""
    receiver = Receiver(now=lambda: dt.datetime.now(dt.UTC)).start()
    try:
        browser.set_window_size(*LAPTOP)
        log_in(browser, server)
        wait(browser).until(lambda d: d.find_elements(By.LINK_TEXT, "Webhooks"))[0].click()
        new_webhook = form(browser, "New webhook")
        fill(new_webhook, "url", receiver.url)
        new_webhook.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        secret = wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "form[aria-label='New webhook'] code"))[0].text
        assert secret.startswith("whsec_")
        receiver.secret = secret  # the receiver now verifies every signature with it
        wait(browser).until(lambda d: d.find_elements(By.XPATH, "//button[text()='Send a test']"))[0].click()
        sent = wait(browser).until(lambda d: d.find_elements(By.XPATH, "//p[starts-with(., 'Test ping')]"))[0]
        assert sent.text == f"Test ping to {receiver.url}: delivered (HTTP 200)"
        browser.find_element(By.XPATH, "//button[text()='Deliveries']").click()
        wait(browser).until(lambda d: (rows := table_rows(d, "deliveries")) and rows[0][2].startswith("delivered"))
        delivery = table_rows(browser, "deliveries")[0]
        assert delivery[1] == "webhook_test" and delivery[4] == "200"
        assert [r.verified for r in receiver.received] == [True]
        screenshot(browser, "webhooks")

        browser.find_element(By.LINK_TEXT, "Access keys").click()
        new_key = form(browser, "New access key")
        fill(new_key, "name", "nightly import")
        new_key.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        key = wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "form[aria-label='New access key'] code"))[0].text
        assert httpx.get(f"{server.url}/v1.0/outdials", params={"accesskey": key}, timeout=10).status_code == 200
        wait(browser).until(lambda d: [row[0] for row in table_rows(d, "accesskeys")] == ["nightly import"])
        assert_only_local(browser, server)
        assert script_errors(browser) == []
    finally:
        receiver.stop()
