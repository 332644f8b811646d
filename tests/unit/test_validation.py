"""The value rules on their own: texts, free JSON, decoding, and where the API applies them."""

import importlib
import json
import pkgutil
import subprocess
import sys

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute

from outdial.api import routes
from outdial.api.bodies import JsonRulesRoute
from outdial.validation import (
    MAX_JSON_BYTES,
    Refused,
    decode_json,
    decode_json_at,
    end_of_json_value,
    json_problem,
    key_text,
    text_problem,
)


@pytest.mark.parametrize("field, value, problem", [
    ("name", "ok", None),
    ("name", "\U0001F600 é", None),
    ("name", "x" * 255, None),
    ("name", "x" * 256, "is 256 characters long; at most 255 are accepted"),
    ("detail", "x" * 4097, "is 4097 characters long; at most 4096 are accepted"),
    ("data", "x" * 65536, None),
    ("password", "x" * 1025, "is 1025 characters long; at most 1024 are accepted"),
    ("name", "a\x00", "must not contain the NUL character (U+0000)"),
    ("name", "é\udfff", "must not contain a lone surrogate (U+DFFF)"),
])
def test_text_rules(field: str, value: str, problem: str | None) -> None:
    found = text_problem(field, value)
    assert found == problem if problem is None else (found or "").startswith(problem)


def nested(levels: int) -> object:
    value: object = {}
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize("value, found", [
    ({"a": [1, 2.5, None, True, "x"]}, None),
    (nested(32), None),
    (nested(33), ("", "nests deeper than 32 levels")),
    ({"a": {"b": ["ok", "\x00"]}}, ("a.b.1", "must not contain the NUL character (U+0000)")),
    ({"odd key.": {"\ud800": 1}}, ("\"odd key.\"", "has a key containing a lone surrogate")),
    ({"n": 2**63 - 1, "m": -(2**63)}, None),
    ({"n": 2**63}, ("n", "holds an integer outside the 64-bit range")),
    ({"f": float("inf")}, ("f", "holds inf, which is not a JSON number")),
    ({"t": (1, 2)}, ("t", "holds a tuple, which is not a JSON value")),
    ({"s": "x" * (MAX_JSON_BYTES - 8)}, None),
    ({"s": "x" * (MAX_JSON_BYTES - 7)}, ("", f"is {MAX_JSON_BYTES + 1} bytes as JSON")),
    ({"s": "é" * (MAX_JSON_BYTES // 2)}, ("", "is 65544 bytes as JSON")),  # counted as UTF-8
])
def test_free_json_rules(value: object, found: tuple[str, str] | None) -> None:
    problem = json_problem(value)
    if found is None:
        assert problem is None
    else:
        assert problem is not None and problem[0] == found[0] and problem[1].startswith(found[1]), problem


def test_keys_in_messages_are_plain_text() -> None:
    assert key_text("destination_5") == "destination_5" and key_text(3) == "3"
    assert key_text("\ud800") == '"\\ud800"'
    assert key_text("k" * 100) == json.dumps("k" * 40 + "…")


@pytest.mark.parametrize("text, why", [
    ("1" * 5000, "a number written with 5000 characters"),
    ('{"a": 0.' + "1" * 200 + "}", "a number written with 202 characters"),
    ("[" * 100_000 + "]" * 100_000, "nests deeper than"),
    ('{"a": NaN}', "NaN, which is not JSON"),
    ("-Infinity", "-Infinity, which is not JSON"),
])
def test_decoding_refuses_what_json_loads_cannot_read_safely(text: str, why: str) -> None:
    with pytest.raises(Refused, match=why):
        decode_json(text)


def test_decoding_reads_json_as_json_loads_does() -> None:
    text = ' {"a": [1, -2.5e3, "\\ud83d\\ude00", null, true], "b": {"c": "\\u00e9"}}\n'
    assert decode_json(text) == decode_json(text.encode()) == json.loads(text)
    assert decode_json("1" * 100) == int("1" * 100)
    with pytest.raises(json.JSONDecodeError):
        decode_json('{"a": 1} trailing')
    assert decode_json_at('[1] [2]', 4) == ([2], 7)


@pytest.mark.parametrize("text, start, end", [
    ('[[1, {"a": "]"}], 2], 3', 0, 20),
    ('x, {"k": "\\"}"}, 3', 3, 15),
    ("  123456, 7", 2, 8),
    ('"a\\"b", 1', 0, 6),
    ('[{"a": [', 0, None),
])
def test_end_of_a_json_value_is_found_without_decoding(text: str, start: int, end: int | None) -> None:
    assert end_of_json_value(text, start) == end


def test_every_route_with_a_json_body_decodes_it_by_the_rules() -> None:
    routers = [value for module in pkgutil.iter_modules(routes.__path__)
               for value in vars(importlib.import_module(f"{routes.__name__}.{module.name}")).values()
               if isinstance(value, APIRouter)]
    with_body = [route for router in routers for route in router.routes
                 if isinstance(route, APIRoute) and route.body_field is not None]
    assert len(with_body) >= 18  # every POST and PUT but the import, which streams its body
    assert [r.path for r in with_body if not isinstance(r, JsonRulesRoute)] == []


def test_the_rules_load_in_a_worker_without_the_orm_or_the_web_framework() -> None:
    program = ("import sys, outdial.imports.checking, outdial.validation; print(sorted(m for m in "
               "('sqlalchemy', 'fastapi', 'starlette', 'pydantic') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"
