"""A newcomer's first minutes with the real `outdial` command: the README's first command from a
fresh clone, and one clear line (no traceback, nothing written) for each mistake they can fix."""

import os
import re
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

from tests import databases

pytestmark = pytest.mark.slow

OUTDIAL = str(Path(sys.executable).with_name("outdial"))
REPOSITORY = Path(__file__).resolve().parents[2]
START_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_environment(**settings: str) -> dict[str, str]:
    """This process's environment without the OUTDIAL_* settings of whoever runs the tests."""
    kept = {key: value for key, value in os.environ.items() if not key.startswith("OUTDIAL_")}
    return {**kept, "NO_COLOR": "1", "COLUMNS": "200", **settings}


def outdial(*args: str, env: dict[str, str], cwd: Path | None = None,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    # A new session has no controlling terminal, as in a script or a service manager.
    return subprocess.run([OUTDIAL, *args], env=env, cwd=cwd, input=stdin, capture_output=True,
                          text=True, timeout=120, check=False, start_new_session=True,
                          stdin=None if stdin is not None else subprocess.DEVNULL)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Exit 1, nothing on stdout, and stderr is exactly one line holding every expected part."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    for part in expected:
        assert part in lines[0], lines[0]
    return lines[0]


def wait_until_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes], log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, log.read_text()  # the README says a clean stop is 0


@pytest.fixture
def missing_postgres_url(postgres_url: str) -> str:
    """A database name on the suite's PostgreSQL server that does not exist."""
    base, _, _ = postgres_url.rpartition("/")
    return f"{base}/outdial_missing_{uuid.uuid4().hex[:8]}"


# --- the README's first command, from a fresh clone ---------------------------------------------

def test_the_readme_first_command_from_a_fresh_clone(tmp_path: Path) -> None:
    """git clone, venv, pip install -e ., `outdial serve`: /health answers, the admin's password
    is printed and works, and the database is ./outdial.db in the clone."""
    clone = tmp_path / "outdial"
    subprocess.run(["git", "clone", "--quiet", str(REPOSITORY), str(clone)], check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "venv", str(clone / ".venv")], check=True, timeout=120)
    # pip's cache and the machine's index settings are kept: this checks the package, not the network.
    installed = subprocess.run(
        [str(clone / ".venv/bin/pip"), "install", "-q", "-e", "."], cwd=clone,
        capture_output=True, text=True, timeout=900, check=False)
    assert installed.returncode == 0, installed.stderr
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen([str(clone / ".venv/bin/outdial"), "serve", "--port", str(port)],
                                   cwd=clone, env=clean_environment(), stdout=output,
                                   stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, process, log)
        printed = log.read_text()
        assert f"database: SQLite file {clone / 'outdial.db'}" in printed
        password = re.search(r"username 'admin', password '([^']+)'", printed)
        assert password, printed
        login = httpx.post(f"{url}/auth/login", json={"username": "admin", "password": password[1]})
        assert login.status_code == 200, login.text
        assert "Traceback" not in printed
    finally:
        stop(process, log)
    assert (clone / "outdial.db").is_file()


# --- one clear line for what a newcomer can fix ----------------------------------------------------

def test_serve_on_a_missing_postgres_database_names_it_and_how_to_create_it(
    missing_postgres_url: str, tmp_path: Path
) -> None:
    name = missing_postgres_url.rpartition("/")[2]
    env = clean_environment(OUTDIAL_DATABASE_URL=missing_postgres_url)

    result = outdial("serve", "--port", str(free_port()), env=env, cwd=tmp_path)

    line = assert_one_line_error(result, f'"{name}" does not exist', "createdb", name)
    assert "Traceback" not in result.stderr and line.startswith("error:")


@pytest.mark.parametrize("command", [["worker"], ["db", "upgrade"], ["customer", "create", "--name", "x"]])
def test_every_server_command_names_a_missing_postgres_database(
    missing_postgres_url: str, tmp_path: Path, command: list[str]
) -> None:
    env = clean_environment(OUTDIAL_DATABASE_URL=missing_postgres_url)
    assert_one_line_error(outdial(*command, env=env, cwd=tmp_path), "does not exist", "createdb")


