"""Connections to hosts a tenant chose (a webhook's receiver, a `play` action's audio file),
guarded against reaching the server's own networks (SSRF).

The host is resolved when the connection is made, every address it resolves to is checked, and
the connection goes to the address that was checked (the host's name stays in the Host header
and in TLS), so a name that resolves to a public address when checked cannot resolve to a
private one when connected to.
"""

import asyncio
import ipaddress
import socket
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(Exception):
    """The receiver's host is, or resolves to, an address the guard refuses."""


class Unresolved(AddressRefused):
    """The receiver's host does not resolve (now)."""


def address_problem(address: IPAddress) -> str | None:
    """Why the guard refuses to connect to `address`, or None when it is a public one."""
    if isinstance(address, ipaddress.IPv6Address) and (inside := _ipv4_inside(address)):
        problem = address_problem(inside)  # judged as the IPv4 address it reaches
        return f"{address} reaches {inside}: {problem}" if problem else None
    for kind, found in (
        ("an unspecified", address.is_unspecified), ("a loopback", address.is_loopback),
        ("a link-local", address.is_link_local), ("a multicast", address.is_multicast),
        ("a private", address.is_private),
    ):
        if found:
            return f"{address} is {kind} address"
    # Shared (CGNAT), reserved, documentation ranges …; IPv6's reserved and site-local ones,
    # which Python 3.11 still counts as global.
    if not address.is_global or (isinstance(address, ipaddress.IPv6Address) and (
            address.is_reserved or address.is_site_local)):
        return f"{address} is not a public address"
    return None


# IPv6 ranges that carry an IPv4 address a network may route to: IPv4-mapped (::ffff:0:0/96),
# IPv4-compatible (::/96, deprecated), NAT64 (64:ff9b::/96, 64:ff9b:1::/48) and 6to4
# (2002::/16). The IPv4 address inside is judged as itself.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_COMPATIBLE = ipaddress.ip_network("::/96")


def _ipv4_inside(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _COMPATIBLE and int(address) > 1:  # not :: nor ::1, judged as themselves
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
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
    except UnicodeError as error:  # a name the resolver cannot encode (a label too long)
        raise Unresolved(f"{host} does not resolve ({error})") from None
    addresses: list[IPAddress] = []
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


async def checked_address(host: str, port: int, allow_private: bool,
                          allowed_by: str = "OUTDIAL_WEBHOOKS_ALLOW_PRIVATE_NETWORKS") -> IPAddress:
    """The address to connect to for `host`: the first it resolves to, once every one of them
    passed the guard (AddressRefused otherwise, naming the setting `allowed_by` that lifts
    it)."""
    addresses = await resolve(host, port)
    if not addresses:
        raise Unresolved(f"{host} resolves to no address")
    if not allow_private:
        for address in addresses:
            if problem := address_problem(address):
                where = "" if str(address) == host else f"{host} resolves to {address}: "
                raise AddressRefused(f"{where}{problem}; {allowed_by}=true allows it")
    return addresses[0]


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's own network, but every TCP connection goes to a checked address."""

    def __init__(self, allowed_by: str) -> None:
        self._network = httpcore.AnyIOBackend()
        self._allowed_by = allowed_by

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        try:
            address = await checked_address(host, port, False, self._allowed_by)
        except AddressRefused as refused:  # said as a connection error: the request fails
            raise httpcore.ConnectError(str(refused)) from None
        return await self._network.connect_tcp(str(address), port, timeout=timeout,
                                               local_address=local_address,
                                               socket_options=socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("no Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


# httpx's own default limits: the guarded pool keeps them (httpcore's would differ).
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)


def guarded_transport(allowed_by: str) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections (redirects' too) reach public addresses only.
    httpx takes no network backend of its own: its pool is replaced by one with the guard
    (httpx is pinned; test_media_audio.py fails if the pool is no longer the one used)."""
    transport = httpx.AsyncHTTPTransport(limits=_LIMITS)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(), network_backend=_GuardedBackend(allowed_by),
        max_connections=_LIMITS.max_connections,
        max_keepalive_connections=_LIMITS.max_keepalive_connections,
        keepalive_expiry=_LIMITS.keepalive_expiry)
    return transport
