"""`outdial`: run the service and administer its database; the API client commands are
registered from `outdial.cli.resources`."""

import asyncio
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

import typer
from rich.console import Console

from outdial.cli import resources
from outdial.cli.output import fail, print_error

# The server side is imported inside the commands that use it: a client command such as
# `outdial outdials list` then starts without loading the database stack and password hasher.
if TYPE_CHECKING:
    from outdial.db import Database
    from outdial.settings import Settings

app = typer.Typer(help="Outdial: outbound dialing lists and the campaigns that dial them.",
                  no_args_is_help=True)
db_app = typer.Typer(help="Database administration.", no_args_is_help=True)
customer_app = typer.Typer(help="Customers (tenants).", no_args_is_help=True)
agent_app = typer.Typer(help="Agents (users who log in).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(customer_app, name="customer")
app.add_typer(agent_app, name="agent")
resources.register(app)

err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)  # it quotes usernames
T = TypeVar("T")


def load_settings() -> "Settings":
    """The OUTDIAL_* settings; a bad value is named with the variable that holds it."""
    from pydantic import ValidationError

    from outdial.settings import Settings

    try:
        return Settings()
    except ValidationError as error:
        first = error.errors()[0]
        if not first["loc"]:
            # A rule across settings names them itself; its input is every setting given,
            # secrets included: never echoed.
            fail(str(first["msg"]).removeprefix("Value error, "))
        name = str(first["loc"][0])
        # A secret's value is never echoed, even a wrong one.
        secret = any(word in name for word in ("password", "secret", "url"))
        shown = "" if secret else f" (got {first.get('input')!r})"
        fail(f"OUTDIAL_{name.upper()}: {first['msg']}{shown}")


def say_database(url: str) -> None:
    """Every server-side command says which database it uses, so that a command run from another
    folder or shell never writes somewhere unnoticed."""
    from outdial.db.preflight import describe

    err.print(f"database: {describe(url)}")


def check_database(settings: "Settings") -> None:
    """Reach the configured database once, before anything is written, and say which it is."""
    from outdial.db.preflight import DatabaseUnusable, open_checked_database

    async def check() -> str:
        database = await open_checked_database(settings.database_url)
        await database.dispose()
        return database.url

    try:
        say_database(asyncio.run(check()))
    except DatabaseUnusable as error:
        fail(error.message)


def _run_with_database(work: Callable[["Database"], Awaitable[T]]) -> T:
    """Run `work` against the configured database (checked, then migrated), errors made readable."""
    from outdial.db.preflight import open_checked_database
    from outdial.errors import OutdialError
    from outdial.migrations import upgrade_database

    settings = load_settings()

    async def main() -> T:
        database = await open_checked_database(settings.database_url)
        try:
            say_database(database.url)
            await upgrade_database(database)
            return await work(database)
        finally:
            await database.dispose()

    try:
        return asyncio.run(main())
    except OutdialError as error:
        fail(error.message)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")] = 8080,
) -> None:
    """Migrate the database, create the first admin if needed, and serve the API."""
    import uvicorn

    from outdial.api import create_app
    from outdial.cli.server import GracefulServer, listen

    settings = load_settings()
    listener = listen(host, port)
    check_database(settings)
    shown_host = f"[{host}]" if ":" in host else host
    err.print(f"serving on http://{shown_host}:{port}")
    config = uvicorn.Config(create_app(settings), log_level=settings.log_level, access_log=False)
    GracefulServer(config).run(sockets=[listener])


@app.command()
def worker(
    metrics_port: Annotated[int | None, typer.Option(
        min=1, max=65535, show_default=False,
        help="serve this worker's Prometheus /metrics on this port (default "
             "OUTDIAL_METRICS_PORT; unset: the worker serves no HTTP)")] = None,
    metrics_host: Annotated[str | None, typer.Option(
        show_default=False,
        help="address for --metrics-port (default OUTDIAL_METRICS_HOST, else 127.0.0.1; "
             "0.0.0.0 lets another machine scrape it)")] = None,
) -> None:
    """Run the dialing engine alone (any number of workers may share one PostgreSQL database)."""
    import logging

    from outdial.cli.server import listen, serve_metrics_during
    from outdial.engine import run_worker

    settings = load_settings()
    port = metrics_port or settings.metrics_port
    host = metrics_host or settings.metrics_host
    # Bound before anything else, as `serve` does: a busy port is said at once.
    listener = listen(host, port, ("--metrics-host", "--metrics-port")) if port else None
    check_database(settings)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if listener is None:
        asyncio.run(run_worker(settings))
        return
    shown_host = f"[{host}]" if ":" in host else host
    err.print(f"metrics on http://{shown_host}:{port}/metrics")
    asyncio.run(serve_metrics_during(run_worker(settings), settings, listener))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""

    async def noop(_: "Database") -> None:
        return None

    _run_with_database(noop)
    err.print("database is up to date")


@customer_app.command("create")
def customer_create(name: Annotated[str, typer.Option(help="the customer's name")]) -> None:
    """Create a customer and print its id."""

    from outdial.auth.service import AuthService
    from outdial.clock import SystemClock

    async def work(database: "Database") -> uuid.UUID:
        async with database.transaction() as session:
            return (await AuthService(session, SystemClock()).create_customer(name)).id

    print(_run_with_database(work))


