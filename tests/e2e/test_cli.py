"""The real `outdial` command, run as a process, against a real `outdial serve` process."""

import json
import os
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

OUTDIAL = str(Path(sys.executable).with_name("outdial"))
ADMIN_USERNAME = "cli-admin"
ADMIN_PASSWORD = "cli-admin-password-1"
STARTUP_SECONDS = 30
COMMAND_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_environment() -> dict[str, str]:
    """This process's environment without any OUTDIAL_* setting of the person running the tests."""
    return {key: value for key, value in os.environ.items() if not key.startswith("OUTDIAL_")}


@dataclass
class Server:
    url: str
    token: str
    http: httpx.Client

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, headers={"Authorization": f"Bearer {self.token}"},
                                 **kwargs)

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.call("POST", path, json=body)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def outdial(self, name: str = "e2e") -> str:
        return str(self.create("/v1.0/outdials", {"name": name})["id"])

    def target(self, outdial_id: str, number: str, name: str = "") -> dict[str, Any]:
        return self.create(f"/v1.0/outdials/{outdial_id}/targets",
                           {"name": name, "destination_0": {"type": "tel", "target": number}})



@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`outdial serve` on a fresh SQLite file, up until /health answers; stopped at the end."""
    home = tmp_path_factory.mktemp("server")
    port = free_port()
    env = {
        **clean_environment(),
        "OUTDIAL_DATABASE_URL": f"sqlite+aiosqlite:///{home / 'outdial.db'}",
        "OUTDIAL_ADMIN_USERNAME": ADMIN_USERNAME,
        "OUTDIAL_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "OUTDIAL_SECRET_KEY": "e2e-signing-key-that-is-long-enough-for-hs256",
        "OUTDIAL_LOG_LEVEL": "warning",
    }
    log = (home / "server.log").open("w")
    process = subprocess.Popen([OUTDIAL, "serve", "--port", str(port)], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=url, timeout=10)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited: {(home / 'server.log').read_text()}")
            try:
                if http.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer /health: {(home / 'server.log').read_text()}")
            time.sleep(0.1)
        login = http.post("/auth/login", json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
        assert login.status_code == 200, login.text
        yield Server(url, login.json()["token"], http)
    finally:
        http.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Cli:
    """Runs `outdial …` with its own config file and environment."""

    config: Path
    env: dict[str, str] = field(default_factory=dict)

    def __call__(self, *args: str, input: str | None = None) -> Result:
        env = {**clean_environment(), "OUTDIAL_CONFIG": str(self.config), "COLUMNS": "200",
               "NO_COLOR": "1", **self.env}
        # A new session has no controlling terminal: a password prompt reads stdin, never a tty.
        done = subprocess.run([OUTDIAL, *args], env=env, input=input, capture_output=True,
                              text=True, timeout=COMMAND_SECONDS, start_new_session=True,
                              check=False)
        return Result(done.returncode, done.stdout, done.stderr)

    def ok(self, *args: str) -> Result:
        result = self(*args)
        assert result.code == 0, f"outdial {' '.join(args)} → {result.code}\n{result.stderr}"
        return result

    def json(self, *args: str) -> Any:
        return self.ok(*args, "--json").json()


@pytest.fixture
def anonymous(tmp_path: Path) -> Cli:
    """The CLI with no login at all."""
    return Cli(tmp_path / "config" / "config.json")


@pytest.fixture
def cli(server: Server, tmp_path: Path) -> Cli:
    """The CLI pointed at the server through OUTDIAL_URL and OUTDIAL_TOKEN."""
    return Cli(tmp_path / "config" / "config.json",
               {"OUTDIAL_URL": server.url, "OUTDIAL_TOKEN": server.token})


# --- login and the stored configuration ----------------------------------------------------------

def test_login_stores_url_and_token_in_a_private_file(server: Server, anonymous: Cli) -> None:
    result = anonymous("login", "--url", server.url, "--username", ADMIN_USERNAME,
                       "--password", ADMIN_PASSWORD)

    assert result.code == 0, result.stderr
    assert stat.S_IMODE(anonymous.config.stat().st_mode) == 0o600
    stored = json.loads(anonymous.config.read_text())
    assert stored["url"] == server.url and stored["token"]
    created = anonymous.json("outdials", "create", "--name", "after login")
    assert created["name"] == "after login"


def test_login_asks_for_the_password_when_not_given(server: Server, anonymous: Cli) -> None:
    result = anonymous("login", "--url", server.url, "--username", ADMIN_USERNAME,
                       input=f"{ADMIN_PASSWORD}\n")

    assert result.code == 0, result.stderr
    assert ADMIN_PASSWORD not in result.stdout + result.stderr
    anonymous.ok("outdials", "list")


def test_login_with_a_wrong_password_fails_and_stores_nothing(server: Server, anonymous: Cli) -> None:
    result = anonymous("login", "--url", server.url, "--username", ADMIN_USERNAME,
                       "--password", "wrong")

    assert result.code == 1
    assert "INVALID_CREDENTIALS" in result.stderr
    assert not anonymous.config.exists()


def test_a_stored_token_is_never_sent_to_another_url(server: Server, anonymous: Cli) -> None:
    anonymous.ok("login", "--url", server.url, "--username", ADMIN_USERNAME,
                 "--password", ADMIN_PASSWORD)
    # The same server under another name: if the token were sent, the call would succeed.
    other_name = server.url.replace("127.0.0.1", "localhost")

    result = anonymous("outdials", "list", "--url", other_name)

    assert result.code == 1
    # Said as what happened, not as a bare "a credential is required".
    assert f"no token was sent to {other_name}" in result.stderr
    assert f"the stored login is for {server.url}" in result.stderr
    assert f"outdial login --url {other_name}" in result.stderr


def test_logout_forgets_the_token(server: Server, anonymous: Cli) -> None:
    anonymous.ok("login", "--url", server.url, "--username", ADMIN_USERNAME,
                 "--password", ADMIN_PASSWORD)
    anonymous.ok("logout")

    result = anonymous("outdials", "list")

    assert result.code == 1
    assert "AUTHENTICATION_REQUIRED" in result.stderr
    assert json.loads(anonymous.config.read_text())["url"] == server.url


def test_url_and_token_options_need_no_login(server: Server, anonymous: Cli) -> None:
    outdial = anonymous.json("outdials", "create", "--name", "by options",
                             "--url", server.url, "--token", server.token)
    assert outdial["name"] == "by options"


# --- outdials ------------------------------------------------------------------------------------

def test_outdials_crud_as_tables(cli: Cli) -> None:
    created = cli.ok("outdials", "create", "--name", "spring list", "--detail", "first try")
    outdial_id = next(line.split("│")[2].strip() for line in created.stdout.splitlines()
                      if line.startswith("│ id "))
    uuid.UUID(outdial_id)

    listed = cli.ok("outdials", "list").stdout
    assert outdial_id in listed and "spring list" in listed

    updated = cli.ok("outdials", "update", outdial_id, "--name", "summer list").stdout
    assert "summer list" in updated and "first try" in updated  # the detail not given is kept

    shown = cli.ok("outdials", "get", outdial_id).stdout
    assert "summer list" in shown

    deleted = cli.ok("outdials", "delete", outdial_id).stdout
    assert "tm_delete" in deleted and "9999-01-01" not in deleted
    assert outdial_id not in cli.ok("outdials", "list").stdout


def test_outdials_crud_as_json(cli: Cli) -> None:
    created = cli.json("outdials", "create", "--name", "json list", "--data", "opaque")
    assert list(created) == ["id", "customer_id", "campaign_id", "name", "detail", "data",
                             "tm_create", "tm_update", "tm_delete"]
    assert created["tm_update"] == "9999-01-01 00:00:00.000000"  # the API's JSON, untouched

    listed = cli.json("outdials", "list")
    assert set(listed) == {"result", "next_page_token"}
    assert created["id"] in [item["id"] for item in listed["result"]]

    updated = cli.json("outdials", "update", created["id"], "--detail", "d", "--data", "new data")
    assert (updated["name"], updated["detail"], updated["data"]) == ("json list", "d", "new data")
    assert cli.json("outdials", "get", created["id"]) == updated

    deleted = cli.json("outdials", "delete", created["id"])
    assert deleted["tm_delete"] != "9999-01-01 00:00:00.000000"


def test_lists_follow_next_page_token_up_to_the_limit(server: Server, cli: Cli) -> None:
    outdial_id = server.outdial("long list")
    made = [server.target(outdial_id, f"+1555987{n:04d}")["id"] for n in range(105)]

    everything = cli.json("targets", "list", "--outdial", outdial_id, "--limit", "0")["result"]
    some = cli.json("targets", "list", "--outdial", outdial_id, "--limit", "102")["result"]

    assert sorted(item["id"] for item in everything) == sorted(made)
    assert [item["id"] for item in some] == [item["id"] for item in everything][:102]


# --- targets -------------------------------------------------------------------------------------

def test_target_destinations_follow_the_order_of_the_options(server: Server, cli: Cli) -> None:
    outdial_id = server.outdial()

    target = cli.json("targets", "create", "--outdial", outdial_id, "--name", "alice",
                      "--sip", "sip:alice@example.com", "--tel", "+15559876543",
                      "--email", "alice@example.com", "--tel", "+442071838750")

    assert [target[f"destination_{n}"] and target[f"destination_{n}"]["target"] for n in range(5)] == [
        "sip:alice@example.com", "+15559876543", "alice@example.com", "+442071838750", None]
    assert target["destination_1"]["type"] == "tel"


def test_targets_crud(server: Server, cli: Cli) -> None:
    outdial_id = server.outdial()
    created = cli.json("targets", "create", "--outdial", outdial_id, "--name", "bob",
                       "--tel", "+15559876543", "--email", "bob@example.com")
    target_id = created["id"]

    table = cli.ok("targets", "list", "--outdial", outdial_id, "--status", "idle").stdout
    assert target_id in table and "tel:+15559876543" in table and "email:bob@example.com" in table

    renamed = cli.json("targets", "update", target_id, "--outdial", outdial_id, "--name", "robert")
    assert renamed["name"] == "robert"
    assert renamed["destination_1"]["target"] == "bob@example.com"  # kept

    redialed = cli.json("targets", "update", target_id, "--outdial", outdial_id,
                        "--destination-json", '{"type": "sip", "target": "sip:bob@example.com"}')
    assert redialed["destination_0"]["target"] == "sip:bob@example.com"
    assert redialed["destination_1"] is None and redialed["name"] == "robert"

    assert cli.json("targets", "get", target_id, "--outdial", outdial_id) == redialed
    deleted = cli.json("targets", "delete", target_id, "--outdial", outdial_id)
    assert deleted["tm_delete"] != "9999-01-01 00:00:00.000000"
    assert cli.json("targets", "list", "--outdial", outdial_id)["result"] == []


# --- errors and exit codes -----------------------------------------------------------------------

def test_a_bad_destination_shows_the_api_message_and_exits_1(server: Server, cli: Cli) -> None:
    outdial_id = server.outdial()

    result = cli("targets", "create", "--outdial", outdial_id, "--tel", "+1555")

    assert result.code == 1
    assert result.stdout == ""
    assert "destination_0.target" in result.stderr and "+1555" in result.stderr
    assert "INVALID_ARGUMENT" in result.stderr


def test_an_unknown_id_exits_1_with_the_reason(cli: Cli) -> None:
    missing = cli("outdials", "get", str(uuid.uuid4()))
    not_an_id = cli("outdials", "get", "not-an-id")

    assert (missing.code, not_an_id.code) == (1, 1)
    assert "OUTDIAL_NOT_FOUND" in missing.stderr
    assert "INVALID_ID" in not_an_id.stderr


def test_an_id_cannot_reach_another_route(server: Server, cli: Cli) -> None:
    outdial_id = server.outdial()

    # Unquoted, "../.." would be resolved by the client into GET /v1.0/outdials, which succeeds.
    result = cli("targets", "get", "../../outdials", "--outdial", outdial_id)

    assert result.code == 1
    assert result.stdout == ""


def test_a_bad_token_exits_1_and_says_to_log_in_again(server: Server, anonymous: Cli) -> None:
    bad = anonymous("outdials", "list", "--url", server.url, "--token", "not-a-token")
    none = anonymous("outdials", "list", "--url", server.url)

    assert (bad.code, none.code) == (1, 1)
    assert "INVALID_CREDENTIALS" in bad.stderr and "outdial login" in bad.stderr
    assert "AUTHENTICATION_REQUIRED" in none.stderr


def test_a_server_that_is_down_is_named_in_one_sentence(anonymous: Cli) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"

    result = anonymous("outdials", "list", "--url", nowhere, "--token", "whatever")

    assert result.code == 1
    assert f"cannot reach the Outdial server at {nowhere}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [
    ["targets", "create", "--outdial", str(uuid.uuid4())],
    ["targets", "create", "--outdial", str(uuid.uuid4()), "--destination-json", "{not json"],
    ["targets", "create", "--outdial", str(uuid.uuid4()), "--tel", "+15559876543",
     "--destination-json", "[]"],
    ["outdials", "update", str(uuid.uuid4())],
    ["outdials", "list", "--limit", "-1"],
    ["targets", "list"],
    ["no-such-command"],
])
def test_usage_errors_exit_2_before_any_request(anonymous: Cli, args: list[str]) -> None:
    # No server is named: a usage error must be found before any connection is tried.
    result = anonymous(*args, "--url", f"http://127.0.0.1:{free_port()}")

    assert result.code == 2, result.stderr
    assert "cannot reach" not in result.stderr


@pytest.mark.parametrize("address", ["127.0.0.1:8080", "localhost:8080"])
def test_an_address_without_its_scheme_is_a_usage_error_naming_the_fix(
    anonymous: Cli, address: str
) -> None:
    result = anonymous("outdials", "list", "--url", address)

    assert result.code == 2, result.stderr
    assert f"http://{address}" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


# --- outplans and campaigns (engine.md §1) -------------------------------------------------------

def test_outplans_crud(server: Server, cli: Cli) -> None:

    created = cli.json("outplans", "create", "--name", "twice", "--source", "+15550001111",
                       "--dial-timeout", "20000", "--try-interval", "600000",
                       "--max-try-count", "2", "--max-try-count", "1")
    assert created["source"]["type"] == "tel" and created["source"]["target"] == "+15550001111"
    assert (created["dial_timeout"], created["try_interval"]) == (20000, 600000)
    assert (created["max_try_count_0"], created["max_try_count_1"]) == (2, 1)
    assert created["id"] in cli.ok("outplans", "list").stdout

    updated = cli.json("outplans", "update", created["id"], "--name", "thrice", "--try-interval", "0")
    assert (updated["name"], updated["try_interval"], updated["max_try_count_0"]) == ("thrice", 0, 2)
    assert cli.json("outplans", "get", created["id"])["try_interval"] == 0

    deleted = cli.json("outplans", "delete", created["id"])
    assert deleted["tm_delete"] != "9999-01-01 00:00:00.000000"


def test_channels_crud_check_and_outplans_naming_them(server: Server, cli: Cli) -> None:
    created = cli("channels", "create", "--type", "smtp", "--name", "relay",
                  "--settings-json", '{"host": "127.0.0.1", "port": 9, "security": "none", '
                  '"username": "u", "from_address": "news@example.com"}', "--ask-password",
                  "--json", input="relay-secret\n")
    assert created.code == 0, created.stderr
    relay = created.json()
    assert relay["settings"]["has_password"] is True and relay["settings"]["password"] is None
    assert "relay-secret" not in json.dumps(relay)
    assert relay["id"] in cli.ok("channels", "list").stdout

    updated = cli.json("channels", "update", relay["id"], "--name", "main relay",
                       "--settings-json", '{"max_messages_per_second": 5}')
    assert (updated["name"], updated["settings"]["max_messages_per_second"]) == ("main relay", 5)
    assert updated["settings"]["host"] == "127.0.0.1" and updated["settings"]["has_password"]

    failed = cli("channels", "check", relay["id"])  # nothing listens on port 9
    assert failed.code == 1 and failed.stderr.startswith("failed: Error connecting to 127.0.0.1")

    plan = cli.json("outplans", "create", "--name", "mail", "--email-channel", relay["id"])
    assert plan["email_channel_id"] == relay["id"]
    refused = cli("outplans", "create", "--sip-channel", relay["id"])
    assert refused.code == 1 and "sip_channel_id" in refused.stderr
    assert cli.json("channels", "delete", relay["id"])["tm_delete"] != "9999-01-01 00:00:00.000000"


def make_campaign(server: Server, cli: Cli, targets: int = 0) -> dict[str, Any]:
    outdial_id = server.outdial("campaign list")
    for n in range(targets):
        server.target(outdial_id, f"+1555123{n:04d}")
    outplan = cli.json("outplans", "create", "--name", "once", "--dial-timeout", "1000",
                       "--try-interval", "0")
    return dict(cli.json("campaigns", "create", "--name", "e2e run", "--outdial", outdial_id,
                         "--outplan", outplan["id"], "--end-handle", "stop"))


def wait_for_status(cli: Cli, campaign_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + COMMAND_SECONDS
    while (campaign := cli.json("campaigns", "get", campaign_id))["status"] != status:
        assert time.monotonic() < deadline, f"the campaign stayed {campaign['status']}"
        time.sleep(0.2)
    return dict(campaign)


def test_campaigns_crud_run_and_stop(server: Server, cli: Cli) -> None:
    campaign = make_campaign(server, cli, targets=2)
    assert campaign["status"] == "stop" and campaign["end_handle"] == "stop"
    assert campaign["id"] in cli.ok("campaigns", "list").stdout

    updated = cli.json("campaigns", "update", campaign["id"], "--name", "renamed",
                       "--concurrency", "3")
    assert (updated["name"], updated["concurrency"]) == ("renamed", 3)

    assert cli.json("campaigns", "run", campaign["id"])["status"] == "run"
    assert cli.json("campaigns", "stop", campaign["id"])["status"] in ("stopping", "stop")
    wait_for_status(cli, campaign["id"], "stop")
    cli.ok("campaigns", "calls", campaign["id"])

    deleted = cli.json("campaigns", "delete", campaign["id"])
    assert deleted["tm_delete"] != "9999-01-01 00:00:00.000000"


def test_a_usage_mistake_is_one_line_naming_the_help(cli: Cli) -> None:
    for args, said, command in [
        (("campaigns", "update"), "Missing argument 'ID'", "outdial campaigns update"),
        (("dnclists", "create", "--bogus"), "No such option: --bogus", "outdial dnclists create"),
        (("outplans", "update", "x", "--try-interval", "soon"), "--try-interval",
         "outdial outplans update"),
        (("nosuch",), "No such command 'nosuch'", "outdial"),
        # A byte that is not UTF-8 (0xff), as a shell passes it on.
        (("dnclists", "create", "--name", "\udcff@example.com"), "is not UTF-8 text",
         "outdial"),
    ]:
        result = cli(*args)
        assert result.code == 2, (args, result.stderr)
        [line] = [line for line in result.stderr.splitlines() if line.strip()]
        assert line.startswith("error: ") and said in line, line
        assert line.endswith(f"(see `{command} --help`)"), line
    # Asking for help is no mistake.
    shown = cli("campaigns", "--help")
    assert shown.code == 0 and "Usage: outdial campaigns" in shown.stdout, shown.stdout


def test_a_campaign_on_an_unknown_outdial_is_refused(server: Server, cli: Cli) -> None:
    outplan = cli.json("outplans", "create", "--name", "p")

    result = cli("campaigns", "create", "--outdial", str(uuid.uuid4()), "--outplan", outplan["id"])

    assert result.code == 1
    assert "outdial" in result.stderr


# --- import, export, stats -----------------------------------------------------------------------

def test_import_a_csv_reports_imported_rejected_and_duplicate_rows(
        server: Server, cli: Cli, tmp_path: Path) -> None:
    outdial_id = server.outdial("imported")
    rows = tmp_path / "people.csv"
    rows.write_text("name,destination_0,destination_1\n"
                    "alice,+15559876543,alice@example.com\n"
                    "bob,(202) 555-0143,\n"
                    "carol,+1555,\n"
                    "alice again,+15559876543,\n")

    job = cli.json("import", str(rows), "--outdial", outdial_id, "--region", "US", "--dedupe")

    assert job["status"] == "done"
    assert (job["rows_total"], job["rows_imported"], job["rows_rejected"], job["rows_duplicate"]) \
        == (4, 2, 1, 1)
    assert job["errors"][0]["field"].startswith("destination_0")
    numbers = {t["destination_0"]["target"]
               for t in cli.json("targets", "list", "--outdial", outdial_id)["result"]}
    assert numbers == {"+15559876543", "+12025550143"}


def test_import_shows_a_summary_and_the_bad_rows(server: Server, cli: Cli, tmp_path: Path) -> None:
    outdial_id = server.outdial("imported ndjson")
    rows = tmp_path / "people.ndjson"
    rows.write_text(json.dumps({"name": "dan", "destination_0": "+15559876543"}) + "\n"
                    + json.dumps({"name": "eve", "destination_0": "not a number"}) + "\n")

    result = cli.ok("import", str(rows), "--outdial", outdial_id)

    assert "rows_imported" in result.stdout and "bad rows" in result.stdout
    assert "destination_0" in result.stdout


def test_import_of_an_unknown_format_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    rows = tmp_path / "people.txt"
    rows.write_text("alice\n")

    assert cli("import", str(rows), "--outdial", str(uuid.uuid4())).code == 2


def test_export_streams_ndjson_and_csv_that_import_back(
        server: Server, cli: Cli, tmp_path: Path) -> None:
    outdial_id = server.outdial("exported")
    server.target(outdial_id, "+15559876543", "frank")
    server.target(outdial_id, "+442071838750", "grace")

    lines = cli.ok("export", "--outdial", outdial_id, "--format", "ndjson").stdout.splitlines()
    assert sorted(json.loads(line)["name"] for line in lines) == ["frank", "grace"]

    saved = tmp_path / "out.csv"
    result = cli.ok("export", "--outdial", outdial_id, "-o", str(saved))
    assert f"to {saved}" in result.stderr and "destination_0" in saved.read_text().splitlines()[0]

    copy_id = server.outdial("copy")
    job = cli.json("import", str(saved), "--outdial", copy_id)
    assert job["rows_imported"] == 2


def test_export_of_an_unknown_outdial_writes_no_file(server: Server, cli: Cli, tmp_path: Path) -> None:
    saved = tmp_path / "out.csv"

    result = cli("export", "--outdial", str(uuid.uuid4()), "-o", str(saved))

    assert result.code == 1 and "OUTDIAL_NOT_FOUND" in result.stderr
    assert list(tmp_path.glob("out.csv*")) == []


def test_export_to_a_folder_that_does_not_exist_is_one_line(
    server: Server, cli: Cli, tmp_path: Path
) -> None:
    outdial_id = server.outdial("unsaved")
    saved = tmp_path / "missing" / "out.csv"

    result = cli("export", "--outdial", outdial_id, "-o", str(saved))

    assert result.code == 1 and "Traceback" not in result.stderr
    assert f"cannot write {saved}: No such file or directory" in result.stderr
    assert not saved.parent.exists()


def test_stats_counts_the_targets(server: Server, cli: Cli) -> None:
    outdial_id = server.outdial("counted")
    for n in range(3):
        server.target(outdial_id, f"+1555987{n:04d}")

    figures = cli.json("stats", "--outdial", outdial_id)
    table = cli.ok("stats", "--outdial", outdial_id).stdout

    # The figures' shape belongs to the stats route; three idle targets show as a count of 3.
    assert 3 in counts(figures)
    assert "idle" in table


def counts(value: Any) -> list[int]:
    """Every integer in a JSON value, however nested."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [number for item in value for number in counts(item)]
    return []


