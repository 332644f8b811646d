"""SIP messages (RFC 3261 §7): parsing from bytes, building to bytes, and the header helpers a UAC needs."""

import re
import secrets
from dataclasses import dataclass, field

# Compact header forms (RFC 3261 §7.3.3) and the spelling we write every header in.
_COMPACT = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
}
_CANONICAL = {
    name.lower(): name
    for name in (
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Content-Length",
        "Content-Type",
        "Max-Forwards",
        "Route",
        "Record-Route",
        "WWW-Authenticate",
        "Proxy-Authenticate",
        "Authorization",
        "Proxy-Authorization",
        "User-Agent",
        "Allow",
        "Supported",
        "Expires",
        "Reason",
        "Subject",
        "Content-Encoding",
        "Require",
        "Server",
        "Accept",
    )
}
# Headers whose comma-separated values are separate entries (RFC 3261 §7.3.1).
_LISTS = {"Via", "Route", "Record-Route", "Contact"}


class SipParseError(ValueError):
    """Bytes that are not a SIP message we can read."""


def canonical(name: str) -> str:
    name = name.strip()
    lower = name.lower()
    return _COMPACT.get(lower) or _CANONICAL.get(lower) or name


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


def split_list(value: str) -> list[str]:
    """Split a header value at commas that are outside quotes and <...>."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(value):
        if ch == '"' and (i == 0 or value[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth -= 1
        elif not quoted and depth == 0 and ch == ",":
            parts.append(value[start:i].strip())
            start = i + 1
    parts.append(value[start:].strip())
    return [p for p in parts if p]


def header_param(value: str, name: str) -> str | None:
    """A `;name=value` parameter of a header value (outside its <uri>), or None."""
    tail = value[value.rfind(">") + 1 :] if ">" in value else value
    for piece in tail.split(";")[1:]:
        key, _, val = piece.partition("=")
        if key.strip().lower() == name:
            return val.strip().strip('"')
    return None


def address_uri(value: str) -> str:
    """The URI of a name-addr (`"Bob" <sip:bob@h>;tag=1`) or addr-spec (`sip:bob@h;tag=1`)."""
    if "<" in value:
        return value[value.index("<") + 1 : value.index(">")]
    return value.split(";", 1)[0].strip()


@dataclass(frozen=True)
class SipUri:
    """The parts of a sip:/sips: URI a UAC routes by."""

    scheme: str
    user: str | None
    host: str
    port: int | None
    params: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> "SipUri":
        match = _URI.fullmatch(text.strip())
        if not match:
            raise SipParseError(f"not a SIP URI: {text!r}")
        params = {}
        for piece in (match["params"] or "").split(";")[1:]:
            key, _, val = piece.partition("=")
            params[key.lower()] = val
        host = match["host"]
        return cls(
            scheme=match["scheme"].lower(),
            user=match["user"],
            host=host[1:-1] if host.startswith("[") else host,
            port=int(match["port"]) if match["port"] else None,
            params=params,
        )


_URI = re.compile(
    r"(?P<scheme>sips?):(?:(?P<user>[^@;?]+(?:;[^@?]*)?)@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-_]+)(?::(?P<port>\d{1,5}))?"
    r"(?P<params>(?:;[^?]*)?)(?:\?.*)?",
    re.IGNORECASE,
)


@dataclass
class Message:
    """A request (`method`, `uri`) or a response (`status`, `reason`), with headers and body.

    Headers keep their order; list headers (Via, Route, Record-Route, Contact) hold one entry per
    value, so `get("Via")` is the topmost Via.
    """

    method: str | None = None
    uri: str | None = None
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def get(self, name: str) -> str | None:
        name = canonical(name)
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        name = canonical(name)
        return [value for key, value in self.headers if key == name]

    def add(self, name: str, value: str) -> "Message":
        self.headers.append((canonical(name), value))
        return self

    @property
    def call_id(self) -> str:
        return self.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = (self.get("CSeq") or "").strip().partition(" ")
        try:
            return int(number), method.strip().upper()
        except ValueError:
            return 0, method.strip().upper()

    @property
    def branch(self) -> str | None:
        via = self.get("Via")
        return header_param(via, "branch") if via else None

    def tag(self, header: str) -> str | None:
        value = self.get(header)
        return header_param(value, "tag") if value else None

    def to_bytes(self) -> bytes:
        if self.is_request:
            lines = [f"{self.method} {self.uri} SIP/2.0"]
        else:
            lines = [f"SIP/2.0 {self.status} {self.reason}"]
        lines += [f"{key}: {value}" for key, value in self.headers if key != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body

    def __str__(self) -> str:
        return f"{self.method} {self.uri}" if self.is_request else f"{self.status} {self.reason}"


def parse(data: bytes) -> Message:
    """One whole message (a UDP datagram, or one framed off a stream by `StreamFramer`)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():  # keep-alive CRLFs before a message
        lines.pop(0)
    if not lines:
        raise SipParseError("empty message")
    message = Message()
    first = lines[0].strip()
    if first.startswith("SIP/2.0 "):
        parts = first.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit() or len(parts[1]) != 3:
            raise SipParseError(f"bad status line: {first!r}")
        message.status = int(parts[1])
        message.reason = parts[2] if len(parts) > 2 else ""
    else:
        parts = first.split(" ")
        if len(parts) != 3 or parts[2] != "SIP/2.0":
            raise SipParseError(f"bad request line: {first!r}")
        message.method, message.uri = parts[0].upper(), parts[1]
    unfolded: list[str] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and unfolded:  # folded continuation (RFC 3261 §7.3.1)
            unfolded[-1] += " " + line.strip()
        elif line:
            unfolded.append(line)
    for line in unfolded:
        name, colon, value = line.partition(":")
        if not colon:
            raise SipParseError(f"bad header line: {line!r}")
        name, value = canonical(name), value.strip()
        if name in _LISTS and "," in value:
            message.headers.extend((name, item) for item in split_list(value))
        else:
            message.headers.append((name, value))
    length = message.get("Content-Length")
    if length is not None and length.strip().isdigit():
        body = body[: int(length)]
    message.body = body
    return message


class StreamFramer:
    """Cuts a TCP/TLS byte stream into messages by their Content-Length (RFC 3261 §18.3)."""

    MAX_HEAD = 64 * 1024

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        messages = []
        while True:
            self._buffer = self._buffer.lstrip(b"\r\n")  # keep-alives between messages
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > self.MAX_HEAD:
                    raise SipParseError("header section too long")
                return messages
            head = self._buffer[:end].decode("latin-1")
            match = _CONTENT_LENGTH.search(head)
            length = int(match.group(1)) if match else 0
            total = end + 4 + length
            if len(self._buffer) < total:
                return messages
            messages.append(self._buffer[:total])
            self._buffer = self._buffer[total:]


_CONTENT_LENGTH = re.compile(
    r"^(?:content-length|l)[ \t]*:[ \t]*(\d+)", re.IGNORECASE | re.MULTILINE
)