PASSWORD_VARIABLE = "OUTDIAL_AGENT_PASSWORD"


def read_new_password(option: str | None, from_stdin: bool) -> str:
    """The new agent's password, as UTF-8 text (see _password_from)."""
    password = _password_from(option, from_stdin)
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:  # bytes of another encoding, kept by Python as lone surrogates
        raise typer.BadParameter(
            "not UTF-8 text; type it in a UTF-8 terminal, or convert what you pipe in "
            "(iconv -t UTF-8)", param_hint="password") from None
    return password


def _password_from(option: str | None, from_stdin: bool) -> str:
    """From stdin (--password-stdin), --password (kept for old scripts, with a warning: it
    lands in shell history and the process list), the OUTDIAL_AGENT_PASSWORD variable, or
    asked twice without echo in a terminal."""
    if option is not None and from_stdin:
        raise typer.BadParameter("give the password one way: --password-stdin or --password")
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise typer.BadParameter("stdin held no password", param_hint="--password-stdin")
        return password
    if option is not None:
        err.print("warning: --password shows the password to every user of this machine (process "
                  "list) and keeps it in your shell history; leave it out to be asked, or use "
                  f"--password-stdin or {PASSWORD_VARIABLE}", style="yellow")
        return option
    if password := os.environ.get(PASSWORD_VARIABLE):
        return password
    if not sys.stdin.isatty():
        raise typer.BadParameter(
            f"no password: pipe it in with --password-stdin, set {PASSWORD_VARIABLE}, or run the "
            "command in a terminal to be asked for it", param_hint="password")
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


@agent_app.command("create")
def agent_create(
    customer: Annotated[uuid.UUID, typer.Option(help="the customer's id")],
    username: Annotated[str, typer.Option()],
    # The values of auth.service.Permission, spelled here so that the option needs no import.
    permission: Annotated[Literal["admin", "manager", "agent"], typer.Option()] = "agent",
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="read the password from the first line of stdin")] = False,
    password: Annotated[str | None, typer.Option(
        show_default=False,
        help=f"the password on the command line: visible to others; prefer the prompt, "
             f"--password-stdin or {PASSWORD_VARIABLE}")] = None,
) -> None:
    """Create an agent who can log in, and print its id. The password is asked for twice when
    run in a terminal."""
    from outdial.auth.service import AuthService, Permission
    from outdial.clock import SystemClock

    secret = read_new_password(password, password_stdin)

    async def work(database: "Database") -> uuid.UUID:
        async with database.transaction() as session:
            agent = await AuthService(session, SystemClock()).create_agent(
                customer, username, secret, Permission(permission)
            )
            return agent.id

    print(_run_with_database(work))


@agent_app.command("delete")
def agent_delete(username: Annotated[str, typer.Argument(help="the agent's username")]) -> None:
    """Delete an agent: its login tokens and access keys are refused from now on."""
    from outdial.auth.service import AuthService
    from outdial.clock import SystemClock

    async def work(database: "Database") -> uuid.UUID:
        async with database.transaction() as session:
            return (await AuthService(session, SystemClock()).delete_agent(username)).id

    err.print(f"deleted agent {username} ({_run_with_database(work)}); its tokens and access keys "
              "no longer work")


@agent_app.command("password")
def agent_password(
    username: Annotated[str, typer.Argument(help="the agent's username")],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="read the new password from the first line of stdin")] = False,
) -> None:
    """Change an agent's password: the login tokens it was issued are refused from now on (its
    access keys keep working). The password is asked for twice when run in a terminal, else
    read from stdin (--password-stdin) or OUTDIAL_AGENT_PASSWORD."""
    from outdial.auth.service import AuthService
    from outdial.clock import SystemClock

    secret = read_new_password(None, password_stdin)

    async def work(database: "Database") -> uuid.UUID:
        async with database.transaction() as session:
            return (await AuthService(session, SystemClock()).change_password(username, secret)).id

    err.print(f"changed the password of agent {username} ({_run_with_database(work)}); the "
              "login tokens it was issued no longer work, its access keys still do")


def run() -> None:
    """The `outdial` command. A usage mistake (a missing argument, an unknown option, a value
    of the wrong kind) is one `error:` line naming the help to read, exit code 2, as every
    other mistake is one line: not the framework's box around it."""
    # Typer (pinned in pyproject.toml) carries its own Click; these are its exceptions.
    from typer._click.exceptions import NoArgsIsHelpError, UsageError

    for argument in sys.argv[1:]:
        try:
            argument.encode()
        except UnicodeEncodeError:
            # Bytes that are not UTF-8 reach Python as lone surrogates, which no request,
            # file name or message can carry.
            shown = argument.encode(errors="surrogateescape").decode(errors="backslashreplace")
            print_error(f"the argument `{shown[:100]}` is not UTF-8 text; write it in UTF-8 "
                        "(see `outdial --help`)")
            sys.exit(2)
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as shown:  # a group run alone: its help, as Typer prints it
        print(shown.format_message())
        sys.exit(0)
    except UsageError as mistake:
        command = mistake.ctx.command_path if mistake.ctx is not None else "outdial"
        print_error(f"{mistake.format_message()} (see `{command} --help`)")
        sys.exit(mistake.exit_code)
    except typer.Abort:  # Ctrl-C at a prompt
        print_error("stopped")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
