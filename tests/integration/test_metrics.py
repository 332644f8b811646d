"""GET /metrics: the counts equal what happened (campaigncalls, import jobs, requests), routes
are labelled by template, and the optional bearer token guards the page."""

import asyncio
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from outdial import metrics
from outdial.clock import FakeClock
from outdial.db import Database
from outdial.dialers import build_dialer
from outdial.engine import Engine, EngineConfig
from outdial.models import Campaigncall
from outdial.settings import Settings
from tests.conftest import Api, assert_error
from tests.engine_support import HangingDialer, advance, eventually, make_campaign, tel

CSV = "text/csv"
Labels = frozenset[tuple[str, str]]


class Scrape:
    """One scrape of /metrics, read with prometheus_client's own parser."""

    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, Labels], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def by(self, name: str, *label_names: str) -> dict[tuple[str, ...], float]:
        """Every series of `name`, keyed by the values of `label_names`."""
        found: dict[tuple[str, ...], float] = {}
        for (sample, labels), value in self.samples.items():
            if sample == name:
                shown = dict(labels)
                found[tuple(shown[n] for n in label_names)] = value
        return found

    def minus(self, before: "Scrape", name: str, *label_names: str) -> dict[tuple[str, ...], float]:
        """What `name` grew by since `before`, by label values; series that did not grow left out."""
        now, then = self.by(name, *label_names), before.by(name, *label_names)
        return {k: v - then.get(k, 0.0) for k, v in now.items() if v != then.get(k, 0.0)}


