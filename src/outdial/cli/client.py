"""The HTTP client the `outdial` commands use: connection settings, the stored login, and the
API's error envelope turned into one exception a command can print.

    CliError                  anything a command reports on one line and exits 1 for
     ├── ApiError             the server answered with its error envelope (or a non-JSON error)
     ├── ServerUnreachable    no answer at all: refused, timed out, bad address
     └── BadServerUrl         the address is not an http(s) URL (a usage error: exit 2)
"""

import json
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
import httpx

from outdial.urls import parse_http_url

DEFAULT_URL = "http://127.0.0.1:8080"
# Pages are asked for at the API's largest size: fewer round trips for long lists.
MAX_PAGE_SIZE = 100


class CliError(Exception):
    """A failure to report to the user as one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(CliError):
    """The server refused the request; carries its envelope's status, reason and request id."""

    def __init__(self, http_status: int, status: str, reason: str, message: str, request_id: str = "") -> None:
        super().__init__(message)
        self.http_status = http_status
        self.status = status
        self.reason = reason
        self.request_id = request_id

    @classmethod
    def from_response(cls, response: httpx.Response) -> "ApiError":
        try:
            error = response.json()["error"]
            return cls(response.status_code, error["status"], error["reason"], error["message"],
                       error.get("request_id", ""))
        except (ValueError, KeyError, TypeError):
            # Not our envelope: a proxy or another program answered. Show what it said.
            text = " ".join(response.text.split())[:200] or response.reason_phrase
            return cls(response.status_code, "UNKNOWN", f"HTTP_{response.status_code}",
                       f"HTTP {response.status_code} from {response.request.url}: {text}")

    @property
    def route_missing(self) -> bool:
        return self.http_status == 404 and self.reason == "ROUTE_NOT_FOUND"


class ServerUnreachable(CliError):
    pass


class BadServerUrl(CliError):
    pass


# --- the stored login -------------------------------------------------------------------------

def config_path() -> Path:
    """`$OUTDIAL_CONFIG`, else `$XDG_CONFIG_HOME/outdial/config.json` (~/.config by default)."""
    if explicit := os.environ.get("OUTDIAL_CONFIG"):
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "outdial" / "config.json"


def load_config() -> dict[str, Any]:
    path = config_path()
    try:
        loaded = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise CliError(f"cannot read the configuration file {path}: {error}") from None
    return loaded if isinstance(loaded, dict) else {}


