"""`outdial`: run the service and administer its database; the API client commands are
registered from `outdial.cli.resources`."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

import typer
from rich.console import Console

from outdial.cli import resources

# The server side is imported inside the commands that use it: a client command such as
# `outdial outdials list` then starts without loading the database stack and password hasher.
if TYPE_CHECKING:
    from outdial.db import Database

app = typer.Typer(help="Outdial: outbound dialing lists and the campaigns that dial them.",
                  no_args_is_help=True)
db_app = typer.Typer(help="Database administration.", no_args_is_help=True)
customer_app = typer.Typer(help="Customers (tenants).", no_args_is_help=True)
agent_app = typer.Typer(help="Agents (users who log in).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(customer_app, name="customer")
app.add_typer(agent_app, name="agent")
resources.register(app)

err = Console(stderr=True)
T = TypeVar("T")


def _run_with_database(work: Callable[["Database"], Awaitable[T]]) -> T:
    """Run `work` against the configured database (migrated first), with errors made readable."""
    from outdial.db import Database
    from outdial.errors import OutdialError
    from outdial.migrations import upgrade_database
    from outdial.settings import Settings

    async def main() -> T:
        database = Database(Settings().database_url)
        try:
            await upgrade_database(database)
            return await work(database)
        finally:
            await database.dispose()

    try:
        return asyncio.run(main())
    except OutdialError as error:
        err.print(f"[red]error:[/red] {error.message}")
        raise typer.Exit(1) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
) -> None:
    """Migrate the database, create the first admin if needed, and serve the API."""
    import uvicorn

    from outdial.api import create_app
    from outdial.settings import Settings

    settings = Settings()
    uvicorn.run(create_app(settings), host=host, port=port, log_level=settings.log_level,
                access_log=False)


@app.command()
def worker() -> None:
    """Run the dialing engine alone (any number of workers may share one PostgreSQL database)."""
    import logging

    from outdial.engine import run_worker
    from outdial.settings import Settings

    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_worker(settings))


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


@agent_app.command("create")
def agent_create(
    customer: Annotated[uuid.UUID, typer.Option(help="the customer's id")],
    username: Annotated[str, typer.Option()],
    password: Annotated[str, typer.Option()],
    # The values of auth.service.Permission, spelled here so that the option needs no import.
    permission: Annotated[Literal["admin", "manager", "agent"], typer.Option()] = "agent",
) -> None:
    """Create an agent who can log in, and print its id."""
    from outdial.auth.service import AuthService, Permission
    from outdial.clock import SystemClock

    async def work(database: "Database") -> uuid.UUID:
        async with database.transaction() as session:
            agent = await AuthService(session, SystemClock()).create_agent(
                customer, username, password, Permission(permission)
            )
            return agent.id

    print(_run_with_database(work))
