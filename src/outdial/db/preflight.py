"""Start-up checks of OUTDIAL_DATABASE_URL: a database a person can fix becomes one line saying how."""

import asyncio
import os
import re
import socket
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from outdial.db.engine import Database, normalize_url
from outdial.errors import OutdialError

CONNECT_TIMEOUT_SECONDS = 10.0
EXAMPLES = "sqlite+aiosqlite:///outdial.db or postgresql://user@host:5432/dbname"
_SUPPORTED_DRIVERS = {"sqlite+aiosqlite", "postgresql+asyncpg"}


class DatabaseUnusable(OutdialError):
    """The configured database cannot be used as it is; the message says what to change."""

    status = "UNAVAILABLE"
    default_reason = "DATABASE_UNUSABLE"


def _masked(raw: str) -> str:
    """A URL that could not be parsed, shown without everything up to its last `@` (a user
    and a password, however mistyped) but its scheme."""
    if "@" not in raw:
        return raw
    head, _, tail = raw.rpartition("@")
    scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]*:?/*", head)
    return f"{scheme.group(0) if scheme else ''}***@{tail}"


def parse_database_url(raw: str) -> URL:
    """The URL, checked to be one Outdial can use, with its async driver picked."""
    try:
        url = make_url(normalize_url(raw))
    except (ArgumentError, ValueError) as error:
        # make_url's ValueError comes from reading the port as an integer.
        why = "it is not a URL" if isinstance(error, ArgumentError) else "its port is not a number"
        raise DatabaseUnusable(
            f"OUTDIAL_DATABASE_URL {_masked(raw)!r} cannot be read ({why}); write {EXAMPLES}"
        ) from None
    if "@" in (url.host or ""):
        # A password holding a bare `@`: what was read as the host carries the password's end.
        raise DatabaseUnusable(
            "OUTDIAL_DATABASE_URL holds more than one '@' before its host: write an '@' of the "
            "user or password as %40")
    if url.drivername not in _SUPPORTED_DRIVERS:
        raise DatabaseUnusable(
            f"OUTDIAL_DATABASE_URL names a {url.get_backend_name()!r} database; Outdial runs on "
            f"SQLite or PostgreSQL: write {EXAMPLES}"
        )
    if url.get_backend_name() == "postgresql" and not url.database:
        raise DatabaseUnusable(
            f"OUTDIAL_DATABASE_URL {describe(url)} names no database; add its name at the end, "
            f"as in postgresql://{url.username or 'postgres'}@{_host_port(url)}/outdial"
        )
    return url


def describe(url: URL | str) -> str:
    """How a command says which database it uses: a SQLite file's full path, or the PostgreSQL
    URL without its password."""
    url = make_url(url) if isinstance(url, str) else url
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            return "SQLite in memory"
        return f"SQLite file {Path(url.database).resolve()}"
    return "PostgreSQL " + url.set(drivername="postgresql").render_as_string(hide_password=True)


def _host_port(url: URL) -> str:
    return f"{url.host or 'localhost'}:{url.port or 5432}"


def _check_sqlite_path(url: URL) -> None:
    """SQLite creates its file, but not the folder; and a read-only file fails on first write."""
    if not url.database or url.database == ":memory:":
        return
    path = Path(url.database).resolve()
    if path.is_dir():
        raise DatabaseUnusable(f"{path} is a folder; point OUTDIAL_DATABASE_URL at a file in it, "
                               f"as in sqlite+aiosqlite:///{path / 'outdial.db'}")
    if not path.parent.is_dir():
        raise DatabaseUnusable(f"the folder of the SQLite file {path} does not exist; create it "
                               f"(mkdir -p {path.parent}) or fix OUTDIAL_DATABASE_URL")
    writable = path if path.exists() else path.parent
    if not os.access(writable, os.W_OK):
        raise DatabaseUnusable(f"cannot write {writable} (permission denied); use a file you may "
                               "write, or fix its permissions")


def _postgres_problem(url: URL, error: BaseException) -> DatabaseUnusable:
    """Name what went wrong connecting to PostgreSQL and how to fix it."""
    import asyncpg

    where = _host_port(url)
    cause: BaseException | None = error
    while cause is not None:  # SQLAlchemy wraps the driver's error, which may wrap another
        if isinstance(cause, asyncpg.InvalidCatalogNameError):
            user = f" -U {url.username}" if url.username else ""
            return DatabaseUnusable(
                f'PostgreSQL database "{url.database}" does not exist on {where}; create it with '
                f"`createdb -h {url.host or 'localhost'} -p {url.port or 5432}{user} {url.database}` "
                "(or fix the name in OUTDIAL_DATABASE_URL)"
            )
        if isinstance(cause, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError):
            return DatabaseUnusable(
                f"PostgreSQL on {where} refused the login: {cause}; fix the user or password in "
                "OUTDIAL_DATABASE_URL"
            )
        if isinstance(cause, socket.gaierror):
            return DatabaseUnusable(
                f"cannot reach PostgreSQL: the host {url.host!r} is not known; fix the host in "
                "OUTDIAL_DATABASE_URL"
            )
        if isinstance(cause, ConnectionRefusedError):
            return DatabaseUnusable(
                f"cannot reach PostgreSQL on {where}: the connection was refused; start PostgreSQL "
                "there, or fix the host and port in OUTDIAL_DATABASE_URL"
            )
        if isinstance(cause, TimeoutError):
            return DatabaseUnusable(
                f"cannot reach PostgreSQL on {where}: no answer within {CONNECT_TIMEOUT_SECONDS:g} s; "
                "check that the server is up and that the host and port in OUTDIAL_DATABASE_URL "
                "are right"
            )
        if isinstance(cause, OSError | asyncpg.PostgresError):
            return DatabaseUnusable(f"cannot use PostgreSQL on {where}: {cause}")
        cause = cause.__cause__ or cause.__context__
    return DatabaseUnusable(f"cannot use PostgreSQL on {where}: {error}")


async def check_database(database: Database, timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
    """Connect once, within `timeout`, before anything is written."""
    url = make_url(database.url)
    if database.is_sqlite:
        _check_sqlite_path(url)
        return
    try:
        async with asyncio.timeout(timeout):
            await database.ping()
            encoding = await database.server_encoding()
    except Exception as error:  # noqa: BLE001 - every failure is named for the person starting it
        raise _postgres_problem(url, error) from None
    if encoding != "UTF8":
        # Addresses are Unicode, and their do-not-call and contact-limit keys are folded by
        # the database as by Python only when it reads text as Unicode characters: under
        # SQL_ASCII an "Ü" is two bytes, neither a letter, and a listed address is missed.
        user = f" -U {url.username}" if url.username else ""
        raise DatabaseUnusable(
            f'PostgreSQL database "{url.database}" on {_host_port(url)} stores text as '
            f"{encoding}; Outdial needs UTF8: create one with `createdb -h {url.host or 'localhost'} "
            f"-p {url.port or 5432}{user} -E UTF8 -T template0 NAME` and point "
            "OUTDIAL_DATABASE_URL at it"
        )


async def open_checked_database(raw_url: str) -> Database:
    """The configured database, its URL checked and its server answering; dispose it after use."""
    database = Database(parse_database_url(raw_url).render_as_string(hide_password=False))
    try:
        await check_database(database)
    except BaseException:
        await database.dispose()
        raise
    return database
