"""End to end over real channels: `outdial serve` with SIPp as the SIP trunk and aiosmtpd as the
SMTP relay; one campaign over tel, sip and email targets, driven over HTTP to the end."""

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from outdial.db import Database
from outdial.engine.audit import audit_campaign
from tests.e2e.test_serve import Server
from tests.sip.sipp import DTMF_1_PCAP, Sipp
from tests.smtp_support import Relay

pytestmark = pytest.mark.slow

ACTIONS = [
    {"type": "answer"},
    {"type": "digits_receive", "option": {"duration": 8000, "length": 1}},
    {"type": "hangup"},
    {"type": "email_send", "option": {"subject": "Thanks, {{ name }}",
                                      "content": "Dear {{ name }}, about {{ outdial_data }}."}},
]


async def test_a_campaign_calls_collects_a_key_and_emails_over_http(
    database_url: str, tmp_path: Path, relay: Relay
) -> None:
    env = {**os.environ, "OUTDIAL_DATABASE_URL": database_url,
           "OUTDIAL_ADMIN_PASSWORD": "admin-pw-123", "OUTDIAL_ENGINE_POLL_SECONDS": "0.05",
           "OUTDIAL_CHANNEL_SECRET_KEY": "e2e channel key"}
    async with Sipp("answer_dtmf.xml", tmp_path, fill={"pcap": str(DTMF_1_PCAP)}, calls=3,
                    timeout=90) as sipp:
        server = Server(env, tmp_path / "serve.log")
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                campaign_id = await drive(http, sipp, relay)
        finally:
            server.stop()
        assert await sipp.finished() == 0, sipp.explain()

    database = Database(database_url)
    try:
        async with database.transaction() as session:
            assert await audit_campaign(session, uuid.UUID(campaign_id)) == []
    finally:
        await database.dispose()
    [received] = relay.handler.received
    assert received.recipients == ["carol@example.com"]
    assert received.message["Subject"] == "Thanks, Carol"
    assert received.message.get_content() == "Dear Carol, about the spring offer."


async def drive(http: httpx.AsyncClient, sipp: Sipp, relay: Relay) -> str:
    login = await http.post("/auth/login", json={"username": "admin", "password": "admin-pw-123"})
    http.params = httpx.QueryParams({"token": login.json()["token"]})

    async def call(method: str, path: str, body: Any = None) -> Any:
        response = await http.request(method, path, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    trunk = await call("POST", "/v1.0/channels", {"name": "SIPp", "type": "sip", "settings": {
        "host": "127.0.0.1", "port": sipp.port, "transport": "udp", "caller_id": "+15550001111",
        "max_calls": 2, "max_calls_per_second": 5}})
    mail = await call("POST", "/v1.0/channels", {"name": "relay", "type": "smtp",
                                                 "settings": relay.channel_settings()})
    assert mail["settings"]["password"] is None and mail["settings"]["has_password"]
    outplan = await call("POST", "/v1.0/outplans", {
        "name": "once", "dial_timeout": 10000, "try_interval": 0,
        "sip_channel_id": trunk["id"], "email_channel_id": mail["id"]})
    outdial = await call("POST", "/v1.0/outdials", {"name": "people", "data": "the spring offer"})
    people = [("Alice", {"type": "tel", "target": "+15551230001"}),
              ("Bob", {"type": "sip", "target": f"sip:bob@127.0.0.1:{sipp.port}"}),
              ("Carol", {"type": "email", "target": "carol@example.com"}),
              ("Dave", {"type": "tel", "target": "+15551230002"})]
    for name, destination in people:
        await call("POST", f"/v1.0/outdials/{outdial['id']}/targets",
                   {"name": name, "destination_0": destination})
    campaign = await call("POST", "/v1.0/campaigns", {
        "name": "real channels", "end_handle": "stop", "outplan_id": outplan["id"],
        "outdial_id": outdial["id"], "actions": ACTIONS, "concurrency": 4})
    await call("PUT", f"/v1.0/campaigns/{campaign['id']}/status", {"status": "run"})

    deadline = time.monotonic() + 90
    while (await call("GET", f"/v1.0/campaigns/{campaign['id']}"))["status"] != "stop":
        assert time.monotonic() < deadline, "the campaign did not finish"
        await asyncio.sleep(0.2)  # a bounded poll of a real server

    calls = (await call("GET", f"/v1.0/campaigns/{campaign['id']}/campaigncalls"))["result"]
    by_target = {c["destination"]["target"]: c for c in calls}
    assert len(calls) == 4
    for target in ("+15551230001", "+15551230002", f"sip:bob@127.0.0.1:{sipp.port}"):
        placed = by_target[target]
        assert (placed["outcome"], placed["result"]) == ("answered", "success"), placed
        assert (placed["channel_id"], placed["channel_type"]) == (trunk["id"], "sip")
        assert (placed["sip_code"], placed["digits"], placed["hangup_by"]) == (200, "1", "us")
    sent = by_target["carol@example.com"]
    assert (sent["outcome"], sent["channel_id"], sent["channel_type"]) == (
        "answered", mail["id"], "smtp")
    assert sent["smtp_code"] == 250 and sent["message_id"] == (
        relay.handler.received[0].message["Message-ID"])
    targets = (await call("GET", f"/v1.0/outdials/{outdial['id']}/targets"))["result"]
    assert {t["status"] for t in targets} == {"done"}
    return str(campaign["id"])
