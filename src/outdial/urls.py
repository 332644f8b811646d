"""What an http(s) address given to Outdial must be: one rule for the CLI's server address and a
webhook's URL."""

import ipaddress
import re
from urllib.parse import urlsplit

import httpx


# A host name's label as resolvers take it (underscores too: some hosts have them).
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?", re.IGNORECASE)


def parse_http_url(url: str) -> httpx.URL:
    """`url` as httpx, the HTTP client, will send to it; ValueError saying why it cannot be. The
    standard library reads it first, for its clearer words on a bad host or port ("Invalid IPv6
    URL", "Port out of range 0-65535"); httpx alone would take a port past 65535."""
    try:
        urlsplit(url).port  # noqa: B018 - reading the port checks it
        parsed = httpx.URL(url)
        parsed.host  # noqa: B018 - reading the host decodes its IDNA labels, and checks them
    except (ValueError, httpx.InvalidURL) as error:  # idna's errors are ValueErrors too
        raise ValueError(str(error)) from None
    if parsed.port == 0:
        raise ValueError("port 0 is not a TCP port (1-65535)")
    if problem := host_problem(ascii_host(parsed)):
        raise ValueError(problem)
    return parsed


def ascii_host(url: httpx.URL) -> str:
    """The host as it is looked up, connected to and named to TLS: its ASCII form (an
    internationalised name in IDNA 2008, as the Host header carries it; Python's own codec
    would encode it by IDNA 2003: faß.de as fass.de, another domain)."""
    return url.raw_host.decode("ascii")


def host_problem(host: str) -> str | None:
    """Why `host` (ASCII) names no host a resolver can look up, or None: an IP address, or
    labels of letters, digits, underscores and inner hyphens, 1 to 63 each, 253 in all."""
    if not host:
        return None  # no host at all: the caller says so in its own words
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host  # a fully qualified name's final dot
    if len(name) > 253:
        return f"the host name is {len(name)} characters long; at most 253"
    for label in name.split("."):
        if not _LABEL.fullmatch(label):
            shown = label if len(label) <= 40 else label[:40] + "…"
            return (f"the host name {host[:80]!r} has a label {shown!r} that is not 1 to 63 "
                    "letters, digits, underscores or inner hyphens")
    return None
