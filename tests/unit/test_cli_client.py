"""The CLI's API client on its own: errors, paging, and where the login is kept and sent."""

import json
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from outdial.cli.client import (
    ApiClient,
    ApiError,
    BadServerUrl,
    Connection,
    ServerUnreachable,
    config_path,
    resolve_connection,
    save_config,
)

URL = "http://outdial.test"


def client_of(handler: Any, token: str = "secret") -> ApiClient:
    return ApiClient(Connection(URL, token), transport=httpx.MockTransport(handler))


def test_the_error_envelope_becomes_an_api_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": {
            "status": "NOT_FOUND", "reason": "OUTDIAL_NOT_FOUND", "message": "no such outdial",
            "request_id": "r-1"}})

    with pytest.raises(ApiError) as caught, client_of(handler) as client:
        client.get("/v1.0/outdials/x")

    error = caught.value
    assert (error.http_status, error.status, error.reason, error.message, error.request_id) == (
        404, "NOT_FOUND", "OUTDIAL_NOT_FOUND", "no such outdial", "r-1")
    assert not error.route_missing


def test_an_answer_that_is_not_the_envelope_is_still_a_readable_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html><body>Bad   gateway</body></html>")

    with pytest.raises(ApiError) as caught, client_of(handler) as client:
        client.get("/v1.0/outdials")

    assert caught.value.reason == "HTTP_502"
    assert "HTTP 502" in caught.value.message and "Bad gateway" in caught.value.message


def test_the_token_is_sent_as_a_bearer_credential() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={})

    with client_of(handler, token="t-1") as client:
        client.get("/v1.0/outdials")
    with client_of(handler, token="") as client:
        client.get("/v1.0/outdials")

    assert seen == ["Bearer t-1", None]


def test_pages_follow_next_page_token_and_stop_at_the_limit() -> None:
    rows = [{"id": str(n)} for n in range(250)]
    asked: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        asked.append(params)
        start = int(params.get("page_token", "0"))
        size = int(params["page_size"])
        page = rows[start : start + size]
        return httpx.Response(200, json={"result": page,
                                         "next_page_token": str(start + len(page)) if page else ""})

    with client_of(handler) as client:
        everything, _ = client.pages("/v1.0/outdials", 0)
        some, token = client.pages("/v1.0/outdials", 150)

    assert everything == rows
    assert some == rows[:150] and token == "150"
    assert [a.get("page_size") for a in asked[-2:]] == ["100", "50"]


def test_an_unreachable_server_is_named() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ServerUnreachable, match=f"at {URL}"), client_of(handler) as client:
        client.get("/v1.0/outdials")


def test_unset_query_parameters_are_left_out_and_booleans_spelled_out() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url.query, "ascii"))
        return httpx.Response(200, json={})

    with client_of(handler) as client:
        client.upload("/v1.0/outdials/x/imports", iter([b"a,b\n"]), "text/csv",
                      default_region=None, dedupe=True)

    assert seen == ["dedupe=true"]


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "conf" / "config.json"
    monkeypatch.setenv("OUTDIAL_CONFIG", str(path))
    return path


def test_the_config_file_is_private(config_file: Path) -> None:
    config_file.parent.mkdir()
    config_file.write_text("{}")
    config_file.chmod(0o644)

    save_config({"url": URL, "token": "t"})

    assert config_path() == config_file
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert json.loads(config_file.read_text()) == {"url": URL, "token": "t"}


def test_xdg_config_home_places_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OUTDIAL_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))

    assert config_path() == tmp_path / "outdial" / "config.json"


def test_options_win_over_the_stored_login(config_file: Path) -> None:
    save_config({"url": URL + "/", "token": "stored"})

    assert resolve_connection(None, None) == Connection(URL, "stored")
    assert resolve_connection(None, "given") == Connection(URL, "given")
    assert resolve_connection(URL, None) == Connection(URL, "stored")
    # Another server never receives the stored token.
    assert resolve_connection("http://elsewhere:8080", None) == Connection(
        "http://elsewhere:8080", "", token_held_back_for=URL)


@pytest.mark.parametrize("url", ["127.0.0.1:8080", "localhost:8080", "outdial.example.com",
                                 "ftp://outdial.example.com", "http://", "http:///v1.0"])
def test_an_address_without_http_or_https_is_refused(config_file: Path, url: str) -> None:
    with pytest.raises(BadServerUrl, match="http:// or https://"):
        resolve_connection(url, "t")


@pytest.mark.parametrize("url, problem", [("http://[::1", "Invalid IPv6 URL"),
                                          ("http://host:99999", "Port out of range"),
                                          ("https://host:port", "Port could not be cast")])
def test_an_address_that_is_no_url_says_why(config_file: Path, url: str, problem: str) -> None:
    with pytest.raises(BadServerUrl, match=f"is not a server address: {problem}"):
        resolve_connection(url, "t")


def test_a_bare_host_and_port_is_answered_with_the_address_to_write(config_file: Path) -> None:
    with pytest.raises(BadServerUrl, match="as in http://127.0.0.1:8080"):
        resolve_connection("127.0.0.1:8080", None)


def test_without_any_login_the_local_default_is_used(config_file: Path) -> None:
    assert resolve_connection(None, None) == Connection("http://127.0.0.1:8080", "")