async def scrape(http: httpx.AsyncClient, **headers: str) -> Scrape:
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(response.text)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Rows checked in the serving process (no checker processes to start); a simulated dialer
    with every outcome, whose calls ring and talk for at most a second of the fake clock."""
    return settings.model_copy(update={
        "import_workers": 0, "sim_seed": 5, "sim_p_no_answer": 0.1,
        "sim_ring_min_ms": 0, "sim_ring_max_ms": 1200, "sim_talk_min_ms": 0,
        "sim_talk_max_ms": 1000,
    })


async def created(api: Api, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(path, json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def calls_by(database: Database, *columns: str) -> Counter[tuple[str, ...]]:
    fields = [getattr(Campaigncall, c) for c in columns]
    async with database.sessions() as session:
        rows = (await session.execute(select(*fields, func.count()).group_by(*fields))).all()
    return Counter({tuple(row[:-1]): row[-1] for row in rows})


async def run_campaign_to_its_end(app: Any, settings: Settings, clock: FakeClock,
                                  campaign_id: str, api: Api) -> None:
    """The engine of `outdial serve`, on the fake clock, until the campaign has stopped."""
    engine = Engine(Database(settings.database_url), build_dialer(settings, clock), clock,
                    EngineConfig(poll_seconds=0.05))
    stop = asyncio.Event()
    running = asyncio.create_task(engine.run(stop))
    try:
        for _ in range(3000):  # bounded: every step moves the clock on by 0.1 s
            status = (await api.get(f"/v1.0/campaigns/{campaign_id}")).json()["status"]
            if status == "stop":
                break
            await advance(clock, 0.1)
            await asyncio.sleep(0.002)  # the engine's database round trips complete
        assert status == "stop"
    finally:
        stop.set()
        await running
        await engine.database.dispose()


async def test_a_campaign_run_an_import_and_requests_are_counted_as_they_happened(
    app: Any, api: Api, settings: Settings, clock: FakeClock
) -> None:
    before = await scrape(api.http)

    # An import with dedupe: 6 rows, one bad number, one number twice.
    outdial = await created(api, "/v1.0/outdials", {"name": "list"})
    rows = ["+15559870001", "+15559870002", "+1", "+15559870003", "+15559870002",
            "someone@example.com"]
    body = "destination_0\n" + "\n".join(rows) + "\n"
    response = await api.post(f"/v1.0/outdials/{outdial['id']}/imports", content=body.encode(),
                              headers={"Content-Type": CSV}, params={"dedupe": "true"})
    job = response.json()
    assert (job["status"], job["rows_imported"], job["rows_rejected"], job["rows_duplicate"]) \
        == ("done", 4, 1, 1), job

    # Sixteen more targets, so that the simulation's outcomes (drawn per target id) are a mix
    # in practice: with 20 to 40 attempts, fewer than three outcomes is a chance below 1 in 1,000.
    for n in range(16):
        await created(api, f"/v1.0/outdials/{outdial['id']}/targets", {
            "name": f"extra {n}", "destination_0": {"type": "tel", "target": f"+1555988{n:04d}"}})

    # A campaign over the list, two tries a target, run to its end.
    outplan = await created(api, "/v1.0/outplans", {
        "name": "plan", "dial_timeout": 1000, "try_interval": 0, "max_try_count_0": 2})
    campaign = await created(api, "/v1.0/campaigns", {
        "name": "c", "outplan_id": outplan["id"], "outdial_id": outdial["id"], "end_handle": "stop",
        "concurrency": 3, "dial_rate": 100})
    assert (await api.put(f"/v1.0/campaigns/{campaign['id']}/status",
                          json={"status": "run"})).status_code == 200
    await run_campaign_to_its_end(app, settings, clock, campaign["id"], api)

    # A few more requests: two outdials read by id, one missing, one path that is no route.
    other = (await api.post("/v1.0/outdials", json={"name": "other"})).json()
    for outdial_id in (outdial["id"], other["id"]):
        assert (await api.get(f"/v1.0/outdials/{outdial_id}")).status_code == 200
    assert (await api.get(f"/v1.0/outdials/{uuid.uuid4()}")).status_code == 404
    assert (await api.get("/v1.0/outdials/")).status_code == 200  # the trailing slash's route
    assert (await api.get("/no/such/route")).status_code == 404

    after = await scrape(api.http)
    database: Database = app.state.database

    # Attempts: started by channel type and ended by outcome equal the campaigncalls.
    by_channel = await calls_by(database, "channel_type")
    assert 20 <= sum(by_channel.values()) <= 40  # one or two tries for each of the 20 targets
    assert after.minus(before, "outdial_attempts_started_total", "channel_type") == {
        (metrics.channel_label(channel),): float(n) for (channel,), n in by_channel.items()}
    by_outcome = await calls_by(database, "outcome", "channel_type")
    assert len({outcome for outcome, _ in by_outcome}) >= 3  # the simulation drew a mix
    assert after.minus(before, "outdial_attempts_ended_total", "outcome", "channel_type") == {
        (outcome, metrics.channel_label(channel)): float(n)
        for (outcome, channel), n in by_outcome.items()}
    assert after.value("outdial_attempts_in_flight") == before.value("outdial_attempts_in_flight")
    claims = after.value("outdial_claim_duration_seconds_count") \
        - before.value("outdial_claim_duration_seconds_count")
    assert claims >= 4  # one claim transaction per engine round at least
    assert after.value("outdial_claim_duration_seconds_sum") \
        > before.value("outdial_claim_duration_seconds_sum")

    # Import rows by result, and the job.
    assert after.minus(before, "outdial_import_rows_total", "result") == {
        ("imported",): 4.0, ("rejected",): 1.0, ("duplicate",): 1.0}
    assert after.minus(before, "outdial_import_jobs_total", "status") == {("done",): 1.0}

    # Requests by route template, never by raw path.
    requests = after.minus(before, "outdial_http_requests_total", "method", "route", "status")
    assert requests[("POST", "/v1.0/outdials/{outdial_id}/imports", "200")] == 1
    assert requests[("GET", "/v1.0/outdials/{outdial_id}", "200")] == 2
    assert requests[("GET", "/v1.0/outdials/{outdial_id}", "404")] == 1
    assert requests[("GET", "/v1.0/outdials", "200")] == 1
    assert requests[("GET", "unmatched", "404")] == 1
    assert requests[("PUT", "/v1.0/campaigns/{campaign_id}/status", "200")] == 1
    polls = requests[("GET", "/v1.0/campaigns/{campaign_id}", "200")]
    assert polls >= 2
    assert requests[("GET", "/metrics", "200")] == 1  # the first scrape; this one is not done yet
    routes = {route for _, route, _ in after.by("outdial_http_requests_total", "method", "route",
                                                "status")}
    assert not any(outdial["id"] in route or other["id"] in route for route in routes)
    durations = after.minus(before, "outdial_http_request_duration_seconds_count", "method", "route")
    assert durations[("GET", "/v1.0/outdials/{outdial_id}")] == 3
    assert durations[("GET", "/v1.0/campaigns/{campaign_id}")] == polls


async def test_a_failed_import_counts_its_rows_as_discarded(api: Api) -> None:
    before = await scrape(api.http)
    outdial = (await api.post("/v1.0/outdials", json={"name": "list"})).json()
    body = '[{"destination_0": "+15559876543"}, {"destination_0": '  # cut short
    response = await api.post(f"/v1.0/outdials/{outdial['id']}/imports", content=body.encode(),
                              headers={"Content-Type": "application/json"})
    assert_error(response, 400, "INVALID_IMPORT_FILE")
    after = await scrape(api.http)
    assert after.minus(before, "outdial_import_jobs_total", "status") == {("failed",): 1.0}
    imported = after.minus(before, "outdial_import_rows_total", "result")
    assert set(imported) <= {("discarded",)}  # the rows read before the break, none written
    assert after.minus(before, "outdial_http_requests_total", "method", "route", "status")[
        ("POST", "/v1.0/outdials/{outdial_id}/imports", "400")] == 1


async def test_attempts_reaped_after_their_worker_died_end_as_failed(
    api: Api, database: Database, clock: FakeClock
) -> None:
    before = await scrape(api.http)
    scenario = await make_campaign(
        database, clock, targets=[[tel(f"+1555000000{n}")] for n in range(3)])
    dead = Engine(database, HangingDialer(), clock, EngineConfig(lease_seconds=3))
    assert await dead.step() == 3
    during = await scrape(api.http)
    assert during.value("outdial_attempts_in_flight") \
        == before.value("outdial_attempts_in_flight") + 3
    # The worker dies: its attempts stop without a word written.
    for task in list(dead._tasks.values()):
        task.cancel()
    await eventually(lambda: dead.in_flight == 0)
    await advance(clock, 4)  # past the lease
    survivor = Engine(database, HangingDialer(), clock, EngineConfig(lease_seconds=3))
    assert await survivor.reap_if_due() == 3

    after = await scrape(api.http)
    assert after.value("outdial_attempts_in_flight") == before.value("outdial_attempts_in_flight")
    assert after.value("outdial_attempts_reaped_total") \
        - before.value("outdial_attempts_reaped_total") == 3
    ended = after.minus(before, "outdial_attempts_ended_total", "outcome", "channel_type")
    assert ended == {("failed", "simulated"): 3.0}
    assert [c.outcome for c in await scenario.calls()] == ["failed"] * 3


@pytest.mark.parametrize("header", [
    None, "Bearer wrong-token", "Basic c2NyYXBlOnNlY3JldA==", "Bearer", "s3cret-metrics-token",
])
async def test_a_metrics_token_is_required_when_set(
    settings: Settings, clock: FakeClock, header: str | None
) -> None:
    from outdial.api import create_app

    guarded = create_app(settings.model_copy(update={"metrics_token": "s3cret-metrics-token"}),
                         clock=clock)
    async with guarded.router.lifespan_context(guarded), httpx.AsyncClient(
        transport=httpx.ASGITransport(guarded), base_url="http://outdial.test") as http:
        headers = {} if header is None else {"Authorization": header}
        refused = await http.get("/metrics", headers=headers)
        error = assert_error(refused, 401, "METRICS_TOKEN_REQUIRED")
        assert "OUTDIAL_METRICS_TOKEN" in error["message"]
        assert refused.headers["www-authenticate"].startswith("Bearer")
        # The scheme is case-insensitive; a tenant's credentials do not open it.
        for good in ("Bearer s3cret-metrics-token", "bearer s3cret-metrics-token"):
            answer = await http.get("/metrics", headers={"Authorization": good})
            assert answer.status_code == 200
            assert "outdial_http_requests_total" in answer.text


async def test_metrics_are_open_without_a_token_and_outside_the_tenant_document(
    app: Any, api: Api
) -> None:
    assert app.state.settings.metrics_token is None
    assert (await api.http.get("/metrics")).status_code == 200
    document = (await api.http.get("/openapi.json")).json()
    assert "/metrics" not in document["paths"]
    assert "/metrics" in document["info"]["description"]
