"""One HTTP request to a receiver, guarded against reaching the server's own networks.

The guard (SSRF care): the receiver's host is resolved when the request is made, every address
it resolves to is checked, and the connection goes to the address that was checked (the URL's
host stays in the Host header and in TLS's SNI and certificate check), so a name that resolves
to a public address when checked cannot resolve to a private one when connected to.
"""

import asyncio
import functools
import ipaddress
import socket
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import httpx

from outdial.clock import Clock

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_RESPONSE_BYTES = 64 * 1024  # read of an answer, then the connection is dropped
MAX_CLIENTS = 64  # connection pools kept, one per receiver host
USER_AGENT = "outdial-webhooks"


class AddressRefused(Exception):
    """The receiver's host is, or resolves to, an address the guard refuses."""


class Unresolved(AddressRefused):
    """The receiver's host does not resolve (now)."""


def address_problem(address: IPAddress) -> str | None:
    """Why the guard refuses to connect to `address`, or None when it is a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind, found in (
        ("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
        ("link-local", address.is_link_local), ("multicast", address.is_multicast),
        ("private", address.is_private),
    ):
        if found:
            return f"{address} is a {kind} address"
    if not address.is_global:  # shared (CGNAT), reserved, documentation ranges …
        return f"{address} is not a public address"
    return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses `host` names, in the resolver's order (an IP literal is itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        found = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except OSError as error:
        raise Unresolved(f"{host} does not resolve ({error.strerror or error})") from None
    addresses: list[IPAddress] = []
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


async def checked_address(host: str, port: int, allow_private: bool) -> IPAddress:
    """The address to connect to for `host`: the first it resolves to, once every one of them
    passed the guard (AddressRefused otherwise)."""
    addresses = await resolve(host, port)
    if not addresses:
        raise Unresolved(f"{host} resolves to no address")
    if not allow_private:
        for address in addresses:
            if problem := address_problem(address):
                where = "" if str(address) == host else f"{host} resolves to {address}: "
                raise AddressRefused(
                    f"{where}{problem}; OUTDIAL_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=true allows it"
                )
    return addresses[0]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The certificate store, loaded once per process (loading it takes most of a second)."""
    return httpx.create_ssl_context()


@dataclass(frozen=True)
class Sent:
    """What one request got: the HTTP status (0: none), how long it took, what went wrong."""

    status_code: int
    latency_ms: int
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300 and not self.error


class Sender:
    """Sends signed messages; keeps a connection pool per receiver host."""

    def __init__(self, clock: Clock, timeout: float, allow_private: bool) -> None:
        self.clock = clock
        self.timeout = timeout
        self.allow_private = allow_private
        self._clients: OrderedDict[tuple[str, str, int], httpx.AsyncClient] = OrderedDict()

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> Sent:
        """POST `body`; the whole exchange is bounded by the timeout, on the clock."""
        started = time.monotonic()

        def elapsed() -> int:
            return round((time.monotonic() - started) * 1000)

        request = asyncio.ensure_future(self._post(url, body, headers))
        timer = asyncio.ensure_future(self.clock.sleep(self.timeout))
        try:
            await asyncio.wait({request, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not request.done():
                request.cancel()
                await asyncio.wait({request})
        if request.cancelled():
            return Sent(0, elapsed(), f"no answer within {self.timeout:g} s")
        try:
            status_code = request.result()
        except Unresolved as error:
            return Sent(0, elapsed(), str(error))
        except AddressRefused as error:
            return Sent(0, elapsed(), f"refused: {error}")
        except httpx.TimeoutException:
            return Sent(0, elapsed(), f"no answer within {self.timeout:g} s")
        except (httpx.HTTPError, OSError) as error:
            return Sent(0, elapsed(), f"{type(error).__name__}: {error}".rstrip(": "))
        if not 200 <= status_code < 300:
            return Sent(status_code, elapsed(), f"the receiver answered {status_code}")
        return Sent(status_code, elapsed())

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        parsed = httpx.URL(url)
        host = parsed.host
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        address = await checked_address(host, port, self.allow_private)
        extensions: dict[str, Any] = {}
        if parsed.scheme == "https":
            extensions["sni_hostname"] = host  # and the certificate is checked for it
        netloc = parsed.netloc.decode("ascii")
        request_headers = {
            **headers, "host": netloc, "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        client = self._client(parsed.scheme, host, port)
        async with client.stream(
            "POST", parsed.copy_with(host=str(address)), content=body,
            headers=request_headers, extensions=extensions,
        ) as response:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read > MAX_RESPONSE_BYTES:
                    break  # what it says past that is not needed; the connection goes
            return response.status_code

    def _client(self, scheme: str, host: str, port: int) -> httpx.AsyncClient:
        key = (scheme, host, port)
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        # No proxies from the environment (a proxy would connect to what it resolves), no
        # redirects (a 3xx is an answer like any other non-2xx).
        client = httpx.AsyncClient(
            timeout=self.timeout, trust_env=False, follow_redirects=False, verify=tls_context(),
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
        )
        self._clients[key] = client
        while len(self._clients) > MAX_CLIENTS:
            _, oldest = self._clients.popitem(last=False)
            asyncio.ensure_future(oldest.aclose())
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), OrderedDict()
        for client in clients:
            await client.aclose()