# --- watch ---------------------------------------------------------------------------------------

def test_watch_once_prints_one_frame(server: Server, cli: Cli) -> None:
    campaign = make_campaign(server, cli, targets=1)

    frame = cli.json("watch", campaign["id"], "--once")
    table = cli.ok("watch", campaign["id"], "--once").stdout

    assert list(frame) == ["campaign", "stats", "campaigncalls"]
    assert frame["campaign"]["id"] == campaign["id"] and frame["campaigncalls"] == []
    assert "e2e run" in table and "latest attempts" in table


def test_watch_in_an_80_by_24_terminal_shows_the_attempts(server: Server, cli: Cli) -> None:
    campaign = make_campaign(server, cli, targets=6)
    cli.ok("campaigns", "run", campaign["id"])
    wait_for_status(cli, campaign["id"], "stop")
    calls = cli.json("campaigns", "calls", campaign["id"])["result"]
    small = Cli(cli.config, {**cli.env, "COLUMNS": "80", "LINES": "24"})

    frame = small.ok("watch", campaign["id"], "--once").stdout.splitlines()

    assert len(calls) == 6
    assert len(frame) < 24 and max(len(line) for line in frame) <= 80
    for attempt in calls:  # each number whole, on one line
        assert any(attempt["destination"]["target"] in line for line in frame), frame