def test_an_unreachable_postgres_server_is_one_line(tmp_path: Path) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/outdial"

    result = outdial("serve", "--port", str(free_port()), env=clean_environment(OUTDIAL_DATABASE_URL=nowhere),
                     cwd=tmp_path)

    assert_one_line_error(result, "cannot reach PostgreSQL", "connection was refused",
                          "OUTDIAL_DATABASE_URL")


def test_a_postgres_database_with_the_c_locale_folds_keys_as_any_other(
    missing_postgres_url: str, tmp_path: Path
) -> None:
    # In a database created with LC_CTYPE C, lower('Ö') is 'Ö': keyed with lower(), a
    # do-not-call entry for `jörg@example.com` would not match a target's `JÖRG@example.com`.
    # The keys are folded by Outdial's own mapping instead, the same under every locale.
    name = missing_postgres_url.rpartition("/")[2]
    databases._admin(f'CREATE DATABASE "{name}" TEMPLATE template0 LC_COLLATE \'C\' LC_CTYPE \'C\'')
    try:
        result = outdial("db", "upgrade", env=clean_environment(OUTDIAL_DATABASE_URL=missing_postgres_url),
                         cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        folded = databases.fetch_value(missing_postgres_url, """
            SELECT lower('JÖRG') || ' ' || outdial_dnc_value(
                '{"type": "email", "target": "JÖRG@example.com"}'::json)""")
    finally:
        databases.drop_postgres_database(missing_postgres_url)
    assert folded == "jÖrg jörg@example.com"  # lower() alone misses the Ö


def test_a_postgres_database_not_encoded_utf8_is_one_line_and_nothing_written(
    missing_postgres_url: str, tmp_path: Path
) -> None:
    # Under SQL_ASCII an "Ü" is two bytes, neither a letter: the database would key
    # `ÜBER@example.de` as "Über@example.de" where Python keys the list's entry "über@…".
    name = missing_postgres_url.rpartition("/")[2]
    databases._admin(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'SQL_ASCII\' '
                     "LC_COLLATE 'C' LC_CTYPE 'C'")
    try:
        result = outdial("db", "upgrade", env=clean_environment(OUTDIAL_DATABASE_URL=missing_postgres_url),
                         cwd=tmp_path)
        tables = databases.fetch_value(
            missing_postgres_url,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    finally:
        databases.drop_postgres_database(missing_postgres_url)
    assert_one_line_error(result, f'"{name}"', "SQL_ASCII", "needs UTF8", "-E UTF8 -T template0",
                          "OUTDIAL_DATABASE_URL")
    assert tables == 0


@pytest.mark.parametrize("url, expected", [
    ("not a url", "cannot be read"),
    ("postgresql://me:s3cret@db:notaport/outdial", "port is not a number"),
    ("mysql://me@db/outdial", "SQLite or PostgreSQL"),
    ("postgresql://postgres@127.0.0.1:5432", "names no database"),
    ("postgresql//me:s3cret@db/outdial", "cannot be read"),  # the ':' forgotten
    ("postgresql://me:pa@s3cret@db/outdial", "%40"),  # an '@' of the password not escaped
])
def test_a_malformed_database_url_is_one_line_and_hides_the_password(
    tmp_path: Path, url: str, expected: str
) -> None:
    result = outdial("serve", "--port", str(free_port()), env=clean_environment(OUTDIAL_DATABASE_URL=url),
                     cwd=tmp_path)

    line = assert_one_line_error(result, expected, "OUTDIAL_DATABASE_URL")
    assert "s3cret" not in line
    assert list(tmp_path.iterdir()) == []


def test_a_missing_sqlite_folder_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/no/such/folder/outdial.db"

    result = outdial("db", "upgrade", env=clean_environment(OUTDIAL_DATABASE_URL=url), cwd=tmp_path)

    assert_one_line_error(result, "does not exist", "mkdir -p")


def test_a_busy_port_is_reported_before_anything_is_written(tmp_path: Path) -> None:
    database = tmp_path / "outdial.db"
    env = clean_environment(OUTDIAL_DATABASE_URL=f"sqlite+aiosqlite:///{database}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = outdial("serve", "--port", str(port), env=env, cwd=tmp_path)

    assert_one_line_error(result, f"port {port}", "already in use", "--port")
    assert "password" not in result.stderr  # no admin was made
    assert not database.exists()


def test_a_bad_setting_is_named_with_its_variable(tmp_path: Path) -> None:
    env = clean_environment(OUTDIAL_TOKEN_LIFETIME_SECONDS="a week")

    assert_one_line_error(outdial("db", "upgrade", env=env, cwd=tmp_path),
                          "OUTDIAL_TOKEN_LIFETIME_SECONDS", "a week")


@pytest.mark.parametrize(("variable", "value", "bound"), [
    *((name, "2147484", "2147483.647") for name in (
        "OUTDIAL_DB_LOCK_TIMEOUT_SECONDS", "OUTDIAL_DB_STATEMENT_TIMEOUT_SECONDS",
        "OUTDIAL_ENGINE_IDLE_IN_TRANSACTION_SECONDS", "OUTDIAL_IMPORT_LEASE_SECONDS")),
    ("OUTDIAL_EVENTS_RETENTION_SECONDS", "inf", "3153600000"),
    ("OUTDIAL_TOKEN_LIFETIME_SECONDS", "3153600001", "3153600000"),
])
def test_a_duration_longer_than_can_be_worked_with_is_named_with_its_bound(
    tmp_path: Path, variable: str, value: str, bound: str
) -> None:
    # PostgreSQL takes its waits in ms up to 2^31 - 1, and no time is computed from a duration
    # past a hundred years: such a value would fail every connection, or every prune, later.
    assert_one_line_error(outdial("db", "upgrade", env=clean_environment(**{variable: value}),
                                  cwd=tmp_path),
                          variable, f"less than or equal to {bound}")


def test_settings_that_disagree_are_named_and_no_secret_is_echoed(tmp_path: Path) -> None:
    # Checked before any connection: no server needs to be there.
    env = clean_environment(OUTDIAL_ENGINE_LEASE_SECONDS="6",
                            OUTDIAL_DATABASE_URL="postgresql://outdial@127.0.0.1:9/outdial",
                            OUTDIAL_SECRET_KEY="a-signing-key-nobody-may-read-0123456789")

    said = assert_one_line_error(
        outdial("db", "upgrade", env=env, cwd=tmp_path), "OUTDIAL_MAX_CLOCK_OFFSET_SECONDS (5)",
        "under a third of OUTDIAL_ENGINE_LEASE_SECONDS (6)")
    assert "nobody-may-read" not in said and said.startswith("error: OUTDIAL_MAX_CLOCK")
    # SQLite compares no clocks: the same leases are fine there.
    on_sqlite = {**env, "OUTDIAL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/outdial.db"}
    assert outdial("db", "upgrade", env=on_sqlite, cwd=tmp_path).returncode == 0


# --- every server-side command says which database it used ----------------------------------------

def test_server_commands_name_their_sqlite_file(tmp_path: Path) -> None:
    database = tmp_path / "elsewhere" / "demo.db"
    database.parent.mkdir()
    env = clean_environment(OUTDIAL_DATABASE_URL=f"sqlite+aiosqlite:///{database}")
    said = f"database: SQLite file {database}"

    upgraded = outdial("db", "upgrade", env=env, cwd=tmp_path)
    customer = outdial("customer", "create", "--name", "acme", env=env, cwd=tmp_path)
    agent = outdial("agent", "create", "--customer", customer.stdout.strip(), "--username", "boss",
                    "--password-stdin", env=env, cwd=tmp_path, stdin="boss-password\n")

    for result in (upgraded, customer, agent):
        assert result.returncode == 0, result.stderr
        assert said in result.stderr
    # stdout keeps only the id, for scripts.
    assert uuid.UUID(customer.stdout.strip()) and uuid.UUID(agent.stdout.strip())
    assert not (tmp_path / "outdial.db").exists()


def test_worker_names_its_postgres_database_without_the_password(postgres_url: str, tmp_path: Path) -> None:
    # The suite's server trusts local users, so a password in the URL is accepted and ignored.
    with_password = postgres_url.replace("postgresql://postgres@", "postgresql://postgres:s3cret@")
    assert "s3cret" in with_password
    log = tmp_path / "worker.log"
    env = clean_environment(OUTDIAL_DATABASE_URL=with_password)
    with log.open("w") as output:
        process = subprocess.Popen([OUTDIAL, "worker"], env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_SECONDS
        while "database:" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        # Stopped as soon as it has spoken, maybe before its signal handlers are in place: its
        # exit status is checked by the engine's own tests, not here.
        process.terminate()
        process.wait(timeout=30)
    said = log.read_text()
    host_and_name = postgres_url.partition("@")[2]
    assert f"database: PostgreSQL postgresql://postgres:***@{host_and_name}" in said
    assert "s3cret" not in said


# --- agent create: the password never has to be on the command line ------------------------------

@pytest.fixture
def tenant(tmp_path: Path) -> tuple[dict[str, str], str, Path]:
    database = tmp_path / "outdial.db"
    env = clean_environment(OUTDIAL_DATABASE_URL=f"sqlite+aiosqlite:///{database}")
    customer = outdial("customer", "create", "--name", "acme", env=env)
    assert customer.returncode == 0, customer.stderr
    return env, customer.stdout.strip(), database


def stored_hash(database: Path, username: str) -> str:
    with sqlite3.connect(database) as connection:
        row = connection.execute("SELECT password_hash FROM agents WHERE username = ?", (username,)).fetchone()
    assert row is not None, f"no agent {username}"
    return str(row[0])


def test_agent_password_from_stdin(tenant: tuple[dict[str, str], str, Path]) -> None:
    env, customer, database = tenant

    result = outdial("agent", "create", "--customer", customer, "--username", "piped",
                     "--password-stdin", env=env, stdin="from-stdin-pw\n")

    assert result.returncode == 0, result.stderr
    assert PasswordHasher().verify(stored_hash(database, "piped"), "from-stdin-pw")
    assert "warning" not in result.stderr


def test_agent_password_from_the_environment(tenant: tuple[dict[str, str], str, Path]) -> None:
    env, customer, database = tenant

    result = outdial("agent", "create", "--customer", customer, "--username", "from-env",
                     env={**env, "OUTDIAL_AGENT_PASSWORD": "from-env-pw-1"})

    assert result.returncode == 0, result.stderr
    assert PasswordHasher().verify(stored_hash(database, "from-env"), "from-env-pw-1")


def test_agent_password_on_the_command_line_still_works_but_warns(
    tenant: tuple[dict[str, str], str, Path]
) -> None:
    env, customer, database = tenant

    result = outdial("agent", "create", "--customer", customer, "--username", "old-script",
                     "--password", "on-the-line-pw", env=env)

    assert result.returncode == 0, result.stderr
    assert "warning: --password" in result.stderr and "--password-stdin" in result.stderr
    assert PasswordHasher().verify(stored_hash(database, "old-script"), "on-the-line-pw")


def test_agent_without_a_password_or_a_terminal_is_a_usage_error(
    tenant: tuple[dict[str, str], str, Path]
) -> None:
    env, customer, database = tenant

    result = outdial("agent", "create", "--customer", customer, "--username", "nobody", env=env)

    assert result.returncode == 2, result.stderr
    assert "--password-stdin" in result.stderr and "OUTDIAL_AGENT_PASSWORD" in result.stderr
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM agents").fetchone()[0] == 0


def read_until(terminal: int, expected: bytes, seen: bytearray, timeout: float = 60) -> None:
    """Read the terminal's output until `expected` appears (bounded)."""
    deadline = time.monotonic() + timeout
    while expected not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"waited for {expected!r}, got {bytes(seen)!r}"
        ready, _, _ = select.select([terminal], [], [], left)
        if ready:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # the other side closed: the command ended
                chunk = b""
            assert chunk, f"ended before {expected!r}: {bytes(seen)!r}"
            seen += chunk


def test_agent_password_is_asked_twice_in_a_terminal_without_echo(
    tenant: tuple[dict[str, str], str, Path]
) -> None:
    env, customer, database = tenant
    controller, terminal = os.openpty()
    process = subprocess.Popen(
        [OUTDIAL, "agent", "create", "--customer", customer, "--username", "typed"],
        env=env, stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True)
    os.close(terminal)
    seen = bytearray()
    try:
        read_until(controller, b"assword: ", seen)
        os.write(controller, b"typed-secret-1\n")
        read_until(controller, b"confirmation: ", seen)
        os.write(controller, b"typed-secret-1\n")
        assert process.wait(timeout=60) == 0, bytes(seen)
        read_until(controller, b"database:", seen, timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)
    assert b"typed-secret-1" not in seen  # never echoed
    assert PasswordHasher().verify(stored_hash(database, "typed"), "typed-secret-1")


def test_agent_delete_ends_its_access(tenant: tuple[dict[str, str], str, Path]) -> None:
    env, customer, database = tenant
    assert outdial("agent", "create", "--customer", customer, "--username", "leaver",
                   "--password-stdin", env=env, stdin="leaver-pw-1\n").returncode == 0

    deleted = outdial("agent", "delete", "leaver", env=env)
    again = outdial("agent", "delete", "leaver", env=env)

    assert deleted.returncode == 0, deleted.stderr
    assert "access keys" in deleted.stderr
    with sqlite3.connect(database) as connection:
        assert connection.execute(
            "SELECT tm_delete IS NOT NULL FROM agents WHERE username = 'leaver'").fetchone() == (1,)
    assert again.returncode == 1 and "no agent is named 'leaver'" in again.stderr


def test_agent_password_changes_it_and_says_what_it_ends(
    tenant: tuple[dict[str, str], str, Path]
) -> None:
    env, customer, database = tenant
    assert outdial("agent", "create", "--customer", customer, "--username", "rotator",
                   "--password-stdin", env=env, stdin="rotator-pw-1\n").returncode == 0

    changed = outdial("agent", "password", "rotator", "--password-stdin", env=env,
                      stdin="rotator-pw-2\n")
    too_short = outdial("agent", "password", "rotator", "--password-stdin", env=env,
                        stdin="short\n")
    nobody = outdial("agent", "password", "nobody", "--password-stdin", env=env,
                     stdin="long-enough-1\n")

    assert changed.returncode == 0, changed.stderr
    assert "login tokens it was issued no longer work" in changed.stderr
    assert PasswordHasher().verify(stored_hash(database, "rotator"), "rotator-pw-2")
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT token_generation FROM agents "
                                  "WHERE username = 'rotator'").fetchone() == (1,)
    for result, said in [(too_short, "error: password: must be at least 8 characters long"),
                         (nobody, "error: no agent is named 'nobody'")]:
        # After the line naming the database, one line says what is wrong.
        assert result.returncode == 1 and result.stderr.splitlines()[1:] == [said], result.stderr
    assert PasswordHasher().verify(stored_hash(database, "rotator"), "rotator-pw-2")


def test_agent_names_are_printed_as_written_not_as_markup(
    tenant: tuple[dict[str, str], str, Path]
) -> None:
    env, customer, _ = tenant
    name = "x[/] [bold]y"  # markup to a terminal library, a name to us
    created = outdial("agent", "create", "--customer", customer, "--username", name,
                      "--password-stdin", env=env, stdin="markup-pw-1\n")
    changed = outdial("agent", "password", name, "--password-stdin", env=env,
                      stdin="markup-pw-2\n")
    deleted = outdial("agent", "delete", name, env=env)

    assert created.returncode == 0, created.stderr
    assert changed.returncode == 0, changed.stderr
    assert f"changed the password of agent {name} (" in changed.stderr
    assert deleted.returncode == 0, deleted.stderr
    assert f"deleted agent {name} (" in deleted.stderr


def test_a_password_piped_in_another_encoding_is_one_line(
    tenant: tuple[dict[str, str], str, Path]
) -> None:
    env, customer, database = tenant
    assert outdial("agent", "create", "--customer", customer, "--username", "latin",
                   "--password-stdin", env=env, stdin="latin-pw-1\n").returncode == 0

    result = subprocess.run(  # "pässwort1" in Latin-1: not UTF-8
        [OUTDIAL, "agent", "password", "latin", "--password-stdin"], env=env,
        input="pässwort1\n".encode("latin-1"), capture_output=True, timeout=120, check=False,
        start_new_session=True)

    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    (line,) = [line for line in stderr.splitlines() if line.strip()]
    assert line.startswith("error: Invalid value for password: not UTF-8 text;"), stderr
    assert "(iconv -t UTF-8)" in line
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT token_generation FROM agents "
                                  "WHERE username = 'latin'").fetchone() == (0,)
    assert PasswordHasher().verify(stored_hash(database, "latin"), "latin-pw-1")
