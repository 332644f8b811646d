"""The processes that check an import's rows can die (killed, out of memory): the server gets
new ones, a chunk whose process died is checked again, and an import that cannot be checked
fails whole, with a clear error."""

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from outdial.imports import service
from outdial.imports.checking import check_chunk
from outdial.settings import Settings
from tests.conftest import Api, assert_error
from tests.integration.test_imports import CSV, all_targets, new_outdial, upload

# The file the checking function below looks for: a process spawned for the pool imports this
# module afresh, so what it does is told through the file system.
MARK = "OUTDIAL_TEST_CHECKER_MARK"


def dies_once(chunk: Any, rules: Any) -> Any:
    """check_chunk, but the first call (the mark file not there yet) kills its process."""
    mark = Path(os.environ[MARK])
    if not mark.exists():
        mark.write_text("died")
        os._exit(1)
    return check_chunk(chunk, rules)


def always_dies(chunk: Any, rules: Any) -> Any:
    os._exit(1)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"import_workers": 1})


def rows(count: int) -> str:
    return "destination_0\n" + "".join(f"+1555{i:07d}\n" for i in range(count))


async def test_a_killed_checking_process_is_replaced_for_the_next_import(api: Api, app: Any) -> None:
    outdial = await new_outdial(api)
    assert (await upload(api, outdial, rows(3), CSV)).json()["status"] == "done"
    for process in list(app.state.imports._pool._processes.values()):
        process.kill()
        process.join()

    response = await upload(api, outdial, rows(5), CSV, dedupe="true")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "done"
    assert response.json()["rows_imported"] == 2  # the three of the first import were kept
    assert len(await all_targets(api, outdial)) == 5


async def test_a_chunk_whose_process_died_is_checked_again(
    api: Api, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MARK, str(tmp_path / "mark"))  # the spawned process inherits it
    monkeypatch.setattr(service, "check_chunk", dies_once)
    outdial = await new_outdial(api)

    response = await upload(api, outdial, rows(4), CSV)

    assert (tmp_path / "mark").read_text() == "died"
    assert response.json()["status"] == "done", response.text
    assert response.json()["rows_imported"] == 4
    assert len(await all_targets(api, outdial)) == 4


async def test_rows_no_process_can_check_fail_the_import_whole(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "check_chunk", always_dies)
    outdial = await new_outdial(api)

    response = await upload(api, outdial, rows(4), CSV)

    assert "send the file again" in assert_error(response, 503, "IMPORT_CHECKER_STOPPED")["message"]
    assert await all_targets(api, outdial) == []
    jobs = (await api.get(f"/v1.0/outdials/{outdial}/imports")).json()["result"]
    assert [job["status"] for job in jobs] == ["failed"]
    monkeypatch.setattr(service, "check_chunk", check_chunk)
    assert (await upload(api, outdial, rows(4), CSV)).json()["rows_imported"] == 4


async def test_two_imports_whose_pool_breaks_at_once_both_finish(
    api: Api, app: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Both imports' chunks wait on the one checking process when it dies: both see the pool
    broken. The first to notice replaces it; the other must not shut the new one down under
    it (nor make a third), and both retry their chunk on it."""
    monkeypatch.setenv(MARK, str(tmp_path / "mark"))
    monkeypatch.setattr(service, "check_chunk", dies_once)
    pools: list[Any] = []

    class CountedPool(service.ProcessPoolExecutor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            pools.append(self)

    monkeypatch.setattr(service, "ProcessPoolExecutor", CountedPool)
    first, second = await new_outdial(api), await new_outdial(api)

    responses = await asyncio.gather(upload(api, first, rows(4), CSV),
                                     upload(api, second, rows(6), CSV))

    assert (tmp_path / "mark").read_text() == "died"
    assert [r.json()["status"] for r in responses] == ["done", "done"], responses[1].text
    assert [r.json()["rows_imported"] for r in responses] == [4, 6]
    assert (len(await all_targets(api, first)), len(await all_targets(api, second))) == (4, 6)
    assert len(pools) == 2 and app.state.imports._pool is pools[1]  # one replacement
    assert len(pools[1]._processes) == 1
