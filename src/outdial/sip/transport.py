"""SIP transports on asyncio (RFC 3261 §18): one UDP socket, or TCP/TLS connections with a listener.

A transport hands every message it receives to one callback together with a `Link`: the way
back to whoever sent it (the UDP source address, or the very connection it came on).
"""

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable

from outdial.sip.message import Message, SipParseError, StreamFramer, parse

log = logging.getLogger(__name__)

Address = tuple[str, int]


class TransportError(Exception):
    """A message could not be sent: connection refused, reset, or TLS failure."""


class Link:
    """Where a message goes: an address on the UDP socket, or one stream connection."""

    def __init__(self, send: Callable[[bytes], None], address: Address) -> None:
        self._send = send
        self.address = address

    def send(self, data: bytes) -> None:
        self._send(data)


OnMessage = Callable[[Message, Link], None]


class Transport:
    """What the user agent needs of a transport."""

    name: str  # as written in Via: UDP, TCP, TLS
    reliable: bool
    local: Address  # the address we listen on (Via sent-by, Contact)

    async def start(self, bind: Address, on_message: OnMessage) -> None:
        raise NotImplementedError

    async def link(self, address: Address) -> Link:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class UdpTransport(Transport, asyncio.DatagramProtocol):
    name = "UDP"
    reliable = False
    RECEIVE_BUFFER = 4 * 1024 * 1024

    def __init__(self) -> None:
        self._socket: asyncio.DatagramTransport | None = None
        self._on_message: OnMessage | None = None

    async def start(self, bind: Address, on_message: OnMessage) -> None:
        self._on_message = on_message
        loop = asyncio.get_running_loop()
        self._socket, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=bind)
        sock = self._socket.get_extra_info("socket")
        try:
            # Answers to a burst of INVITEs arrive together; a small buffer drops them, and the
            # retransmissions that follow cost more than the memory (the kernel caps the value).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.RECEIVE_BUFFER)
        except OSError:
            pass
        self.local = self._socket.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if len(data) < 16:  # keep-alive CRLFs and stray bytes
            return
        try:
            message = parse(data)
        except SipParseError as error:
            log.debug("dropped a datagram from %s: %s", addr, error)
            return
        assert self._on_message is not None
        self._on_message(message, self._link_to(addr[:2]))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: UDP is best effort, the timers decide (§17.1).
        log.debug("UDP error: %s", exc)

    def _link_to(self, address: Address) -> Link:
        sock = self._socket
        assert sock is not None
        return Link(lambda data: sock.sendto(data, address), address)

    async def link(self, address: Address) -> Link:
        return self._link_to(address)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()


class _Connection(asyncio.Protocol):
    def __init__(self, owner: "StreamTransport", address: Address | None) -> None:
        self.owner = owner
        self.address = address
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.link: Link | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.address is None:  # accepted: known by where it came from
            self.address = transport.get_extra_info("peername")[:2]
            self.owner.connections.setdefault(self.address, self)
        self.link = Link(self.send, self.address)

    def send(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise TransportError(f"connection to {self.address[0]}:{self.address[1]} is closed")
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.framer.feed(data)
        except SipParseError as error:
            log.info("closing the connection from %s: %s", self.address, error)
            assert self.transport is not None
            self.transport.close()
            return
        for frame in frames:
            try:
                message = parse(frame)
            except SipParseError as error:
                log.debug("dropped a message from %s: %s", self.address, error)
                continue
            assert self.link is not None
            self.owner.on_message(message, self.link)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.owner.connections.get(self.address) is self:  # type: ignore[arg-type]
            del self.owner.connections[self.address]  # type: ignore[arg-type]


class StreamTransport(Transport):
    """TCP, or TLS when given an SSL context: connections kept per peer, reused both ways."""

    reliable = True
    CONNECT_TIMEOUT = 10.0

    def __init__(self, tls: ssl.SSLContext | None = None, server_name: str | None = None) -> None:
        self.name = "TLS" if tls else "TCP"
        self._tls = tls
        self._server_name = server_name
        self.connections: dict[Address, _Connection] = {}
        self._connecting: dict[Address, asyncio.Future[_Connection]] = {}
        self._server: asyncio.Server | None = None
        self.on_message: OnMessage = lambda message, link: None

    async def start(self, bind: Address, on_message: OnMessage) -> None:
        self.on_message = on_message
        if self._tls is None:
            # Plain TCP listens too, so a peer may open its own connection to our Contact.
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(lambda: _Connection(self, None), *bind)
            self.local = self._server.sockets[0].getsockname()[:2]
        else:
            # TLS needs a certificate to listen; requests come back on our own connections.
            self.local = (bind[0], 0)

    async def link(self, address: Address) -> Link:
        connection = self.connections.get(address)
        if connection is None:
            pending = self._connecting.get(address)
            if pending is None:
                pending = asyncio.ensure_future(self._connect(address))
                self._connecting[address] = pending
                pending.add_done_callback(lambda _: self._connecting.pop(address, None))
            connection = await asyncio.shield(pending)
        assert connection.link is not None
        return connection.link

    async def _connect(self, address: Address) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(self, address),
                    *address,
                    ssl=self._tls,
                    server_hostname=(self._server_name or address[0]) if self._tls else None,
                ),
                self.CONNECT_TIMEOUT,
            )
        except (OSError, ssl.SSLError, TimeoutError) as error:
            raise TransportError(
                f"cannot connect over {self.name} to {address[0]}:{address[1]}: {error}"
            ) from None
        self.connections[address] = connection
        if self._tls is not None and self.local[1] == 0:
            self.local = connection.transport.get_extra_info("sockname")[:2]  # type: ignore[union-attr]
        return connection

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections.values()):
            if connection.transport is not None:
                connection.transport.close()
        self.connections.clear()


def make_transport(
    name: str, tls: ssl.SSLContext | None = None, server_name: str | None = None
) -> Transport:
    if name == "udp":
        return UdpTransport()
    if name == "tcp":
        return StreamTransport()
    if name == "tls":
        return StreamTransport(tls or ssl.create_default_context(), server_name)
    raise ValueError(f"unknown SIP transport {name!r} (known: udp, tcp, tls)")


def local_ip_towards(host: str) -> str:
    """The local address the system would use to reach `host` (no packet is sent)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((host, 9))
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"