def save_config(config: dict[str, Any]) -> Path:
    """Write the file readable by its owner only: it holds a credential."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    # O_CREAT's mode applies only to a new file; an older, looser file is tightened too.
    os.fchmod(descriptor, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(descriptor, "w") as file:
        json.dump(config, file, indent=2)
        file.write("\n")
    return path


@dataclass(frozen=True)
class Connection:
    url: str
    token: str
    # The address of the stored login whose token was not sent because `url` is another one.
    token_held_back_for: str = ""


def check_server_url(url: str) -> str:
    """The address without trailing slashes; it must say http:// or https:// and name a host.
    A bare `127.0.0.1:8080` is refused rather than guessed: the scheme decides whether the token
    travels encrypted, so it is the user's to write."""
    url = url.rstrip("/")
    try:
        parts = parse_http_url(url)
    except ValueError as error:
        raise BadServerUrl(f"{url!r} is not a server address: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.host:
        guess = f"http://{url}" if "://" not in url else DEFAULT_URL
        raise BadServerUrl(f"{url!r} is not a server address: write it with http:// or https://, "
                           f"as in {guess}")
    return url


def resolve_connection(url: str | None, token: str | None) -> Connection:
    """--url/--token (or OUTDIAL_URL/OUTDIAL_TOKEN, which fill the same options), else the stored
    login. A stored token is only sent to the server it was issued by, never to another URL."""
    stored = load_config()
    stored_url = str(stored.get("url") or "").rstrip("/")
    resolved_url = check_server_url(url or stored_url or DEFAULT_URL)
    held_back_for = ""
    if token is None and stored.get("token"):
        if stored_url == resolved_url:
            token = str(stored["token"])
        else:
            held_back_for = stored_url
    return Connection(resolved_url, token or "", held_back_for)


# --- the client --------------------------------------------------------------------------------

class ApiClient:
    """A thin synchronous client: JSON in and out, errors raised as ApiError/ServerUnreachable."""

    def __init__(self, connection: Connection, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.connection = connection
        headers = {"Authorization": f"Bearer {connection.token}"} if connection.token else {}
        self.http = httpx.Client(base_url=connection.url, headers=headers, timeout=timeout,
                                 transport=transport)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _unreachable(self, error: httpx.TransportError) -> ServerUnreachable:
        if isinstance(error, httpx.ConnectError):
            why = "the connection was refused or the host was not found"
        elif isinstance(error, httpx.TimeoutException):
            why = "it did not answer in time"
        else:
            why = str(error) or type(error).__name__
        return ServerUnreachable(
            f"cannot reach the Outdial server at {self.connection.url}: {why}. "
            "Is `outdial serve` running there? Set the address with --url, OUTDIAL_URL or "
            "`outdial login`."
        )

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                json_body: Any = None, timeout: float | None = None) -> Any:
        """`timeout`: for a route that takes longer than the client's usual wait to answer."""
        try:
            response = self.http.request(
                method, path, params=_clean(params), json=json_body,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout)
        except httpx.TransportError as error:
            raise self._unreachable(error) from None
        if response.is_error:
            raise ApiError.from_response(response)
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any, **params: Any) -> Any:
        return self.request("POST", path, params=params, json_body=body)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, json_body=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def login(self, username: str, password: str) -> str:
        answer = self.request("POST", "/auth/login",
                              json_body={"username": username, "password": password})
        return str(answer["token"])

    def pages(self, path: str, limit: int, **params: Any) -> tuple[list[dict[str, Any]], str]:
        """Up to `limit` items (0: all) of a list endpoint, following next_page_token; also the
        token of the last page read, so that a script can carry on where this stopped."""
        items: list[dict[str, Any]] = []
        token = ""
        while limit <= 0 or len(items) < limit:
            size = MAX_PAGE_SIZE if limit <= 0 else min(MAX_PAGE_SIZE, limit - len(items))
            page = self.get(path, page_size=size, page_token=token or None, **params)
            result = page.get("result") or []
            items.extend(result)
            token = page.get("next_page_token") or ""
            if not result or not token or len(result) < size:
                break
        return items, token

    def upload(self, path: str, chunks: Iterable[bytes], content_type: str, **params: Any) -> Any:
        """POST a body streamed from `chunks`, never held whole in memory."""
        try:
            response = self.http.post(path, params=_clean(params), content=chunks,
                                      headers={"Content-Type": content_type}, timeout=None)
        except httpx.TransportError as error:
            raise self._unreachable(error) from None
        if response.is_error:
            raise ApiError.from_response(response)
        return response.json()

    def download(self, path: str, **params: Any) -> Iterator[bytes]:
        """The body of a GET, chunk by chunk as it arrives."""
        try:
            with self.http.stream("GET", path, params=_clean(params), timeout=None) as response:
                if response.is_error:
                    response.read()
                    raise ApiError.from_response(response)
                yield from response.iter_bytes()
        except httpx.TransportError as error:
            raise self._unreachable(error) from None


    def server_sent_events(self, path: str, last_event_id: int, read_timeout: float,
                           **params: Any) -> Iterator[dict[str, str]]:
        """The events of a Server-Sent Events stream, each {"id", "event", "data"}, from after
        `last_event_id`; ends when the server closes the stream. A stream silent for longer
        than `read_timeout` (heartbeats included) counts as broken: ServerUnreachable."""
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id else {}
        timeout = httpx.Timeout(self.http.timeout.connect, read=read_timeout)
        try:
            with self.http.stream("GET", path, params=_clean(params), headers=headers,
                                  timeout=timeout) as response:
                if response.is_error:
                    response.read()
                    raise ApiError.from_response(response)
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    if not line:  # a blank line ends an event
                        if "data" in fields:
                            yield fields
                        fields = {}
                    elif not line.startswith(":"):  # ":" starts a comment (a heartbeat)
                        name, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        fields[name] = f"{fields[name]}\n{value}" if name in fields else value
        except httpx.TransportError as error:
            raise self._unreachable(error) from None


def _clean(params: dict[str, Any] | None) -> dict[str, Any]:
    """Drop unset query parameters; spell booleans as the API reads them."""
    cleaned: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        cleaned[key] = ("true" if value else "false") if isinstance(value, bool) else value
    return cleaned
