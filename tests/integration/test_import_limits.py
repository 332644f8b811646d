"""The import route streams bodies past the API's 1 MiB cap, up to a limit of its own."""

from collections.abc import AsyncIterator

import pytest

from outdial.settings import Settings
from tests.conftest import Api, assert_error


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"import_workers": 0, "max_import_bytes": 64 * 1024,
                                       "max_body_bytes": 16 * 1024})


async def rows(count: int) -> AsyncIterator[bytes]:
    yield b"destination_0\n"
    for n in range(count):
        yield f"+1555987{n % 10000:04d}\n".encode()


async def test_an_import_larger_than_the_json_cap_is_streamed_in(api: Api) -> None:
    outdial = (await api.post("/v1.0/outdials", json={})).json()["id"]
    response = await api.post(f"/v1.0/outdials/{outdial}/imports", content=rows(3000),
                              headers={"content-type": "text/csv"})  # ~39 KB: over 16 KiB
    assert response.status_code == 200, response.text
    assert response.json()["rows_imported"] == 3000


async def test_an_import_over_its_own_limit_is_413_and_imports_nothing(api: Api) -> None:
    outdial = (await api.post("/v1.0/outdials", json={})).json()["id"]
    response = await api.post(f"/v1.0/outdials/{outdial}/imports", content=rows(6000),
                              headers={"content-type": "text/csv"})  # ~78 KB: over 64 KiB
    assert_error(response, 413, "REQUEST_BODY_TOO_LARGE")
    stats = (await api.get(f"/v1.0/outdials/{outdial}/stats")).json()
    assert stats["targets"] == 0
