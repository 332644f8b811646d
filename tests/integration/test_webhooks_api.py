"""observe.md §2: the webhook resource — checked URLs and event types, write-only secrets in
the whsec_ form, tenancy, the SSRF guard at create, the delivery log, retry and test pings."""

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook as Verifier

from outdial.clock import FakeClock, utcnow
from outdial.models import Webhook, WebhookDelivery
from outdial.settings import Settings
from outdial.webhooks.signing import generate_secret
from tests.conftest import Api, assert_error, make_tenant
from tests.webhook_support import Receiver

FIELDS = ["id", "customer_id", "url", "event_types", "status", "detail", "tm_create",
          "tm_update", "tm_delete"]


@pytest.fixture
def clock() -> FakeClock:
    # The receiver checks signatures' timestamps against the real time.
    return FakeClock(utcnow())


@pytest.fixture
def settings(database_url: str) -> Settings:
    from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME
    return Settings(
        database_url=database_url, admin_username=ADMIN_USERNAME, admin_password=ADMIN_PASSWORD,
        secret_key="test-signing-key-that-is-long-enough-for-hs256", engine_in_process=False,
        webhooks_allow_private_networks=True, webhooks_timeout_seconds=5,
    )


@pytest.fixture
def receiver(clock: FakeClock) -> Iterator[Receiver]:
    found = Receiver(clock.now).start()
    yield found
    found.stop()


def assert_refused(response: Any, field: str) -> str:
    error = assert_error(response, 400, "INVALID_ARGUMENT")
    assert error["message"].startswith(f"{field}:"), error["message"]
    return error["message"]


async def create(api: Api, **body: Any) -> dict[str, Any]:
    response = await api.post("/v1.0/webhooks", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def test_create_returns_the_secret_once_and_never_again(api: Api, app: Any) -> None:
    made = await create(api, url="https://hooks.example.com/outdial",
                        event_types=["campaign_updated"])
    secret = made.pop("secret")
    assert list(made) == FIELDS
    assert secret.startswith("whsec_")
    Verifier(secret)  # the convention's library takes it as it is
    assert (made["status"], made["detail"], made["event_types"]) == (
        "enabled", "", ["campaign_updated"])
    shown = (await api.get(f"/v1.0/webhooks/{made['id']}")).json()
    assert shown == made and "secret" not in shown
    assert (await api.get("/v1.0/webhooks")).json()["result"] == [made]
    async with app.state.database.transaction() as session:
        row = await session.get(Webhook, uuid.UUID(made["id"]))
    assert secret not in row.secret_encrypted  # kept encrypted


async def test_client_secret_is_kept_and_bad_ones_refused(api: Api) -> None:
    own = generate_secret()
    assert (await create(api, url="https://a.example.com/", secret=own))["secret"] == own
    for bad in ("nope", "whsec_***", "whsec_" + "QUJD"):  # not base64, then 3 bytes
        assert_refused(await api.post("/v1.0/webhooks", json={
            "url": "https://a.example.com/", "secret": bad}), "secret")


@pytest.mark.parametrize("url", [
    "ftp://files.example.com/x", "/relative", "https://user:pw@example.com/",
    "https://example.com/#frag", "not a url at all", "https://h.example.com:99999/",
    "http://h.example.com:0/",
    # Host names no resolver can look up (a 500, and a deliverer failing in a loop, before).
    "http://xn--zz.com/", f"http://{'a' * 70}.example.com/", "http://a..b/", "http://.a/",
    "http://exa mple.com/", f"http://{'abcdefghi.' * 26}com/",
])
async def test_bad_urls_are_refused(api: Api, url: str) -> None:
    assert_refused(await api.post("/v1.0/webhooks", json={"url": url}), "url")
    webhook = (await api.post("/v1.0/webhooks", json={"url": "https://a.example.com/"})).json()
    assert_refused(await api.put(f"/v1.0/webhooks/{webhook['id']}", json={"url": url}), "url")


async def test_unknown_event_types_are_refused_naming_the_index(api: Api) -> None:
    message = assert_refused(await api.post("/v1.0/webhooks", json={
        "url": "https://a.example.com/", "event_types": ["campaign_updated", "nonsense"]}),
        "event_types.1")
    assert "webhook_disabled" in message  # the catalogue lists it
    assert_refused(await api.post("/v1.0/webhooks", json={
        "url": "https://a.example.com/", "event_types": "campaign_updated"}), "event_types")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.1.2.3", "192.168.0.9",
                                  "169.254.169.254", "[::1]", "224.0.0.1", "0.0.0.0",
                                  "100.64.0.1", "[::ffff:10.0.0.1]",
                                  # IPv6 forms that reach an IPv4 address, and reserved ranges
                                  "[::127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]",
                                  "[64:ff9b::a00:1]", "[fec0::1]"])