def test_a_list_in_80_columns_keeps_ids_and_numbers_whole(server: Server, cli: Cli) -> None:
    outdial_id = server.outdial("narrow")
    made = [server.target(outdial_id, "+442071838750", "Alice Bartholomew-Smithson the third"),
            server.target(outdial_id, "+8613800138000", "Bob")]
    small = Cli(cli.config, {**cli.env, "COLUMNS": "80"})

    lines = small.ok("targets", "list", "--outdial", outdial_id).stdout.splitlines()

    assert max(len(line) for line in lines) <= 80
    for target in made:
        assert any(target["id"] in line for line in lines), lines
        assert any(target["destination_0"]["target"] in line for line in lines), lines


def test_watch_follows_a_campaign_until_it_stops(server: Server, cli: Cli) -> None:
    campaign = make_campaign(server, cli, targets=2)
    cli.ok("campaigns", "run", campaign["id"])
    cli.ok("campaigns", "stop", campaign["id"])

    result = cli.ok("watch", campaign["id"], "--interval", "0.2")

    assert "stop" in result.stdout
    assert cli.json("campaigns", "get", campaign["id"])["status"] == "stop"


def test_watch_of_an_unknown_campaign_exits_1(server: Server, cli: Cli) -> None:

    result = cli("watch", str(uuid.uuid4()), "--once")

    assert result.code == 1 and "NOT_FOUND" in result.stderr
