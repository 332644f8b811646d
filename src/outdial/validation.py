"""What a value must be to be stored and read back: one rule set for API bodies and imported rows.

Every text is checked when it comes in, because a value that is stored but cannot be encoded or
serialised later makes every page holding it fail: a lone UTF-16 surrogate (JSON lets
"\\ud800" through, UTF-8 cannot encode it), NUL (PostgreSQL text cannot hold it), a text longer
than its field's limit; and free JSON (an action's option) too deep, too large, or holding
numbers that other readers cannot read exactly. The API applies these rules to request bodies
(outdial.schemas.Body), the import checker to every cell (outdial.imports.checking), which runs
in worker processes: this module imports nothing but the standard library.
"""

import json
import math
import re
from typing import Any

# Longest text accepted, by field name: an API body and an imported row use the same names.
MAX_CHARS = {"name": 255, "target_name": 255, "detail": 4096, "data": 65536}
DEFAULT_MAX_CHARS = 1024  # any other text: types, targets, statuses, usernames, passwords
# Free JSON, such as an action's option, is kept as sent and handed to the dialer.
MAX_JSON_DEPTH = 32  # containers inside containers, the value itself being level 1
MAX_JSON_BYTES = 64 * 1024  # encoded as UTF-8 JSON
# Integers in free JSON fit 64 bits: every JSON reader and both databases keep them exactly.
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
# A number written longer than this is refused while decoding, before Python converts it (its
# int() refuses more than 4,300 digits and takes quadratic time below that).
MAX_NUMBER_CHARS = 100

_SURROGATE = re.compile("[\ud800-\udfff]")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Refused(ValueError):
    """JSON that decodes, but that the rules refuse to read (the message says why)."""


def _unencodable(value: str) -> str | None:
    """What in `value` no UTF-8 encoder or PostgreSQL text can hold, or None."""
    if "\x00" in value:
        return "the NUL character (U+0000)"
    if not value.isascii() and (surrogate := _SURROGATE.search(value)):
        return (f"a lone surrogate (U+{ord(surrogate.group()):04X}), which is not Unicode text "
                "(a character outside the BMP is sent as a surrogate pair)")
    return None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line_problem(value: str) -> str | None:
    """Why `value` cannot be a display name in an email header (From, To), or None: a line
    break would end the header there, and any other control character has no place in one."""
    if found := _CONTROL.search(value):
        return (f"must be one line: no line break or other control character "
                f"(U+{ord(found.group()):04X})")
    return None


def text_problem(field: str, value: str) -> str | None:
    """Why the text `value` of field `field` cannot be stored, or None when it can."""
    if unencodable := _unencodable(value):
        return f"must not contain {unencodable}"
    limit = MAX_CHARS.get(field, DEFAULT_MAX_CHARS)
    if len(value) > limit:
        return f"is {len(value)} characters long; at most {limit} are accepted"
    return None


def key_text(key: Any) -> str:
    """A key or index as an error names it: plain keys as they are, others quoted and cut, so
    that the message is plain text whatever the key holds."""
    if isinstance(key, int) or _PLAIN_KEY.fullmatch(key):
        return str(key)
    return json.dumps(key[:40] + ("…" if len(key) > 40 else ""))


def value_text(value: Any, most: int = 100) -> str:
    """A value as an error quotes it: as JSON (`null`, `"soon"`), cut to `most` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= most else text[:most] + "…"


def json_problem(value: Any) -> tuple[str, str] | None:
    """Why the free JSON `value` cannot be stored, as (path inside it, problem), or None.

    The path is dotted ("steps.0.text"), "" for the value as a whole."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        problem = None
        if isinstance(item, dict | list):
            if len(path) >= MAX_JSON_DEPTH:
                return "", f"nests deeper than {MAX_JSON_DEPTH} levels"
            if isinstance(item, dict):
                for key, inner in item.items():
                    if not isinstance(key, str):
                        problem = "has a key that is not a string"
                    elif unencodable := _unencodable(key):
                        problem = f"has a key containing {unencodable}"
                    if problem:
                        break
                    stack.append((inner, (*path, key)))
            else:
                stack.extend((inner, (*path, index)) for index, inner in enumerate(item))
        elif isinstance(item, str):
            if unencodable := _unencodable(item):
                problem = f"must not contain {unencodable}"
        elif isinstance(item, bool) or item is None:
            pass
        elif isinstance(item, int):
            if not MIN_INT <= item <= MAX_INT:
                problem = f"holds an integer outside the 64-bit range ({MIN_INT} to {MAX_INT})"
        elif isinstance(item, float):
            if not math.isfinite(item):
                problem = f"holds {item}, which is not a JSON number"
        else:
            problem = f"holds a {type(item).__name__}, which is not a JSON value"
        if problem:
            return ".".join(map(key_text, path)), problem
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_JSON_BYTES:
        return "", f"is {size} bytes as JSON; at most {MAX_JSON_BYTES} are accepted"
    return None


# -- decoding ---------------------------------------------------------------------------------

def _number(text: str, kind: type) -> Any:
    if len(text) > MAX_NUMBER_CHARS:
        raise Refused(f"holds a number written with {len(text)} characters; "
                      f"at most {MAX_NUMBER_CHARS} are read")
    return kind(text)


def _constant(name: str) -> Any:
    raise Refused(f"holds {name}, which is not JSON")


_DECODER = json.JSONDecoder(
    parse_int=lambda text: _number(text, int), parse_float=lambda text: _number(text, float),
    parse_constant=_constant,
)


def decode_json_at(text: str, start: int = 0) -> tuple[Any, int]:
    """The JSON value at `start` in `text` and where it ends, as JSONDecoder.raw_decode gives;
    raises json.JSONDecodeError for text that is not JSON and Refused for JSON the rules refuse
    to read: numbers written too long, NaN and Infinity, nesting deeper than Python recurses."""
    try:
        return _DECODER.raw_decode(text, start)
    except RecursionError:
        raise Refused(f"nests deeper than {MAX_JSON_DEPTH} levels") from None


def decode_json(text: str | bytes) -> Any:
    """A whole JSON document (surrounding white space allowed), read by decode_json_at's rules."""
    if isinstance(text, bytes):
        text = text.decode("utf-8-sig")
    start = len(text) - len(text.lstrip(" \t\n\r"))
    value, end = decode_json_at(text, start)
    if text[end:].strip(" \t\n\r"):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]|[^\s,\[\]{}"]+', re.DOTALL)


def end_of_json_value(text: str, start: int) -> int | None:
    """Where the JSON value at `start` ends, found without decoding it (so without recursion),
    or None if `text` ends first. Used to skip past a value decode_json_at refused."""
    depth = 0
    for token in _TOKEN.finditer(text, start):
        first = token.group()[0]
        if first in "[{":
            depth += 1
        elif first in "]}":
            depth -= 1
        if depth <= 0:
            return token.end()
    return None
