"""HTTP requests to a receiver, guarded against reaching the server's own networks.

The guard (SSRF care): the receiver's host is resolved when the request is made, every address
it resolves to is checked, and the connection goes to the address that was checked (the URL's
host stays in the Host header and in TLS's SNI and certificate check), so a name that resolves
to a public address when checked cannot resolve to a private one when connected to. A kept-alive
connection is reused only while the host still resolves to the address it was opened to.

Requests go over plain HTTP/1.1 (h11 on asyncio streams): a webhook is one small POST, and a
general client's per-request work cost ten times the exchange itself (bench/RESULTS.md). The
requests of a run are pipelined: written together, their answers read in order, so a run costs
the receiver's time to answer, not one round trip per message.
"""

import asyncio
import datetime as dt
import functools
import logging
import re
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import h11
import httpx

from outdial.clock import Clock
from outdial.netguard import AddressRefused, IPAddress, Unresolved, checked_address
from outdial.urls import ascii_host

log = logging.getLogger(__name__)
MAX_RESPONSE_BYTES = 64 * 1024  # read of an answer, then the connection is dropped
MAX_HOSTS = 64  # receiver hosts whose idle connections are kept
MAX_IDLE_PER_HOST = 2
READ_CHUNK = 64 * 1024
USER_AGENT = "outdial-webhooks"
QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The certificate store, loaded once per process (loading it takes most of a second)."""
    return httpx.create_ssl_context()


class _Answers(list["Sent"]):
    """The outcomes of a run so far, and when the last one came (on the clock)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.last = clock.now()

    def append(self, sent: "Sent") -> None:
        super().append(sent)
        self.last = self.clock.now()


@dataclass(frozen=True)
class Sent:
    """What one request got: the HTTP status (0: none), how long it took, what went wrong, and
    the kind of outcome (metrics.WEBHOOK_RESULTS; "" when no request was made at all)."""

    status_code: int
    latency_ms: int
    error: str = ""
    kind: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300 and not self.error


@dataclass(frozen=True)
class Message:
    """One POST: its body and the headers of its own (the webhook-id, timestamp, signature)."""

    body: bytes
    headers: dict[str, str]


class _NotTaken(Exception):
    """The receiver closed the connection (or reset it) before answering a request: that
    request and those after it were not taken, and go again on a new connection."""


_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # no line breaks in a request's head


def _field(name: str, value: str) -> str:
    if _UNSAFE.search(name) or _UNSAFE.search(value) or ":" in name:
        raise ValueError(f"the header {name!r} cannot be sent")
    return f"{name}: {value}\r\n"


def _fields(headers: dict[str, str]) -> str:
    """A message's own header lines, checked as _field checks each, in one search of their
    names and one of their values (a tab, allowed in both, between them) for the whole lot."""
    names, values = "\t".join(headers), "\t".join(headers.values())
    if _UNSAFE.search(names) or _UNSAFE.search(values) or ":" in names:
        for name, value in headers.items():
            _field(name, value)  # raises, naming the header
    return "".join([f"{name}: {value}\r\n" for name, value in headers.items()])


# The usual answer, read without h11: a complete HTTP/1.1 2xx head, whose body's length is
# given (or none: 204), and nothing that asks for more care (no transfer-encoding, no
# connection header). Anything else is read by h11, from the same bytes.
_QUICK_HEAD = re.compile(
    rb"HTTP/1\.1 (2[0-9][0-9])(?: [\t\x20-\x7e\x80-\xff]*)?\r\n"
    rb"((?:[-!#$%&'*+.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*)\r\n")
_QUICK_FIELD = re.compile(rb"([^:\r\n]+):[ \t]*([^\r\n]*?)[ \t]*\r\n")
QUICK_ANSWER_BYTES = 16 * 1024  # longer answers (head and body) are h11's
NEED_MORE = (0, 0)


