"""The compliance settings through the real `outdial` command against a real `outdial serve`, on
SQLite and PostgreSQL: do-not-call lists and their entries, imports and exports; contact limits;
calling windows, priority and lists on campaigns; retry rules on outplans; and why a target
waits, as the target listing, the target and the statistics show it."""

import csv
import datetime as dt
import time
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_cli import COMMAND_SECONDS, Cli, Result, clean_environment
from tests.e2e.test_serve import Server

pytestmark = pytest.mark.slow

PASSWORD = "compliance-admin-pw"
NEVER = "9999-01-01 00:00:00.000000"


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Iterator[Cli]:
    """The CLI, through OUTDIAL_URL and OUTDIAL_TOKEN, on a server of its own on the database."""
    env = {
        **clean_environment(), "OUTDIAL_DATABASE_URL": database_url,
        "OUTDIAL_ADMIN_USERNAME": "admin", "OUTDIAL_ADMIN_PASSWORD": PASSWORD,
        "OUTDIAL_SECRET_KEY": "e2e-signing-key-that-is-long-enough-for-hs256",
        "OUTDIAL_ENGINE_POLL_SECONDS": "0.05",
        "OUTDIAL_SIM_SEED": "3", "OUTDIAL_SIM_RING_MIN_MS": "20", "OUTDIAL_SIM_RING_MAX_MS": "50",
        "OUTDIAL_SIM_TALK_MIN_MS": "20", "OUTDIAL_SIM_TALK_MAX_MS": "50",
    }
    server = Server(env, tmp_path / "server.log")
    try:
        login = httpx.post(f"{server.url}/auth/login", json={"username": "admin", "password": PASSWORD})
        assert login.status_code == 200, login.text
        yield Cli(tmp_path / "config" / "config.json",
                  {"OUTDIAL_URL": server.url, "OUTDIAL_TOKEN": login.json()["token"]})
    finally:
        server.stop()


