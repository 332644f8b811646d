"""Import jobs under pressure: concurrent dedupe, leases, client-chosen ids, the list call,
and uploads that are not an import file."""

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from outdial.clock import FakeClock
from outdial.imports.service import ABANDONED, fail_expired_imports
from outdial.models import ImportJob, ImportRowError, ImportRowTarget, OutdialTarget
from outdial.settings import Settings
from tests.conftest import Api, assert_error, make_tenant
from tests.integration.test_imports import CSV, JSON, NDJSON, new_outdial, upload

LEASE = 30.0


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    return settings.model_copy(update={"import_workers": 0, "import_lease_seconds": LEASE,
                                       **getattr(request, "param", {})})


async def eventually(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 20) -> None:
    """Wait (bounded) for work another task does: the clock is fake, the I/O is not."""
    for _ in range(int(seconds / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting until {what}")


async def job_row(app: Any, job_id: str) -> ImportJob:
    # The API's reads: on SQLite they never queue behind a writer (an import holds the
    # database's one writer while it writes a chunk, longer than a lock timeout under load).
    async with app.state.read_database.sessions() as session:
        job = await session.get(ImportJob, uuid.UUID(job_id))
        assert job is not None
        return job


class StalledUpload:
    """An upload that sends its first rows, then waits until released."""

    def __init__(self, head: str, tail: str = "") -> None:
        self.head, self.tail = head, tail
        self.sent = asyncio.Event()
        self.release = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.head.encode()
        self.sent.set()
        await self.release.wait()
        if self.tail:
            yield self.tail.encode()


def numbers(count: int, start: int = 0) -> str:
    return "".join(f"+1555{i:07d}\n" for i in range(start, start + count))


# -- dedupe under concurrency ------------------------------------------------------------------

# On SQLite a request waits for the single writer while an import writes its rows at its end;
# here the requests must all get in, whatever the machine's speed.
@pytest.mark.parametrize("settings", [{"db_lock_timeout_seconds": 60}], indirect=True, ids=["patient"])
async def test_three_concurrent_deduping_imports_add_each_number_once(api: Api) -> None:
    outdial = await new_outdial(api)
    body = "destination_0\n" + numbers(20_000)
    responses = await asyncio.gather(*(upload(api, outdial, body, CSV, dedupe="true") for _ in range(3)))
    jobs = [r.json() for r in responses]
    assert all(j["status"] == "done" for j in jobs), jobs
    assert sorted(j["rows_imported"] for j in jobs) == [0, 0, 20_000], jobs
    assert sum(j["rows_duplicate"] for j in jobs) == 40_000
    stats = (await api.get(f"/v1.0/outdials/{outdial}/stats")).json()
    assert stats["targets"] == 20_000


@pytest.mark.parametrize("settings", [{"import_dedupe_wait_seconds": 5}], indirect=True, ids=["wait-5s"])
async def test_a_deduping_import_waits_a_bounded_time_for_the_outdials_turn(
    api: Api, app: Any, clock: FakeClock, settings: Settings,
) -> None:
    outdial = await new_outdial(api)
    first = StalledUpload("destination_0\n+15550000001\n", "+15550000002\n")
    holding = asyncio.create_task(api.post(
        f"/v1.0/outdials/{outdial}/imports", content=first, params={"dedupe": "true"},
        headers={"Content-Type": CSV}))
    await asyncio.wait_for(first.sent.wait(), 10)
    waiting = asyncio.create_task(upload(api, outdial, "destination_0\n+15550000001\n", CSV, dedupe="true"))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # the first holds the turn until it ends
    clock.advance(6)  # past the wait, within the first's lease
    error = assert_error(await asyncio.wait_for(waiting, 10), 409, "IMPORT_DEDUPE_BUSY")
    assert "OUTDIAL_IMPORT_DEDUPE_WAIT_SECONDS" in error["message"]
    first.release.set()
    assert (await holding).json()["rows_imported"] == 2
    # The turn is free again; a non-deduping import never waited for it.
    job = (await upload(api, outdial, "destination_0\n+15550000001\n", CSV, dedupe="true")).json()
    assert (job["rows_imported"], job["rows_duplicate"]) == (0, 1)


# -- leases ------------------------------------------------------------------------------------

async def test_a_running_import_keeps_its_lease_and_no_server_fails_it(
    api: Api, app: Any, clock: FakeClock,
) -> None:
    outdial = await new_outdial(api)
    job_id = str(uuid.uuid4())
    stalled = StalledUpload("destination_0\n" + numbers(10), numbers(10, 10))
    posting = asyncio.create_task(api.post(
        f"/v1.0/outdials/{outdial}/imports", content=stalled, params={"id": job_id},
        headers={"Content-Type": CSV}))
    await asyncio.wait_for(stalled.sent.wait(), 10)
    job = await job_row(app, job_id)
    assert job.owner == app.state.imports.owner and job.status == "running"
    start = clock.now()
    assert job.tm_lease_expire == start + dt.timedelta(seconds=LEASE)
    for step in range(1, 10):  # three leases long, a heartbeat each third of one
        clock.advance(LEASE / 3)
        renewed = start + dt.timedelta(seconds=LEASE + step * LEASE / 3)

        async def renewed_to(expected: dt.datetime = renewed) -> bool:
            return (await job_row(app, job_id)).tm_lease_expire == expected

        await eventually(renewed_to, f"the lease is renewed to {renewed}")
        # What a second server does at start-up, and every server from time to time.
        assert await fail_expired_imports(app.state.database, clock) == 0
    stalled.release.set()
    done = (await posting).json()
    assert (done["status"], done["rows_imported"]) == ("done", 20)


async def test_a_job_whose_owner_stopped_renewing_fails_after_its_lease(
    api: Api, app: Any, clock: FakeClock,
) -> None:
    outdial = await new_outdial(api)
    now = clock.now()
    jobs = {"alive": now + dt.timedelta(seconds=LEASE), "expired": now - dt.timedelta(seconds=1),
            "no lease": None, "this server's": now - dt.timedelta(seconds=1)}
    this_server = app.state.imports.owner
    ids = {name: uuid.uuid4() for name in jobs}
    async with app.state.database.transaction() as session:
        owner_customer = (await api.get(f"/v1.0/outdials/{outdial}")).json()["customer_id"]
        for name, expire in jobs.items():
            session.add(ImportJob(
                id=ids[name], customer_id=uuid.UUID(owner_customer), outdial_id=uuid.UUID(outdial),
                status="running", format="csv", default_region="", validation="possible",
                dedupe=False, rows_total=5, rows_imported=0, rows_rejected=0, rows_duplicate=0,
                errors=[], tm_create=now, tm_lease_expire=expire,
                owner=this_server if name == "this server's" else "another-host/1234/abc"))
    assert await fail_expired_imports(app.state.database, clock, this_server) == 2
    statuses = {name: (await job_row(app, str(ids[name]))).status for name in jobs}
    assert statuses == {"alive": "running", "expired": "failed", "no lease": "failed",
                        "this server's": "running"}
    # The server's own reaper fails the last one once its lease has run out.
    clock.advance(LEASE + 1)

    async def failed() -> bool:
        return (await job_row(app, str(ids["alive"]))).status == "failed"

    await eventually(failed, "the reaper fails the job")
    job = (await api.get(f"/v1.0/outdials/{outdial}/imports/{ids['alive']}")).json()
    assert job["errors"][-1] == {"row": 0, "field": "", "message": ABANDONED}
    assert job["rows_imported"] == 0 and job["tm_end"] != "9999-01-01 00:00:00.000000"
    # A server never fails its own jobs (they are alive while it is); another one does.
    assert (await job_row(app, str(ids["this server's"]))).status == "running"
    assert await fail_expired_imports(app.state.database, clock, "another server") == 1


# -- bounded error reports ---------------------------------------------------------------------

@pytest.mark.parametrize("settings", [{"import_error_rows": 5}], indirect=True, ids=["cap-5"])
async def test_the_full_error_report_is_capped(api: Api) -> None:
    outdial = await new_outdial(api)
    body = "destination_0\n" + "+1\n" * 20 + "+15559876543\n"
    job = (await upload(api, outdial, body, CSV)).json()
    assert (job["rows_rejected"], job["rows_imported"]) == (20, 1)
    report = await api.get(f"/v1.0/outdials/{outdial}/imports/{job['id']}/errors")
    assert [line.split(",")[0] for line in report.text.splitlines()[1:]] == ["1", "2", "3", "4", "5"]


# -- client-chosen ids and the list ------------------------------------------------------------

async def test_a_client_chosen_id_names_the_job_and_is_unique_under_concurrency(api: Api) -> None:
    outdial = await new_outdial(api)
    job_id = str(uuid.uuid4())
    body = "destination_0\n" + numbers(2000)
    first, second = await asyncio.gather(*(upload(api, outdial, body, CSV, id=job_id) for _ in range(2)))
    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [200, 409], (first.text, second.text)
    loser = first if first.status_code == 409 else second
    winner = second if loser is first else first
    assert_error(loser, 409, "IMPORT_EXISTS")
    assert winner.json()["id"] == job_id and winner.json()["rows_imported"] == 2000
    assert (await api.get(f"/v1.0/outdials/{outdial}/stats")).json()["targets"] == 2000
    for bad in ("nope", "00000000-0000-0000-0000-000000000000", str(uuid.uuid1())):
        assert_error(await upload(api, outdial, body, CSV, id=bad), 400, "INVALID_ID")


async def test_imports_are_listed_newest_first_in_pages_for_their_tenant_only(
    api: Api, app: Any, clock: FakeClock,
) -> None:
    outdial, other = await new_outdial(api), await new_outdial(api)
    made = []
    for n in range(3):
        clock.advance(1)
        made.append((await upload(api, outdial, f"destination_0\n+1555000000{n}\n", CSV)).json()["id"])
    await upload(api, other, "destination_0\n+15550000009\n", CSV)
    listed = await api.get(f"/v1.0/outdials/{outdial}/imports", params={"page_size": 2})
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert [j["id"] for j in page["result"]] == made[:0:-1]
    assert page["result"][0]["status"] == "done"
    rest = (await api.get(f"/v1.0/outdials/{outdial}/imports",
                          params={"page_token": page["next_page_token"]})).json()
    assert [j["id"] for j in rest["result"]] == made[:1]
    stranger = await make_tenant(app, clock, "stranger")
    assert_error(await api.get(f"/v1.0/outdials/{outdial}/imports", token=stranger), 404, "OUTDIAL_NOT_FOUND")
    assert_error(await api.get("/v1.0/outdials/nope/imports"), 400, "INVALID_ID")


# -- what is not an import file ----------------------------------------------------------------

BINARY = bytes(range(256)) * 64


@pytest.mark.parametrize("content_type", [CSV, NDJSON, JSON])
async def test_binary_data_is_refused_whole(api: Api, content_type: str) -> None:
    outdial = await new_outdial(api)
    body = (b"destination_0\n" if content_type == CSV else b"") + BINARY
    error = assert_error(await upload(api, outdial, body, content_type), 400, "INVALID_IMPORT_FILE")
    assert "not UTF-8" in error["message"]
    assert (await api.get(f"/v1.0/outdials/{outdial}/stats")).json()["targets"] == 0


@pytest.mark.parametrize("content_type", [CSV, NDJSON, JSON])
@pytest.mark.parametrize("body", ["", "\n\n", "[]"], ids=["empty", "blank", "empty-array"])
async def test_an_upload_without_rows_is_refused(api: Api, content_type: str, body: str) -> None:
    if body == "[]" and content_type != JSON:
        body = "destination_0\n" if content_type == CSV else " \n"
    outdial = await new_outdial(api)
    error = assert_error(await upload(api, outdial, body, content_type), 400, "INVALID_IMPORT_FILE")
    assert "--data-binary" in error["message"], error
    jobs = (await api.get(f"/v1.0/outdials/{outdial}/imports")).json()["result"]
    assert [j["status"] for j in jobs] == ["failed"]


async def test_curl_dash_d_is_told_to_send_the_file_as_it_is(api: Api) -> None:
    outdial = await new_outdial(api)
    lines = "name,destination_0,destination_1\nAlice,+15559876543,\nAnn,+15559876544,\n"
    stripped = lines.replace("\n", "")  # what `curl -d @list.csv` sends
    for content_type, reason in (("application/x-www-form-urlencoded", "UNSUPPORTED_CONTENT_TYPE"),
                                 (CSV, "INVALID_IMPORT_FILE")):
        error = assert_error(await upload(api, outdial, stripped, content_type), 400, reason)
        assert "--data-binary" in error["message"], error


@pytest.mark.parametrize("delimiter", [";", "\t"], ids=["semicolon", "tab"])
async def test_semicolon_and_tab_separated_files_are_read(api: Api, delimiter: str) -> None:
    outdial = await new_outdial(api)
    body = "".join(delimiter.join(row) + "\n" for row in (
        ("name", "data", "destination_0"), ("Ann", "a,b", "+15559876543"), ("Bob", "", "+1")))
    job = (await upload(api, outdial, body, CSV)).json()
    assert (job["status"], job["rows_imported"], job["rows_rejected"]) == ("done", 1, 1), job
    exported = (await api.get(f"/v1.0/outdials/{outdial}/targets/export", params={"format": "ndjson"})).text
    target = json.loads(exported.splitlines()[0])
    assert (target["name"], target["data"], target["destination_0"]["target"]) == ("Ann", "a,b", "+15559876543")


@pytest.mark.parametrize("header", ["name,destination_0Ann", "destination_0,destination_5",
                                    "destination_0,destination"])
async def test_an_unknown_destination_column_is_refused_by_name(api: Api, header: str) -> None:
    outdial = await new_outdial(api)
    error = assert_error(await upload(api, outdial, f"{header}\nx,+15559876543\n", CSV), 400, "INVALID_IMPORT_FILE")
    unknown = header.split(",")[1].lower()
    assert f"unknown column '{unknown}'" in error["message"]


@pytest.mark.parametrize("header", ["destination_0,destination_0", "name,destination_0,NAME",
                                    "destination_0,timezone,Timezone "])
async def test_a_column_named_twice_is_refused(api: Api, header: str) -> None:
    """Only one of the two could be read: the other's numbers would be dropped unsaid."""
    outdial = await new_outdial(api)
    body = f"{header}\n+12125550130,+12125550131,x\n"
    error = assert_error(await upload(api, outdial, body, CSV), 400, "INVALID_IMPORT_FILE")
    twice = header.split(",")[-1].strip().lower()
    assert f"names the column '{twice}' twice" in error["message"]
    assert (await api.get(f"/v1.0/outdials/{outdial}/targets")).json()["result"] == []
    # A column the import does not read may repeat (an export's, a spreadsheet's notes).
    job = await upload(api, outdial, "notes,destination_0,notes\na,+12125550130,b\n", CSV)
    assert job.json()["rows_imported"] == 1, job.text


async def test_a_header_naming_no_destination_says_which_separators_are_read(api: Api) -> None:
    outdial = await new_outdial(api)
    error = assert_error(await upload(api, outdial, "name|destination_0\nx|+15559876543\n", CSV),
                         400, "INVALID_IMPORT_FILE")
    assert "names no destination column" in error["message"] and "semicolons or tabs" in error["message"]


# -- a client that goes away -------------------------------------------------------------------

@pytest.fixture
async def served(app: Any) -> AsyncIterator[str]:
    """The app behind a real socket (uvicorn in this process), for what only a real
    connection does: go away in the middle of a request."""
    import socket

    import uvicorn

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    await eventually(lambda: _now(server.started), "uvicorn is up")
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    server.should_exit = True
    await asyncio.wait_for(serving, 10)


async def _now(value: bool) -> bool:
    return value


async def test_a_client_that_disconnects_mid_upload_fails_the_job_at_once_leaving_nothing(
    api: Api, app: Any, served: str,
) -> None:
    outdial = await new_outdial(api)
    job_id = str(uuid.uuid4())
    host, port = served.split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write((
            f"POST /v1.0/outdials/{outdial}/imports?id={job_id}&token={api.token} HTTP/1.1\r\n"
            f"Host: {served}\r\nContent-Type: text/csv\r\nContent-Length: {100 * 1024 * 1024}\r\n\r\n"
        ).encode())
        writer.write(b"name,destination_0\n")
        # Good rows and bad ones, past a progress write, so that targets, the row mapping and
        # error rows are all being written when the client goes.
        for start in range(0, 60_000, 1000):
            writer.write("".join(f"r{i},+1555{i:07d}\nbad{i},+1\n" for i in range(start, start + 1000)).encode())
            await writer.drain()

        async def progressed() -> bool:
            async with app.state.read_database.sessions() as session:
                job = await session.get(ImportJob, uuid.UUID(job_id))
            return job is not None and job.rows_total > 0

        await eventually(progressed, "the job has reported progress")
    finally:
        writer.transport.abort()  # the client is gone, mid-body (or the test failed)

    async def failed() -> bool:
        return (await job_row(app, job_id)).status == "failed"

    await eventually(failed, "the job is failed", seconds=10)
    job = await job_row(app, job_id)
    assert "client disconnected" in job.errors[-1]["message"], job.errors[-1]
    async with app.state.read_database.sessions() as session:
        for model in (OutdialTarget, ImportRowError, ImportRowTarget):
            assert await session.scalar(select(func.count()).select_from(model)) == 0, model
    # The server is fine: the next import of the same outdial lands.
    job = (await upload(api, outdial, "destination_0\n+15559876543\n", CSV)).json()
    assert (job["status"], job["rows_imported"]) == ("done", 1)


# -- the outdial or list deleted while its import runs ------------------------------------------

@pytest.mark.parametrize("kind", ["outdial", "dnclist"])
async def test_an_import_whose_outdial_or_list_is_deleted_meanwhile_writes_nothing(
    api: Api, kind: str,
) -> None:
    if kind == "outdial":
        subject = await new_outdial(api)
        base, head, reason = f"/v1.0/outdials/{subject}", "destination_0\n", "OUTDIAL_DELETED"
    else:
        subject = (await api.post("/v1.0/dnclists", json={"name": "opted out"})).json()["id"]
        base, head, reason = f"/v1.0/dnclists/{subject}", "value\n", "DNCLIST_DELETED"
    stalled = StalledUpload(head + numbers(10), numbers(10, 10))
    posting = asyncio.create_task(api.post(f"{base}/imports", content=stalled,
                                           headers={"Content-Type": CSV}))
    await asyncio.wait_for(stalled.sent.wait(), 10)

    assert (await api.delete(base)).status_code == 200
    stalled.release.set()

    error = assert_error(await posting, 409, reason)
    assert "deleted while the file was imported" in error["message"]
    jobs = (await api.get(f"{base}/imports")).json()["result"]
    assert [(job["status"], job["rows_imported"]) for job in jobs] == [("failed", 0)]
    listed = f"{base}/targets" if kind == "outdial" else f"{base}/entries"
    assert (await api.get(listed)).json()["result"] == []
