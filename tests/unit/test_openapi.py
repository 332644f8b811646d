"""The OpenAPI document is complete enough for a client generator and for /docs to send requests."""

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openapi_schema_validator import validate as validate_instance
from openapi_spec_validator import validate

from outdial.api import create_app
from outdial.imports.reading import MEDIA_TYPES
from outdial.settings import Settings

PUBLIC = {("post", "/auth/login"), ("get", "/health")}
CREDENTIALS = [{"token": []}, {"bearer": []}, {"accesskey": []}]


@pytest.fixture(scope="module")
def app() -> Any:
    # Neither the document nor the docs pages touch the database: the app is never started.
    return create_app(Settings(database_url="sqlite+aiosqlite:///unused.db"))


@pytest.fixture(scope="module")
def document(app: Any) -> dict[str, Any]:
    return app.openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def properties(name: str, schema: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property of a schema, at any depth, as (dotted name, its schema)."""
    if isinstance(schema, dict):
        for key, value in schema.get("properties", {}).items():
            yield f"{name}.{key}", value
            yield from properties(f"{name}.{key}", value)
        for key in ("items", "anyOf", "oneOf", "allOf", "additionalProperties"):
            for part in schema.get(key) if isinstance(schema.get(key), list) else [schema.get(key)]:
                yield from properties(name, part)


def test_the_document_is_a_valid_openapi_document(document: dict[str, Any]) -> None:
    validate(document)  # raises OpenAPIValidationError naming the fault
    assert document["openapi"].startswith("3.")


def test_the_three_credentials_are_security_schemes(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert {name: (s["type"], s.get("in"), s.get("name"), s.get("scheme")) for name, s in schemes.items()} == {
        "token": ("apiKey", "query", "token", None),
        "bearer": ("http", None, None, "bearer"),
        "accesskey": ("apiKey", "query", "accesskey", None),
    }
    assert all(s["description"] for s in schemes.values())


def test_every_authenticated_operation_requires_a_credential_and_no_other_does(document: dict[str, Any]) -> None:
    checked = 0
    for method, path, operation in operations(document):
        if (method, path) in PUBLIC:
            assert "security" not in operation, (method, path)
        else:
            # Any one of the three will do (a list of alternatives), in the order they are checked.
            assert operation.get("security") == CREDENTIALS, (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
            checked += 1
    assert checked >= 40
    # The credentials are schemes, not parameters that a generator would add to every call.
    parameters = {p["name"] for _, _, op in operations(document) for p in op.get("parameters", [])}
    assert not parameters & {"token", "accesskey", "Authorization"}


def test_operation_ids_are_unique_function_names(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(set(ids)) == len(ids)
    assert {"create_outdial", "create_import", "list_targets", "login"} <= set(ids)


def test_every_operation_and_parameter_has_a_description(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        assert operation.get("summary") and operation.get("description"), (method, path)
        for parameter in operation.get("parameters", []):
            assert parameter.get("description"), (method, path, parameter["name"])


def test_every_schema_property_has_a_description(document: dict[str, Any]) -> None:
    schemas: list[tuple[str, Any]] = list(document["components"]["schemas"].items())
    for method, path, operation in operations(document):  # inline schemas (the import body)
        for media, content in operation.get("requestBody", {}).get("content", {}).items():
            schemas.append((f"{method} {path} {media}", content["schema"]))
    missing = [name for schema_name, schema in schemas for name, prop in properties(schema_name, schema)
               if not prop.get("description")]
    assert missing == []
    assert len([1 for n, s in schemas for _ in properties(n, s)]) >= 200


def test_every_request_body_has_an_example_that_fits_its_schema(document: dict[str, Any]) -> None:
    bodies = 0
    for method, path, operation in operations(document):
        for media, content in operation.get("requestBody", {}).get("content", {}).items():
            examples = ([content["example"]] if "example" in content
                        else resolve(document, content["schema"]).get("examples"))
            assert examples, (method, path, media)
            for example in examples:  # raises ValidationError naming the misfit
                validate_instance(example, {**content["schema"], "components": document["components"]})
            bodies += 1
    assert bodies >= 20


def test_every_error_answer_is_the_envelope(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        errors = {code: answer for code, answer in operation["responses"].items() if code[0] in "45"}
        assert errors, (method, path)
        for answer in errors.values():
            schema = answer["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, (method, path)
    envelope = document["components"]["schemas"]["ErrorDetail"]
    assert set(envelope["required"]) == {"status", "reason", "message", "request_id"}


def test_the_import_body_offers_the_three_formats_it_reads(document: dict[str, Any]) -> None:
    body = document["paths"]["/v1.0/outdials/{outdial_id}/imports"]["post"]["requestBody"]
    assert body["required"] is True
    assert set(body["content"]) == set(MEDIA_TYPES)
    # A file picker in Swagger UI: OpenAPI 3.1 marks file contents with contentMediaType.
    for media in ("text/csv", "application/x-ndjson"):
        assert body["content"][media]["schema"]["contentMediaType"] == media
    assert body["content"]["application/json"]["schema"]["type"] == "array"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_link_only_to_this_server(app: Any, page: str) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://outdial") as http:
        html = await http.get(page)
        assert html.status_code == 200
        assert "default-src 'self'" in html.headers["content-security-policy"]
        links = re.findall(r"""(?:src|href)=["']([^"']+)""", html.text)
        assert links and all(link.startswith("/") for link in links), links
        for link in links:
            asset = await http.get(link)
            assert asset.status_code == 200 and len(asset.content) > 1000, link