async def test_ssrf_guard_refuses_private_addresses_at_create(
    app: Any, clock: FakeClock, host: str
) -> None:
    app.state.settings.webhooks_allow_private_networks = False
    token = await make_tenant(app, clock, f"guarded-{uuid.uuid4().hex[:6]}")
    api = Api(__import__("httpx").AsyncClient(
        transport=__import__("httpx").ASGITransport(app=app), base_url="http://t"), token)
    message = assert_refused(await api.post("/v1.0/webhooks", json={
        "url": f"http://{host}/hook"}), "url")
    assert "OUTDIAL_WEBHOOKS_ALLOW_PRIVATE_NETWORKS" in message


async def test_no_write_waits_for_the_look_up_of_a_webhook_s_host(
    app: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host is looked up outside any transaction: while the look-up hangs, another
    request writes (on SQLite a held transaction would keep the one writer's turn)."""
    import asyncio

    from outdial.webhooks import service

    app.state.settings.webhooks_allow_private_networks = False
    looking_up, answered = asyncio.Event(), asyncio.Event()

    async def hanging_look_up(host: str, port: int, allow_private: bool) -> None:
        looking_up.set()
        await answered.wait()

    monkeypatch.setattr(service, "checked_address", hanging_look_up)
    token = await make_tenant(app, clock, f"lookup-{uuid.uuid4().hex[:6]}")
    api = Api(__import__("httpx").AsyncClient(
        transport=__import__("httpx").ASGITransport(app=app), base_url="http://t"), token)
    creating = asyncio.create_task(api.post("/v1.0/webhooks", json={
        "url": "https://hooks.example.com/in", "event_types": ["campaign_updated"]}))
    await asyncio.wait_for(looking_up.wait(), 10)
    other = await asyncio.wait_for(api.post("/v1.0/outdials", json={"name": "meanwhile"}), 10)
    assert other.status_code == 200, other.text
    answered.set()
    created = await asyncio.wait_for(creating, 10)
    assert created.status_code == 200, created.text


async def test_update_enables_disables_and_rotates_the_secret(api: Api, app: Any) -> None:
    made = await create(api, url="https://a.example.com/")
    here = f"/v1.0/webhooks/{made['id']}"
    off = (await api.put(here, json={"url": "https://b.example.com/", "status": "disabled"})).json()
    assert (off["status"], off["url"], off["detail"]) == (
        "disabled", "https://b.example.com/", "disabled by an update")
    assert_refused(await api.put(here, json={"url": "https://b.example.com/",
                                             "status": "paused"}), "status")
    new_secret = generate_secret()
    on = (await api.put(here, json={"url": "https://b.example.com/", "status": "enabled",
                                    "secret": new_secret})).json()
    assert (on["status"], on["detail"]) == ("enabled", "")
    async with app.state.database.transaction() as session:
        row = await session.get(Webhook, uuid.UUID(made["id"]))
    assert app.state.channel_secrets.decrypt(row.secret_encrypted) == new_secret


async def test_deleted_webhook_is_readable_frozen_and_unlisted(api: Api) -> None:
    made = await create(api, url="https://a.example.com/")
    here = f"/v1.0/webhooks/{made['id']}"
    deleted = (await api.delete(here)).json()
    assert deleted["tm_delete"] != "9999-01-01 00:00:00.000000"
    assert (await api.get("/v1.0/webhooks")).json()["result"] == []
    assert (await api.get(here)).json() == deleted
    assert_error(await api.put(here, json={"url": "https://a.example.com/"}), 409,
                 "WEBHOOK_DELETED")
    assert_error(await api.post(f"{here}/test"), 409, "WEBHOOK_DELETED")


async def test_other_tenants_see_nothing_and_agents_are_refused(
    api: Api, app: Any, clock: FakeClock
) -> None:
    made = await create(api, url="https://a.example.com/")
    here = f"/v1.0/webhooks/{made['id']}"
    intruder = await make_tenant(app, clock, "hook-intruder")
    for method, path in (("GET", here), ("PUT", here), ("DELETE", here),
                         ("GET", f"{here}/deliveries"), ("POST", f"{here}/test"),
                         ("POST", f"{here}/deliveries/{uuid.uuid4()}/retry")):
        kwargs = {"json": {"url": "https://x.example.com/"}} if method == "PUT" else {}
        assert_error(await api.call(method, path, token=intruder, **kwargs), 404,
                     "WEBHOOK_NOT_FOUND")
    assert (await api.get("/v1.0/webhooks", token=intruder)).json()["result"] == []
    agent = await make_tenant(app, clock, "hook-agent", permission="agent")
    assert_error(await api.get("/v1.0/webhooks", token=agent), 403, "PERMISSION_DENIED")


async def test_test_ping_is_signed_logged_and_not_retried(
    api: Api, app: Any, receiver: Receiver
) -> None:
    made = await create(api, url=receiver.url)
    receiver.secret = made["secret"]
    response = await api.post(f"/v1.0/webhooks/{made['id']}/test")
    assert response.status_code == 200, response.text
    ping = response.json()
    assert (ping["status"], ping["response_code"], ping["attempts"], ping["event_type"],
            ping["event_id"]) == ("delivered", 200, 1, "webhook_test", None)
    [got] = receiver.received
    assert got.verified
    assert got.json["type"] == "webhook_test" and got.json["data"]["id"] == made["id"]
    assert got.message_id == f"test_{ping['id']}"
    log = (await api.get(f"/v1.0/webhooks/{made['id']}/deliveries")).json()
    assert log["result"] == [ping]
    assert_error(await api.post(
        f"/v1.0/webhooks/{made['id']}/deliveries/{ping['id']}/retry"), 409, "DELIVERY_IS_TEST")
    receiver.status = lambda n: 503
    failed = (await api.post(f"/v1.0/webhooks/{made['id']}/test")).json()
    assert (failed["status"], failed["response_code"]) == ("failed", 503)
    assert failed["error"] == "the receiver answered 503"


async def test_retry_puts_a_failed_delivery_back_in_line(api: Api, app: Any,
                                                        clock: FakeClock) -> None:
    made = await create(api, url="https://a.example.com/")
    webhook_id = uuid.UUID(made["id"])
    delivery_id = uuid.uuid4()
    async with app.state.database.transaction() as session:
        webhook = await session.get(Webhook, webhook_id)
        session.add(WebhookDelivery(
            id=delivery_id, customer_id=webhook.customer_id, webhook_id=webhook_id,
            event_id=41, event_type="campaign_updated", status="failed", attempts=14,
            next_attempt_at=clock.now(), tm_queued=clock.now(), response_code=500,
            latency_ms=3, error="the receiver answered 500", tm_create=clock.now()))
    clock.advance(60)
    here = f"/v1.0/webhooks/{webhook_id}/deliveries/{delivery_id}/retry"
    again = (await api.post(here)).json()
    assert (again["status"], again["attempts"]) == ("pending", 14)
    async with app.state.database.transaction() as session:
        row = (await session.scalars(select(WebhookDelivery))).one()
    assert row.next_attempt_at == row.tm_queued == clock.now()
    assert_error(await api.post(f"/v1.0/webhooks/{webhook_id}/deliveries/{uuid.uuid4()}/retry"),
                 404, "DELIVERY_NOT_FOUND")
    assert_error(await api.post(f"/v1.0/webhooks/{webhook_id}/deliveries/nope/retry"),
                 400, "INVALID_ID")