def quick_answer(buffer: bytes | bytearray) -> tuple[int, int] | None:
    """The status and length of the usual answer at the start of `buffer` when it is all
    there; NEED_MORE when what is there may still become one; None when it is not one (h11
    reads it)."""
    head = _QUICK_HEAD.match(buffer)
    if head is None:
        if b"\r\n\r\n" in buffer or len(buffer) >= QUICK_ANSWER_BYTES:
            return None
        return NEED_MORE if b"HTTP/1.1 2".startswith(bytes(buffer[:10])) else None
    status = int(head[1])
    length = None
    for name, value in _QUICK_FIELD.findall(head[2]):
        name = name.lower()
        if name == b"content-length":
            if length is not None or not value.isdigit():
                return None  # twice, or not a number: h11 judges it
            length = int(value)
        elif name in (b"transfer-encoding", b"connection"):
            return None
    if status == 204:
        if length:
            return None
        length = 0
    if length is None or head.end() + length > QUICK_ANSWER_BYTES:
        return None
    end = head.end() + length
    return (status, end) if len(buffer) >= end else NEED_MORE


class _Connection:
    """One HTTP/1.1 connection to a receiver's checked address.

    Requests are written whole, several at a time (pipelined): h11 only writes a request once
    the answer to the one before has been read, so the few fixed lines of a webhook's request
    are written here. The answers are read in order from `buffer`: the usual one by
    quick_answer(), any other by an h11 connection of its own, told of a POST without a body
    (all it needs to know of the request to read the answer to it)."""

    def __init__(self, address: IPAddress, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.address = address
        self.reader = reader
        self.writer = writer
        self.buffer = bytearray()  # read, not yet taken as (part of) an answer
        self.reusable = True  # every answer so far ended cleanly, and none asked to close
        self._socket = writer.get_extra_info("socket")
        self.acknowledge_at_once()

    def acknowledge_at_once(self) -> None:
        """Have what arrives acknowledged at once (Linux; undone by the kernel, so set again
        after each read). A receiver that leaves Nagle's algorithm on holds each answer until
        the one before is acknowledged: delayed acknowledgements (40 ms) would space the
        answers to pipelined requests out."""
        if QUICKACK is not None and self._socket is not None:
            try:
                self._socket.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
            except OSError:
                pass  # not a TCP socket after all: nothing to speed up

    async def read(self, answering: bool = False) -> bytes:
        """The next bytes from the receiver (b"" once it closed); _NotTaken when the connection
        ends before the first byte of an answer (`answering`: some of it has been read)."""
        started = answering or bool(self.buffer)
        try:
            chunk = await self.reader.read(READ_CHUNK)
        except (ConnectionResetError, BrokenPipeError):
            if started:
                raise
            raise _NotTaken from None
        if not chunk and not started:
            raise _NotTaken
        self.acknowledge_at_once()
        return chunk

    def close(self) -> None:
        self.writer.close()


class Sender:
    """Sends signed messages; keeps idle connections per receiver host for the next ones."""

    def __init__(self, clock: Clock, timeout: float, allow_private: bool) -> None:
        self.clock = clock
        self.timeout = timeout
        self.allow_private = allow_private
        self._idle: OrderedDict[tuple[str, str, int], list[_Connection]] = OrderedDict()

    async def send(self, url: str, messages: Sequence[Message]) -> list[Sent]:
        """POST the messages in order over one kept-alive connection, all written before the
        answers are read (HTTP/1.1 pipelining), each answer awaited for the timeout on the
        clock (the first one's time includes looking up, connecting and sending): a run of a
        thousand messages to a receiver answering each in 20 ms is not cut at 10 s. Returns
        the outcome of each message up to the first that was not delivered, that one included:
        those behind it may have reached the receiver, and count as not sent (they go again
        later, after it, with the same webhook-ids)."""
        started = time.monotonic()
        outcomes = _Answers(self.clock)

        def elapsed() -> int:
            return round((time.monotonic() - started) * 1000)

        request = asyncio.ensure_future(self._post(url, messages, outcomes, elapsed))
        try:
            while not request.done():
                left = (outcomes.last + dt.timedelta(seconds=self.timeout)
                        - self.clock.now()).total_seconds()
                if left <= 0:
                    break  # no answer within the timeout of the one before (or the start)
                timer = asyncio.ensure_future(self.clock.sleep(left))
                try:
                    await asyncio.wait({request, timer}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    timer.cancel()
        finally:
            if not request.done():
                request.cancel()
                await asyncio.wait({request})
        if request.cancelled():
            outcomes.append(Sent(0, elapsed(), f"no answer within {self.timeout:g} s", "timeout"))
            return outcomes
        try:
            request.result()
        except Unresolved as error:
            outcomes.append(Sent(0, elapsed(), str(error), "unreachable"))
        except AddressRefused as error:
            outcomes.append(Sent(0, elapsed(), f"refused: {error}", "refused"))
        except (h11.ProtocolError, OSError) as error:
            outcomes.append(Sent(0, elapsed(), f"{type(error).__name__}: {error}".rstrip(": "),
                                 "unreachable"))
        except Exception as error:
            # Whatever else went wrong (a URL stored before its host was checked …) is this
            # attempt's failure, written down and counted like any: never a claim released at
            # once and taken again, round after round.
            log.exception("sending to %s failed", url)
            outcomes.append(Sent(0, elapsed(), f"{type(error).__name__}: {error}".rstrip(": "),
                                 "unreachable"))
        return outcomes

    async def _post(self, url: str, messages: Sequence[Message], outcomes: list[Sent],
                    elapsed: Callable[[], int]) -> None:
        parsed = httpx.URL(url)
        host = ascii_host(parsed)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        address = await checked_address(host, port, self.allow_private)
        key = (parsed.scheme, host, port)
        netloc = parsed.netloc.decode("ascii")
        target = parsed.raw_path.decode("ascii")  # percent-encoded by httpx: no space, no CR/LF
        head = (f"POST {target} HTTP/1.1\r\n{_field('host', netloc)}"
                f"content-type: application/json\r\nuser-agent: {USER_AGENT}\r\n")
        requests = [
            "".join([head, f"content-length: {len(m.body)}\r\n",
                     _fields(m.headers), "\r\n"]).encode("ascii")
            + m.body
            for m in messages
        ]
        answer_to = h11.Request(method="POST", target=target,
                                headers=[("host", netloc), ("content-length", "0")])
        pipelined = True
        while len(outcomes) < len(messages):
            connection = self._take(key, address)  # the one kept after the last exchange
            reused = connection is not None
            if connection is None:
                connection = await self._connect(parsed.scheme, host, address, port)
            rest = requests[len(outcomes):]
            answered = len(outcomes)
            try:
                await self._exchange(key, connection, rest if pipelined else rest[:1],
                                     answer_to, outcomes, elapsed, reused)
            except _NotTaken:
                # A kept-alive connection the receiver had closed while idle: the same again on
                # a new one. Otherwise the receiver closes connections after some answers (or
                # drops what it had not read): the rest go one request per connection.
                if not (reused and len(outcomes) == answered):
                    pipelined = False
            if outcomes and not outcomes[-1].ok:
                return

    async def _connect(self, scheme: str, host: str, address: IPAddress,
                       port: int) -> _Connection:
        # To the checked address; TLS's SNI and certificate check are for the URL's host.
        https = scheme == "https"
        reader, writer = await asyncio.open_connection(
            str(address), port, ssl=tls_context() if https else None,
            server_hostname=host if https else None,
        )
        return _Connection(address, reader, writer)

    async def _exchange(
        self, key: tuple[str, str, int], connection: _Connection, requests: list[bytes],
        answer_to: h11.Request, outcomes: list[Sent], elapsed: Callable[[], int], reused: bool,
    ) -> None:
        """Write the requests, then read their answers in order, noting each one's outcome,
        until every one is answered or one is not a 2xx. _NotTaken when the receiver closed the
        connection before answering one (unless it is the only request, on a new connection:
        then the receiver failed). The connection is kept only if every answer ended cleanly."""
        kept = False
        answered = 0
        try:
            try:
                connection.writer.write(b"".join(requests))
                await connection.writer.drain()
            except (ConnectionResetError, BrokenPipeError):
                raise _NotTaken from None
            for answered in range(len(requests)):
                if answered and not connection.reusable:
                    raise _NotTaken  # the receiver closes it after the last answer
                status_code = await self._answer(connection, answer_to)
                if not 200 <= status_code < 300:
                    outcomes.append(Sent(status_code, elapsed(),
                                         f"the receiver answered {status_code}", "rejected"))
                    return
                outcomes.append(Sent(status_code, elapsed(), kind="delivered"))
            if connection.reusable:
                self._put_back(key, connection)
                kept = True
        except _NotTaken:
            if reused or answered or len(requests) > 1:
                raise
            raise ConnectionError("the receiver closed the connection") from None
        finally:
            if not kept:
                connection.close()

    async def _answer(self, connection: _Connection, answer_to: h11.Request) -> int:
        """Read one answer; its status. _NotTaken when the connection ends before its first
        byte. The usual answer is taken from the buffer as soon as it is all there; any other
        (or a connection closed mid-answer) is h11's to read."""
        buffer = connection.buffer
        while True:
            quick = quick_answer(buffer)
            if quick is None:
                return await self._answer_slowly(connection, answer_to, closed=False)
            status_code, length = quick
            if status_code:
                del buffer[:length]
                return status_code
            chunk = await connection.read()
            if not chunk:
                return await self._answer_slowly(connection, answer_to, closed=True)
            buffer += chunk

    async def _answer_slowly(self, connection: _Connection, answer_to: h11.Request,
                             closed: bool) -> int:
        """Read one answer with h11, from the buffer on; its status. Past MAX_RESPONSE_BYTES
        of body, the status (the rest is not read: the connection is not kept)."""
        http = h11.Connection(h11.CLIENT)
        http.send(answer_to)
        http.send(h11.EndOfMessage())
        http.receive_data(bytes(connection.buffer))
        connection.buffer.clear()
        if closed:
            http.receive_data(b"")
        status_code = 0
        read = 0
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                # The buffer went to h11: the answer has begun, and may end with the
                # connection (HTTP/1.0, a body without a length).
                data = await connection.read(answering=True)
                closed = closed or not data
                http.receive_data(data)
            elif isinstance(event, h11.Response):
                status_code = event.status_code
            elif isinstance(event, h11.Data):
                read += len(event.data)
                if read > MAX_RESPONSE_BYTES:
                    connection.reusable = False
                    return status_code
            elif isinstance(event, h11.EndOfMessage):
                if http.their_state is h11.DONE and http.our_state is h11.DONE and not closed:
                    rest, _ = http.trailing_data  # the start of the next answer, if any
                    connection.buffer += rest
                else:
                    connection.reusable = False  # HTTP/1.0, or it asked to close
                return status_code
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the receiver closed the connection")

    def _take(self, key: tuple[str, str, int], address: IPAddress) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if connection.address == address and not connection.writer.is_closing():
                return connection
            connection.close()  # the host resolves elsewhere now: that address is not checked
        return None

    def _put_back(self, key: tuple[str, str, int], connection: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        self._idle.move_to_end(key)
        idle.append(connection)
        while len(idle) > MAX_IDLE_PER_HOST:
            idle.pop(0).close()
        while len(self._idle) > MAX_HOSTS:
            _, oldest = self._idle.popitem(last=False)
            for stale in oldest:
                stale.close()

    async def aclose(self) -> None:
        idle, self._idle = list(self._idle.values()), OrderedDict()
        for connections in idle:
            for connection in connections:
                connection.close()
