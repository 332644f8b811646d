"""channels.md §1: the channel resource, typed settings, write-only encrypted passwords,
outplans naming channels, and the run-time check that every destination type has a channel."""

import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from outdial.channels.secrets import SecretBox
from outdial.clock import FakeClock
from outdial.models import Channel
from tests.conftest import Api, assert_error, assert_refused, make_tenant
from tests.integration.campaign_setup import NIL, new_campaign, new_outdial, new_outplan
from tests.sip.sipp import Sipp
from tests.smtp_support import SMTP_PASSWORD, Relay

CHANNEL_FIELDS = ["id", "customer_id", "name", "detail", "type", "settings", "tm_create",
                  "tm_update", "tm_delete"]
NEVER = "9999-01-01 00:00:00.000000"
TRUNK = {"name": "main trunk", "detail": "carrier A", "type": "sip", "settings": {
    "host": "sip.example.net", "port": 5060, "transport": "udp", "username": "acme",
    "password": "trunk-secret-1", "caller_id": "+15550001111"}}
RELAY = {"name": "relay", "type": "smtp", "settings": {
    "host": "smtp.example.net", "username": "acme", "password": "relay-secret-1",
    "from_address": "news@example.com"}}


async def create(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post("/v1.0/channels", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def test_sip_channel_is_created_with_defaults_and_no_password_shown(api: Api) -> None:
    channel = await create(api, TRUNK)

    assert list(channel) == CHANNEL_FIELDS
    assert (channel["name"], channel["type"], channel["tm_update"]) == ("main trunk", "sip", NEVER)
    assert channel["settings"] == {
        "host": "sip.example.net", "port": 5060, "transport": "udp", "username": "acme",
        "password": None, "realm": "", "register": False, "caller_id": "+15550001111",
        "number_format": "e164", "country_code": "", "national_prefix": "0",
        "international_prefix": "00", "register_expires": 3600, "public_host": "",
        "public_port": None, "local_port": 0, "tls_verify": True,
        "max_calls": 30, "max_calls_per_second": 10, "has_password": True,
    }
    assert (await api.get(f"/v1.0/channels/{channel['id']}")).json() == channel
    assert (await api.get("/v1.0/channels")).json()["result"] == [channel]


async def test_password_is_encrypted_at_rest_and_never_logged(
    api: Api, app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    channel = await create(api, TRUNK)
    await api.put(f"/v1.0/channels/{channel['id']}", json={**TRUNK, "name": "renamed"})

    async with app.state.database.transaction() as session:
        row = await session.get(Channel, uuid.UUID(channel["id"]))
    assert row is not None and "password" not in row.settings
    assert row.password_encrypted and "trunk-secret-1" not in row.password_encrypted
    assert app.state.channel_secrets.decrypt(row.password_encrypted) == "trunk-secret-1"
    assert "trunk-secret-1" not in caplog.text


async def test_put_without_password_keeps_it_and_empty_removes_it(api: Api, app: Any) -> None:
    channel = await create(api, TRUNK)
    here = f"/v1.0/channels/{channel['id']}"
    settings = {k: v for k, v in TRUNK["settings"].items() if k != "password"}

    kept = (await api.put(here, json={"name": "n", "settings": {**settings, "port": 5080}})).json()
    assert kept["settings"]["has_password"] is True and kept["settings"]["port"] == 5080
    assert kept["tm_update"] != NEVER
    kept = (await api.put(here, json={"settings": {**settings, "password": None}})).json()
    assert kept["settings"]["has_password"] is True
    changed = (await api.put(here, json={"settings": {**settings, "password": "new-1"}})).json()
    async with app.state.database.transaction() as session:
        row = await session.get(Channel, uuid.UUID(channel["id"]))
    assert row is not None and app.state.channel_secrets.decrypt(row.password_encrypted) == "new-1"
    assert changed["settings"]["password"] is None
    removed = (await api.put(here, json={"settings": {**settings, "password": ""}})).json()
    assert removed["settings"]["has_password"] is False


@pytest.mark.parametrize(("body", "field"), [
    ({"type": "fax", "settings": {}}, "type"),
    ({"type": "sip", "settings": {}}, "settings.host"),
    ({"type": "sip", "settings": {"host": "sip example"}}, "settings.host"),
    ({"type": "sip", "settings": {"host": "h", "port": 70000}}, "settings.port"),
    ({"type": "sip", "settings": {"host": "h", "port": "5060"}}, "settings.port"),
    ({"type": "sip", "settings": {"host": "h", "transport": "sctp"}}, "settings.transport"),
    ({"type": "sip", "settings": {"host": "h", "caller_id": "+1555"}}, "settings.caller_id"),
    ({"type": "sip", "settings": {"host": "h", "pasword": "x"}}, "settings.pasword"),
    ({"type": "sip", "settings": {"host": "h", "number_format": "national"}},
     "settings.country_code"),
    ({"type": "sip", "settings": {"host": "h", "max_calls": 0}}, "settings.max_calls"),
    ({"type": "smtp", "settings": {"host": "h"}}, "settings.from_address"),
    ({"type": "smtp", "settings": {"host": "h", "from_address": "nope"}}, "settings.from_address"),
    ({"type": "smtp", "settings": {"host": "h", "from_address": "a@b.co", "security": "ssl"}},
     "settings.security"),
    ({"type": "simulated", "settings": {"p_answered": -1}}, "settings.p_answered"),
    ({"type": "simulated", "settings": {"p_answered": 0, "p_busy": 0, "p_no_answer": 0,
                                        "p_rejected": 0, "p_failed": 0, "p_unreachable": 0}},
     "settings.p_answered"),
    ({"type": "simulated", "settings": {"p_answered": 1e308, "p_busy": 1e308}},
     "settings.p_answered"),
    ({"type": "simulated", "settings": {"ring_min_ms": 5, "ring_max_ms": 1}},
     "settings.ring_max_ms"),
    ({"type": "simulated", "settings": []}, "settings"),
])
async def test_bad_settings_are_refused_naming_the_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    assert_refused(await api.post("/v1.0/channels", json=body), field)
    assert (await api.get("/v1.0/channels")).json()["result"] == []


async def test_type_cannot_change(api: Api) -> None:
    channel = await create(api, TRUNK)
    message = assert_refused(
        await api.put(f"/v1.0/channels/{channel['id']}", json={**RELAY, "type": "smtp"}), "type"
    )
    assert "sip channel stays one" in message


async def test_deleted_channel_is_readable_and_frozen(api: Api) -> None:
    channel = await create(api, TRUNK)
    deleted = (await api.delete(f"/v1.0/channels/{channel['id']}")).json()
    assert deleted["tm_delete"] != NEVER
    assert (await api.get("/v1.0/channels")).json()["result"] == []
    assert (await api.get(f"/v1.0/channels/{channel['id']}")).json()["tm_delete"] != NEVER
    assert_error(await api.put(f"/v1.0/channels/{channel['id']}", json=TRUNK), 409,
                 "CHANNEL_DELETED")


async def test_plain_agent_is_refused_and_other_tenants_see_nothing(
    api: Api, app: Any, clock: FakeClock
) -> None:
    channel = await create(api, TRUNK)
    agent = await make_tenant(app, clock, "agent-1", permission="agent")
    intruder = await make_tenant(app, clock, "intruder-1")

    assert_error(await api.get("/v1.0/channels", token=agent), 403, "PERMISSION_DENIED")
    for method in ("GET", "PUT", "DELETE"):
        response = await api.call(method, f"/v1.0/channels/{channel['id']}", token=intruder,
                                  json=TRUNK)
        assert_error(response, 404, "CHANNEL_NOT_FOUND")
    assert_error(await api.post(f"/v1.0/channels/{channel['id']}/check", token=intruder), 404,
                 "CHANNEL_NOT_FOUND")
    assert (await api.get("/v1.0/channels", token=intruder)).json()["result"] == []


async def test_outplan_names_its_channels(api: Api) -> None:
    trunk, relay_channel = await create(api, TRUNK), await create(api, RELAY)
    outplan = await new_outplan(api, sip_channel_id=trunk["id"],
                                email_channel_id=relay_channel["id"])
    assert (outplan["sip_channel_id"], outplan["email_channel_id"]) == (
        trunk["id"], relay_channel["id"])

    here = f"/v1.0/outplans/{outplan['id']}/dial_info"
    kept = (await api.put(here, json={"try_interval": 1000})).json()
    assert kept["sip_channel_id"] == trunk["id"]  # left out: kept
    cleared = (await api.put(here, json={"email_channel_id": NIL})).json()
    assert (cleared["sip_channel_id"], cleared["email_channel_id"]) == (trunk["id"], NIL)
    assert (await new_outplan(api))["sip_channel_id"] == NIL


async def test_outplan_channel_must_be_a_live_channel_of_yours_of_the_right_type(
    api: Api, app: Any, clock: FakeClock
) -> None:
    trunk, relay_channel = await create(api, TRUNK), await create(api, RELAY)
    simulated = await create(api, {"type": "simulated"})
    intruder = await make_tenant(app, clock, "intruder-2")
    theirs = (await api.post("/v1.0/channels", json=TRUNK, token=intruder)).json()
    gone = await create(api, TRUNK)
    await api.delete(f"/v1.0/channels/{gone['id']}")

    for body, field, words in [
        ({"sip_channel_id": relay_channel["id"]}, "sip_channel_id", "smtp channel"),
        ({"email_channel_id": trunk["id"]}, "email_channel_id", "sip channel"),
        ({"sip_channel_id": theirs["id"]}, "sip_channel_id", "does not exist"),
        ({"sip_channel_id": gone["id"]}, "sip_channel_id", "is deleted"),
        ({"sip_channel_id": "not-a-uuid"}, "sip_channel_id", "UUID"),
    ]:
        message = assert_refused(await api.post("/v1.0/outplans", json=body), field)
        assert words in message
    both = await new_outplan(api, sip_channel_id=simulated["id"],
                             email_channel_id=simulated["id"])
    assert both["sip_channel_id"] == both["email_channel_id"] == simulated["id"]


async def run(api: Api, campaign: dict[str, Any]) -> Any:
    return await api.put(f"/v1.0/campaigns/{campaign['id']}/status", json={"status": "run"})


async def add_target(api: Api, outdial: dict[str, Any], *destinations: dict[str, str]) -> None:
    body = {f"destination_{n}": d for n, d in enumerate(destinations)}
    response = await api.post(f"/v1.0/outdials/{outdial['id']}/targets", json=body)
    assert response.status_code == 200, response.text


EMAIL_SEND = {"type": "email_send", "option": {"subject": "Hi {{ name }}", "content": "Hello"}}


async def test_run_needs_a_channel_for_every_destination_type_the_outdial_holds(api: Api) -> None:
    trunk = await create(api, TRUNK)
    outdial = await new_outdial(api)
    await add_target(api, outdial, {"type": "tel", "target": "+15559876543"},
                     {"type": "email", "target": "a@example.com"})
    outplan = await new_outplan(api, sip_channel_id=trunk["id"], max_try_count_1=1)
    campaign = await new_campaign(api, outplan, outdial, actions=[EMAIL_SEND])

    error = assert_error(await run(api, campaign), 400, "CHANNEL_MISSING")
    assert error["message"].startswith("email_channel_id:")
    assert "holds email destinations" in error["message"]
    assert (await api.get(f"/v1.0/campaigns/{campaign['id']}")).json()["status"] == "stop"

    # A slot the outplan never tries does not count.
    await api.put(f"/v1.0/outplans/{outplan['id']}/dial_info",
                  json={"max_try_count_0": 1, "max_try_count_1": 0})
    assert (await run(api, campaign)).json()["status"] == "run"


async def test_run_without_any_channel_keeps_the_simulated_quick_start(api: Api) -> None:
    outdial = await new_outdial(api)
    await add_target(api, outdial, {"type": "email", "target": "a@example.com"})
    campaign = await new_campaign(api, outdial=outdial)
    assert (await run(api, campaign)).json()["status"] == "run"


async def test_run_emailing_needs_an_email_send_action(api: Api) -> None:
    relay_channel = await create(api, RELAY)
    outdial = await new_outdial(api)
    await add_target(api, outdial, {"type": "email", "target": "a@example.com"})
    outplan = await new_outplan(api, email_channel_id=relay_channel["id"])
    campaign = await new_campaign(api, outplan, outdial,
                                  actions=[{"type": "talk", "option": {"text": "hi"}}])
    assert_error(await run(api, campaign), 400, "EMAIL_ACTION_MISSING")


async def test_channel_in_use_by_a_running_campaign_cannot_be_deleted(api: Api) -> None:
    trunk = await create(api, TRUNK)
    outdial = await new_outdial(api)
    await add_target(api, outdial, {"type": "tel", "target": "+15559876543"})
    campaign = await new_campaign(api, await new_outplan(api, sip_channel_id=trunk["id"]), outdial)
    assert (await run(api, campaign)).status_code == 200

    assert_error(await api.delete(f"/v1.0/channels/{trunk['id']}"), 409, "CHANNEL_IN_USE")
    await api.put(f"/v1.0/campaigns/{campaign['id']}/status", json={"status": "stop"})
    assert (await api.delete(f"/v1.0/channels/{trunk['id']}")).status_code == 200


@pytest.mark.parametrize(("actions", "field", "words"), [
    ([{"type": "flow"}], "actions.0.type", ("supported: answer, beep, digits_receive, email_send, "
                                            "hangup, play, sleep, talk")),
    ([{"type": "sleep", "option": {"duration": "long"}}], "actions.0.option.duration", ""),
    ([{"type": "email_send", "option": {"subject": "Hi {{ nme }}", "content": "x"}}],
     "actions.0.option.subject", "unknown placeholder 'nme'"),
    ([{"type": "email_send", "option": {"subject": "Hi", "content": "{% if %}"}}],
     "actions.0.option.content", "template syntax error"),
    ([{"type": "email_send", "option": {"subject": "Hi"}}], "actions.0.option.content",
     "must not be empty"),
    # What would make rendering take the server's time or memory: refused, said what.
    ([{"type": "email_send", "option": {"subject": "Hi", "content": (
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}")}}],
     "actions.0.option.content", "{% for %} is not supported in message templates"),
    ([{"type": "email_send", "option": {"subject": "{{ 'x' * 200000000 }}", "content": "x"}}],
     "actions.0.option.subject", "* is not supported"),
    ([{"type": "email_send", "option": {"subject": "Hi", "content": "{{ lipsum(10**8) }}"}}],
     "actions.0.option.content", "a call () is not supported"),
    ([{"type": "email_send", "option": {"subject": "Hi", "content": "{{ name|center(10**9) }}"}}],
     "actions.0.option.content", "the filter 'center' is not supported"),
    ([{"type": "email_send", "option": {"subject": "Hi", "content": "{{ name.__class__ }}"}}],
     "actions.0.option.content", "an attribute (.) is not supported"),
    ([{"type": "email_send", "option": {"subject": "Hi", "content": "{{ name|safe }}"}}],
     "actions.0.option.content", "the filter 'safe' is not supported"),
    ([{"type": "email_send", "option": {"subject": "Hi", "content": "{{ name is nosuchtest }}"}}],
     "actions.0.option.content", "the test 'nosuchtest' is not supported"),
    # A message of many copies of a field: bounded by the uses of placeholders, and before
    # any parse by the length of the template and of its tags.
    ([{"type": "email_send", "option": {"subject": "Hi", "content": (
        "{{ data" + "~data" * 400 + " }}")}}],
     "actions.0.option.content", "uses its placeholders 401 times; at most 200"),
    ([{"type": "email_send", "option": {"subject": "Hi", "content": (
        "{{ data" + "~data" * 13000 + " }}")}}],
     "actions.0.option.content", "tags hold 65010 characters; at most 8192"),

    ([{"type": "email_send", "option": {"subject": 1, "content": "x"}}],
     "actions.0.option.subject", "must be a string"),
])
async def test_campaign_actions_are_checked_when_saved(
    api: Api, actions: list[Any], field: str, words: str
) -> None:
    message = assert_refused(await api.post("/v1.0/campaigns", json={
        "outplan_id": (await new_outplan(api))["id"],
        "outdial_id": (await new_outdial(api))["id"], "actions": actions}), field)
    assert words in message
    campaign = await new_campaign(api)
    assert_refused(await api.put(f"/v1.0/campaigns/{campaign['id']}/actions",
                                 json={"actions": actions}), field)


async def test_check_of_an_smtp_channel_connects_secures_and_authenticates(
    api: Api, relay: Relay
) -> None:
    good = await create(api, {"type": "smtp", "settings": relay.channel_settings()})
    bad = await create(api, {"type": "smtp",
                             "settings": relay.channel_settings(password="wrong-password")})

    answer = (await api.post(f"/v1.0/channels/{good['id']}/check")).json()
    assert answer == {"ok": True, "detail": f"connected to 127.0.0.1:{relay.port}, STARTTLS, "
                                            "AUTH as relay-user accepted"}
    refused = (await api.post(f"/v1.0/channels/{bad['id']}/check")).json()
    assert refused["ok"] is False and "535" in refused["detail"]
    assert SMTP_PASSWORD not in refused["detail"]


async def test_check_of_a_sip_channel_sends_options_to_the_trunk(api: Api, tmp_path: Path) -> None:
    async with Sipp("options.xml", tmp_path) as sipp:
        trunk = await create(api, {"type": "sip", "settings": {
            "host": "127.0.0.1", "port": sipp.port, "username": "acme", "password": "pw-1"}})
        answer = (await api.post(f"/v1.0/channels/{trunk['id']}/check")).json()
        assert await sipp.finished() == 0, sipp.explain()
    assert answer == {"ok": True, "detail": "OPTIONS answered 200 OK"}


async def test_check_of_a_password_the_key_cannot_read_says_so(api: Api, app: Any) -> None:
    channel = await create(api, RELAY)
    async with app.state.database.transaction() as session:
        row = await session.scalar(select(Channel).where(Channel.id == uuid.UUID(channel["id"])))
        row.password_encrypted = SecretBox("another key").encrypt("x")
    answer = (await api.post(f"/v1.0/channels/{channel['id']}/check")).json()
    assert answer["ok"] is False and "OUTDIAL_CHANNEL_SECRET_KEY" in answer["detail"]


async def test_a_check_never_takes_the_fixed_local_port_calls_hold(
    api: Api, tmp_path: Path
) -> None:
    """The trunk's local_port is the engines' (their calls and registration hold it): a check
    talks from a port of its own, so it works while the port is in use and takes nothing
    from the calls."""
    import socket

    from tests.sip.sipp import free_port

    local = free_port()
    engines_port = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # as a dialer holds it
    engines_port.bind(("0.0.0.0", local))
    try:
        async with Sipp("options.xml", tmp_path) as sipp:
            trunk = await create(api, {"type": "sip", "settings": {
                "host": "127.0.0.1", "port": sipp.port, "local_port": local,
                "public_port": local}})
            answer = (await api.post(f"/v1.0/channels/{trunk['id']}/check")).json()
            assert await sipp.finished() == 0, sipp.explain()
    finally:
        engines_port.close()
    assert answer == {"ok": True, "detail": "OPTIONS answered 200 OK"}
    options = sipp.messages()
    assert f":{local};" not in options and f":{local}>" not in options  # announced its own