def refused(result: Result, code: int = 1) -> str:
    """A mistake the user can fix: the exit code, and one `error:` line, never a traceback."""
    assert result.code == code, (result.code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    if code == 2:  # a usage mistake names the help to read
        assert lines[0].endswith(" --help`)"), lines[0]
    return lines[0]


# --- do-not-call lists ---------------------------------------------------------------------------

def test_dnclists_entries_import_and_export(cli: Cli, tmp_path: Path) -> None:
    created = cli.json("dnclists", "create", "--name", "opted out", "--applies-to-all")
    assert (created["name"], created["applies_to_all"]) == ("opted out", True)
    dnc = created["id"]
    listed = cli.ok("dnclists", "list").stdout
    assert dnc in listed and "opted out" in listed and "yes" in listed

    entry = cli.json("dnclists", "entries", "add", dnc, "(212) 555-0123", "--region", "US",
                     "--expire", "2097-06-30T00:00:00Z")
    assert (entry["type"], entry["value"], entry["dnclist_id"]) == ("tel", "+12125550123", dnc)
    assert entry["tm_expire"].startswith("2097-06-30 00:00:00")
    line = refused(cli("dnclists", "entries", "add", dnc, "+1 212 555 0123"))
    assert "DNC_ENTRY_EXISTS" in line
    refused(cli("dnclists", "entries", "add", dnc, "(212) 555-0124"))  # national, no region

    rows = tmp_path / "optout.csv"
    rows.write_text("value,tm_expire\n+1 312 555 0142,\nAnn@Example.com,2097-01-01T00:00:00Z\n"
                    "+12125550123,\nnot a number,\n")
    result = cli.ok("dnclists", "import", dnc, str(rows), "--json")
    job = result.json()
    assert (job["status"], job["rows_imported"], job["rows_duplicate"], job["rows_rejected"]) == (
        "done", 2, 1, 1)
    assert job["dnclist_id"] == dnc
    follow = f"outdial imports show {job['id']} --dnclist {dnc} --follow"
    assert follow in result.stderr
    assert cli.json(*follow.split()[1:]) == job
    assert [j["id"] for j in cli.json("imports", "list", "--dnclist", dnc)["result"]] == [job["id"]]
    table = cli.ok("dnclists", "import", dnc, str(rows)).stdout  # all known now: duplicates
    assert "rows_duplicate │ 3" in table and "not a number" in table

    entries = cli.json("dnclists", "entries", "list", dnc)["result"]
    assert sorted(e["value"] for e in entries) == ["+12125550123", "+13125550142", "ann@example.com"]
    shown = cli.ok("dnclists", "entries", "list", dnc).stdout
    assert "ann@example.com" in shown and "2097-01-01 00:00:00" in shown

    exported = tmp_path / "now.csv"
    assert "wrote" in cli.ok("dnclists", "export", dnc, "-o", str(exported)).stderr
    with exported.open() as file:
        assert sorted(row["value"] for row in csv.DictReader(file)) == sorted(
            e["value"] for e in entries)
    ndjson = cli.ok("dnclists", "export", dnc, "--format", "ndjson").stdout
    assert len(ndjson.splitlines()) == 3
    copy = cli.json("dnclists", "create", "--name", "copy")
    assert copy["applies_to_all"] is False
    again = cli.json("dnclists", "import", copy["id"], str(exported))
    assert (again["rows_imported"], again["rows_rejected"]) == (3, 0)

    email = next(e for e in entries if e["type"] == "email")
    cli.ok("dnclists", "entries", "remove", dnc, email["id"])
    left = cli.json("dnclists", "entries", "list", dnc)["result"]
    assert "ann@example.com" not in [e["value"] for e in left]

    updated = cli.json("dnclists", "update", dnc, "--named-only")
    assert (updated["name"], updated["applies_to_all"]) == ("opted out", False)
    assert cli.json("dnclists", "delete", dnc)["tm_delete"] != NEVER
    assert dnc not in cli.ok("dnclists", "list").stdout
    assert "DNCLIST_NOT_FOUND" in refused(cli("dnclists", "show", "5f0f4a9c-3d5e-4c1e-9a52-5d6c2e0b7f11"))
    refused(cli("imports", "list"), code=2)  # neither --outdial nor --dnclist


def test_dnc_entries_are_removed_by_their_value(cli: Cli) -> None:
    dnc = cli.json("dnclists", "create", "--name", "by value")["id"]
    kept = cli.json("dnclists", "entries", "add", dnc, "+13125550142")
    # The server's message names the API's parameter; the option takes that name too.
    assert "default_region" in refused(cli("dnclists", "entries", "add", dnc, "(212) 555-0123"))
    cli.json("dnclists", "entries", "add", dnc, "(212) 555-0123", "--default-region", "US")
    cli.json("dnclists", "entries", "add", dnc, "Ann@Example.com")

    # Any spelling of a value finds its entry: normalised as entries are stored.
    removed = cli.json("dnclists", "entries", "delete", dnc, "--value", "+1 212 555 0123")
    assert removed["value"] == "+12125550123"
    assert cli.json("dnclists", "entries", "remove", dnc, "--value", "ANN@example.com")["value"] == (
        "ann@example.com")
    assert [e["id"] for e in cli.json("dnclists", "entries", "list", dnc)["result"]] == [kept["id"]]

    # A national number with its region; a value the list does not hold is refused by name.
    line = refused(cli("dnclists", "entries", "remove", dnc, "--value", "(212) 555-0123",
                       "--region", "US"))
    assert "+12125550123" not in line and "holds no entry for (212) 555-0123" in line
    assert cli.json("dnclists", "entries", "remove", dnc, "--value", "(312) 555-0142",
                    "--region", "US")["id"] == kept["id"]
    assert cli.json("dnclists", "entries", "list", dnc)["result"] == []
    assert refused(cli("dnclists", "entries", "remove", dnc, "--value", "not a number")).startswith(
        "error: ")
    refused(cli("dnclists", "entries", "remove", dnc), code=2)  # neither an id nor --value
    refused(cli("dnclists", "entries", "remove", dnc, kept["id"], "--value", "+13125550142"), code=2)


def test_holidays_are_cleared_alone(cli: Cli) -> None:
    plan = cli.json("outplans", "create", "--name", "plain")["id"]
    outdial = cli.json("outdials", "create", "--name", "UK")["id"]
    campaign = cli.json(
        "campaigns", "create", "--outdial", outdial, "--outplan", plan, "--name", "UK",
        "--window-days", "mon-fri", "--window-start", "09:00", "--window-end", "20:00",
        "--window-timezone", "Europe/London", "--window-holiday", "2026-12-25",
        "--window-holiday", "2026-12-26")
    cleared = cli.json("campaigns", "update", campaign["id"], "--no-holidays")
    assert cleared["calling_window"] == {**campaign["calling_window"], "holidays": []}
    assert cleared["name"] == "UK"
    again = cli.json("campaigns", "update", campaign["id"], "--no-holidays", "--window-end", "21:00")
    assert again["calling_window"] == {**campaign["calling_window"], "holidays": [], "end": "21:00"}
    refused(cli("campaigns", "update", campaign["id"], "--no-holidays", "--window-holiday",
                "2027-01-01"), code=2)
    refused(cli("campaigns", "update", campaign["id"], "--no-holidays", "--no-window"), code=2)
    cli.json("campaigns", "update", campaign["id"], "--no-window")
    assert "has no calling window" in refused(cli("campaigns", "update", campaign["id"],
                                                  "--no-holidays"))


# --- contact limits ------------------------------------------------------------------------------

def test_contact_limits_are_set_shown_and_cleared(cli: Cli) -> None:
    assert "no contact limits" in cli.ok("contactlimits", "show").stderr
    answer = cli.json("contactlimits", "set", "--limit", "3/1d", "--limit", "7/168h",
                      "--limit", "1/7d/answered")
    assert answer == {"limits": [
        {"max": 3, "window": 86_400_000, "count": "attempts"},
        {"max": 7, "window": 604_800_000, "count": "attempts"},
        {"max": 1, "window": 604_800_000, "count": "answered"}]}
    table = cli.ok("contactlimits", "show").stdout
    assert "1d" in table and "7d" in table and "answered" in table

    assert "--limit" in refused(cli("contactlimits", "set", "--limit", "3/1y"), code=2)
    assert "--limit" in refused(cli("contactlimits", "set", "--limit", "three"), code=2)
    line = refused(cli("contactlimits", "set", "--limit", "3/10s"))
    assert line.startswith("error: limits.0.window:")
    assert cli.json("contactlimits", "show") == answer  # a refused change changed nothing

    assert cli.json("contactlimits", "clear") == {"limits": []}


# --- retry rules, calling windows, priority, lists ----------------------------------------------

RULES = '{"busy": {"interval": 120000, "max_tries": 3, "next": "retry", "backoff": 2}}'


def test_outplan_retry_rules_and_campaign_strategy_options(cli: Cli) -> None:
    plan = cli.json("outplans", "create", "--name", "busy twice", "--retry-rules-json", RULES)
    assert plan["retry_rules"]["busy"] == {"interval": 120000, "max_tries": 3, "next": "retry",
                                           "backoff": 2.0}
    # Changing another part of the dial info keeps the rules.
    kept = cli.json("outplans", "update", plan["id"], "--try-interval", "1000")
    assert (kept["try_interval"], kept["retry_rules"]) == (1000, plan["retry_rules"])
    line = refused(cli("outplans", "update", plan["id"], "--retry-rules-json",
                       '{"busy": {"interval": 1, "backoff": 0.5}}'))
    assert line.startswith("error: retry_rules.busy.backoff:")
    assert "--retry-rules-json" in refused(
        cli("outplans", "update", plan["id"], "--retry-rules-json", "{busy"), code=2)
    assert cli.json("outplans", "update", plan["id"], "--retry-rules-json", "null")["retry_rules"] is None

    dnc = cli.json("dnclists", "create", "--name", "named")["id"]
    outdial = cli.json("outdials", "create", "--name", "US")["id"]
    campaign = cli.json(
        "campaigns", "create", "--outdial", outdial, "--outplan", plan["id"], "--name", "US",
        "--window-days", "mon-fri,sun", "--window-start", "08:00", "--window-end", "21:00",
        "--window-timezone", "America/New_York", "--window-holiday", "2026-12-25",
        "--priority", "fresh_first", "--dnclist", dnc)
    assert campaign["calling_window"] == {
        "days": ["mon", "tue", "wed", "thu", "fri", "sun"], "start": "08:00", "end": "21:00",
        "timezone_default": "America/New_York", "holidays": ["2026-12-25"]}
    assert (campaign["priority"], campaign["dnclist_ids"]) == ("fresh_first", [dnc])
    shown = cli.ok("campaigns", "get", campaign["id"]).stdout
    assert "fresh_first" in shown and "America/New_York" in shown and dnc in shown

    # One part of the window changed, the rest kept; the name too.
    changed = cli.json("campaigns", "update", campaign["id"], "--window-end", "20:00",
                       "--window-days", "fri-mon")
    assert changed["calling_window"] == {**campaign["calling_window"], "end": "20:00",
                                         "days": ["mon", "fri", "sat", "sun"]}
    assert (changed["name"], changed["priority"], changed["dnclist_ids"]) == ("US", "fresh_first", [dnc])
    line = refused(cli("campaigns", "update", campaign["id"], "--window-end", "07:00"))
    assert line.startswith("error: calling_window.end: must be after start")
    assert "--window-days" in refused(
        cli("campaigns", "update", campaign["id"], "--window-days", "mon-funday"), code=2)
    refused(cli("campaigns", "update", campaign["id"], "--no-window", "--window-end", "20:00"), code=2)
    unknown = "5f0f4a9c-3d5e-4c1e-9a52-5d6c2e0b7f11"
    assert refused(cli("campaigns", "update", campaign["id"], "--dnclist", unknown)).startswith(
        "error: dnclist_ids.0:")

    cleared = cli.json("campaigns", "update", campaign["id"], "--no-window", "--no-dnclists",
                       "--priority", "due_first")
    assert (cleared["calling_window"], cleared["dnclist_ids"], cleared["priority"]) == (None, [], "due_first")
    # A new window needs all of its parts.
    assert "--window-timezone" in refused(
        cli("campaigns", "update", campaign["id"], "--window-days", "mon", "--window-start", "09:00",
            "--window-end", "17:00"), code=2)

    target = cli.json("targets", "create", "--outdial", outdial, "--tel", "+13105550100",
                      "--timezone", "America/Chicago")
    assert target["timezone"] == "America/Chicago"
    renamed = cli.json("targets", "update", target["id"], "--outdial", outdial, "--name", "Cid")
    assert (renamed["name"], renamed["timezone"]) == ("Cid", "America/Chicago")
    assert cli.json("targets", "update", target["id"], "--outdial", outdial,
                    "--timezone", "")["timezone"] is None
    assert refused(cli("targets", "update", target["id"], "--outdial", outdial,
                       "--timezone", "Mars/Olympus")).startswith("error: timezone:")


# --- why a target waits --------------------------------------------------------------------------

def _until(cli: Cli, what: str, check: Any) -> Any:
    deadline = time.monotonic() + COMMAND_SECONDS
    while not (found := check()):  # bounded: the server's engine dials meanwhile
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
    return found


def test_targets_show_why_they_wait(cli: Cli, tmp_path: Path) -> None:
    # A window open now in New York for an hour or more, and shut in Tokyo (13 or 14 hours
    # ahead) whatever the hour.
    hour = dt.datetime.now(zoneinfo.ZoneInfo("America/New_York")).hour
    start, end = f"{max(hour - 1, 0):02d}:00", f"{min(hour + 2, 24):02d}:00"
    outdial = cli.json("outdials", "create", "--name", "two zones")["id"]
    rows = tmp_path / "people.csv"
    rows.write_text("name,destination_0,timezone\nAnn,+12125550123,America/New_York\n"
                    "Bob,+12125550188,Asia/Tokyo\nCid,+12125550199,America/New_York\n")
    cli.ok("import", str(rows), "--outdial", outdial)
    dnc = cli.json("dnclists", "create", "--name", "no")["id"]
    cli.ok("dnclists", "entries", "add", dnc, "+12125550199")
    plan = cli.json("outplans", "create", "--dial-timeout", "1000", "--try-interval", "0")["id"]
    campaign = cli.json("campaigns", "create", "--outdial", outdial, "--outplan", plan,
                        "--end-handle", "continue", "--window-days", "mon-sun",
                        "--window-start", start, "--window-end", end,
                        "--window-timezone", "America/New_York", "--dnclist", dnc)["id"]
    by_name = lambda: {t["name"]: t for t in  # noqa: E731
                       cli.json("targets", "list", "--outdial", outdial)["result"]}
    assert {t["waiting_reason"] for t in by_name().values()} == {"campaign_not_running"}

    cli.ok("campaigns", "run", campaign)
    targets = _until(cli, "Ann was never dialed, or Cid never passed over", lambda: (
        t if (t := by_name())["Ann"]["try_count_0"] == 1 and t["Cid"]["status"] == "done" else None))
    bob, cid = targets["Bob"], targets["Cid"]
    assert (bob["status"], bob["try_count_0"], bob["waiting_reason"]) == (
        "idle", 0, "outside_calling_window")
    assert bob["waiting_detail"] == "Asia/Tokyo"
    opens = dt.datetime.fromisoformat(bob["next_attempt_at"][:19]).replace(tzinfo=dt.UTC)
    assert opens.astimezone(zoneinfo.ZoneInfo("Asia/Tokyo")).strftime("%H:%M") == start
    assert (cid["try_count_0"], cid["waiting_reason"]) == (0, "exhausted")
    outcomes = {c["outdial_target_id"]: c["outcome"]
                for c in cli.json("campaigns", "calls", campaign)["result"]}
    assert outcomes[cid["id"]] == "dnc"

    # The table says why and, below, until when; `get` carries every field.
    listed = cli.ok("targets", "list", "--outdial", outdial).stdout.splitlines()
    at = next(n for n, line in enumerate(listed) if bob["id"] in line)
    assert "outside_calling_window" in listed[at]
    assert f"until {bob['next_attempt_at'][:16]} UTC (Asia/Tokyo)" in listed[at + 1]
    shown = cli.ok("targets", "get", bob["id"], "--outdial", outdial).stdout
    assert "waiting_reason" in shown and "outside_calling_window" in shown
    assert "next_attempt_at" in shown and bob["next_attempt_at"][:19] in shown
    stats = cli.json("stats", "--outdial", outdial, "--reasons")
    assert stats["waiting_reasons"]["outside_calling_window"] == 1
    assert stats["waiting_reasons"]["exhausted"] >= 1
    assert "waiting_reasons.outside_calling_window" in cli.ok(
        "stats", "--outdial", outdial, "--reasons").stdout
    assert cli.json("stats", "--outdial", outdial)["waiting_reasons"] is None
    exported = cli.ok("export", "--outdial", outdial).stdout
    assert "outside_calling_window" in exported
    cli.ok("campaigns", "stop", campaign)
