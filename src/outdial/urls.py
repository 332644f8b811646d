"""What an http(s) address given to Outdial must be: one rule for the CLI's server address and a
webhook's URL."""

from urllib.parse import urlsplit

import httpx


def parse_http_url(url: str) -> httpx.URL:
    """`url` as httpx, the HTTP client, will send to it; ValueError saying why it cannot be. The
    standard library reads it first, for its clearer words on a bad host or port ("Invalid IPv6
    URL", "Port out of range 0-65535"); httpx alone would take a port past 65535."""
    try:
        urlsplit(url).port  # noqa: B018 - reading the port checks it
        parsed = httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as error:
        raise ValueError(str(error)) from None
    if parsed.port == 0:
        raise ValueError("port 0 is not a TCP port (1-65535)")
    return parsed
