"""The client commands of `outdial`: login, outdials, targets, outplans, campaigns, import,
export, stats and watch, each one or a few calls of the HTTP API (api.md, engine.md)."""

import json
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

import typer
from rich.console import Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand

from outdial.cli.client import (
    DEFAULT_URL,
    ApiClient,
    ApiError,
    BadServerUrl,
    CliError,
    ServerUnreachable,
    load_config,
    resolve_connection,
    save_config,
)
from outdial.cli.output import (
    Output,
    console,
    err_console,
    event_state,
    event_subject,
    fail,
    item_table,
    list_table,
    print_error,
    print_json,
    stamp,
)

# --- options every client command takes ---------------------------------------------------------

UrlOpt = Annotated[str | None, typer.Option(
    "--url", envvar="OUTDIAL_URL", show_default=False,
    help=f"the server's address (default: the stored login's, else {DEFAULT_URL})")]
TokenOpt = Annotated[str | None, typer.Option(
    "--token", envvar="OUTDIAL_TOKEN", show_default=False,
    help="a login token or access key (default: the stored login's)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the API's raw JSON")]
LimitOpt = Annotated[int, typer.Option("--limit", min=0, help="most items to show; 0 for all")]
OutdialOpt = Annotated[str, typer.Option("--outdial", help="the outdial's id")]


def _hint(error: ApiError) -> str | None:
    if error.reason == "AUTHENTICATION_REQUIRED":
        return "log in with `outdial login`, or pass --token (OUTDIAL_TOKEN)"
    if error.reason == "INVALID_CREDENTIALS":
        return "the token is wrong, expired or revoked: run `outdial login` again"
    if error.route_missing:
        return "this server does not offer that call; is it an older version?"
    return None


@contextmanager
def connect(url: str | None, token: str | None, *, hints: bool = True) -> Iterator[ApiClient]:
    """An API client for the command's body; any failure becomes one error line and exit 1
    (exit 2 for an address that is not a URL: nothing was sent)."""
    try:
        connection = resolve_connection(url, token)
    except BadServerUrl as error:
        raise typer.BadParameter(error.message, param_hint="'--url' / OUTDIAL_URL") from None
    except CliError as error:
        fail(error.message)
    try:
        with ApiClient(connection) as client:
            yield client
    except ApiError as error:
        if error.reason == "AUTHENTICATION_REQUIRED" and connection.token_held_back_for:
            print_error(
                f"no token was sent to {connection.url}: the stored login is for "
                f"{connection.token_held_back_for}, and its token goes only there",
                f"log in to this server with `outdial login --url {connection.url}`, or pass "
                "--token (OUTDIAL_TOKEN)")
            raise typer.Exit(1) from None
        print_error(f"{error.message} ({error.reason})", _hint(error) if hints else None)
        raise typer.Exit(1) from None
    except CliError as error:
        fail(error.message)


def path(*parts: str) -> str:
    """/v1.0/… with every id quoted, so that no argument can reach another route."""
    return "/v1.0/" + "/".join(quote(part, safe="") for part in parts)


def _set(body: dict[str, Any], **values: Any) -> dict[str, Any]:
    """The body with the options the user gave (not None) written over it."""
    return {**body, **{key: value for key, value in values.items() if value is not None}}


def _json_option(text: str | None, option: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as error:
        raise typer.BadParameter(f"not valid JSON: {error}", param_hint=option) from None


def infer_address(value: str, option: str) -> dict[str, str]:
    """"+1555…" → tel, "sip:…"/"sips:…" → sip, "…@…" → email (the import's inference rules)."""
    if value.startswith("+"):
        return {"type": "tel", "target": value}
    if value.startswith(("sip:", "sips:")):
        return {"type": "sip", "target": value}
    if "@" in value:
        return {"type": "email", "target": value}
    raise typer.BadParameter(
        f"{value!r} is none of +E.164 number, sip: URI or email address", param_hint=option)


# --- the commands every resource has -----------------------------------------------------------
# Listing, showing and deleting are the same calls on every collection: written once here. Typer
# builds a command from a function's signature and takes its help from the docstring, so each
# factory makes a function per resource, with that resource's help line (and, where an item is
# named, its argument: ID, or LIST for a do-not-call list).

IdArg = Annotated[str, typer.Argument(metavar="ID")]


def list_command(collection: str, kind: str, doc: str) -> Callable[..., None]:
    """`list`: the collection's items, newest first, as a table of `kind`."""
    def list_items(limit: LimitOpt = 100, url: UrlOpt = None, token: TokenOpt = None,
                   as_json: JsonOpt = False) -> None:
        with connect(url, token) as client:
            Output(as_json).items(kind, *client.pages(path(collection), limit))
    list_items.__doc__ = doc
    return list_items


def sublist_command(collection: str, id_arg: Any, part: str, kind: str,
                    doc: str) -> Callable[..., None]:
    """A list that belongs to one item, e.g. `campaigns calls ID`: collection/ID/part."""
    def list_items(item_id: id_arg, limit: LimitOpt = 100, url: UrlOpt = None,
                   token: TokenOpt = None, as_json: JsonOpt = False) -> None:
        with connect(url, token) as client:
            Output(as_json).items(kind, *client.pages(path(collection, item_id, part), limit))
    list_items.__doc__ = doc
    return list_items


def item_command(method: Literal["get", "delete"], collection: str, doc: str,
                 id_arg: Any = IdArg) -> Callable[..., None]:
    """`get` (or `show`) and `delete`: one call on one item; the answer is the item as it is
    now (a deleted one too)."""
    def on_item(item_id: id_arg, url: UrlOpt = None, token: TokenOpt = None,
                as_json: JsonOpt = False) -> None:
        with connect(url, token) as client:
            call = client.get if method == "get" else client.delete
            Output(as_json).item(call(path(collection, item_id)))
    on_item.__doc__ = doc
    return on_item


def _renamed(current: dict[str, Any], name: str | None, detail: str | None) -> dict[str, Any]:
    """The body of a PUT of name and detail, which replaces both: the current value of the one
    not given is sent again."""
    return _set({"name": current["name"], "detail": current["detail"]}, name=name, detail=detail)


# --- login -------------------------------------------------------------------------------------

def login(
    username: Annotated[str, typer.Option(prompt=True, help="the agent's username")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True,
                                          help="asked for when not given")],
    url: Annotated[str | None, typer.Option(
        "--url", envvar="OUTDIAL_URL", show_default=False,
        help=f"the server's address (default: {DEFAULT_URL})")] = None,
) -> None:
    """Log in and store the server's address and token for the next commands."""
    server = (url or DEFAULT_URL).rstrip("/")
    with connect(server, "", hints=False) as client:
        token = client.login(username, password)
    stored = save_config({"url": server, "username": username, "token": token})
    err_console.print(f"logged in to {server} as {username}; saved in {stored}")


def logout() -> None:
    """Forget the stored token (the server's address is kept)."""
    config = load_config()
    if config.pop("token", None) is None:
        err_console.print("not logged in")
        return
    save_config(config)
    err_console.print(f"logged out of {config.get('url', '')}")


# --- outdials ----------------------------------------------------------------------------------

outdials_app = typer.Typer(help="Outdials: dialing lists.", no_args_is_help=True)


outdials_app.command("list")(list_command("outdials", "outdial", "List outdials, newest first."))


@outdials_app.command("create")
def outdials_create(
    name: Annotated[str, typer.Option()] = "",
    detail: Annotated[str, typer.Option()] = "",
    data: Annotated[str, typer.Option(help="opaque text passed to whatever dials")] = "",
    campaign: Annotated[str | None, typer.Option(help="the campaign using it")] = None,
    url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Create an outdial."""
    body = _set({"name": name, "detail": detail, "data": data}, campaign_id=campaign)
    with connect(url, token) as client:
        Output(as_json).item(client.post(path("outdials"), body))


outdials_app.command("get")(item_command("get", "outdials", "Show one outdial."))


@outdials_app.command("update")
def outdials_update(
    outdial_id: IdArg,
    name: Annotated[str | None, typer.Option()] = None,
    detail: Annotated[str | None, typer.Option()] = None,
    data: Annotated[str | None, typer.Option()] = None,
    campaign: Annotated[str | None, typer.Option(help="a campaign id, or the nil UUID for none")] = None,
    url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Change an outdial's name, detail, data or campaign; fields not given are kept."""
    if name is None and detail is None and data is None and campaign is None:
        raise typer.BadParameter("give at least one of --name, --detail, --data, --campaign")
    with connect(url, token) as client:
        here = path("outdials", outdial_id)
        answer = client.get(here)
        if name is not None or detail is not None:
            answer = client.put(here, _renamed(answer, name, detail))
        if data is not None:
            answer = client.put(f"{here}/data", {"data": data})
        if campaign is not None:
            answer = client.put(f"{here}/campaign_id", {"campaign_id": campaign})
        Output(as_json).item(answer)


outdials_app.command("delete")(item_command(
    "delete", "outdials", "Delete an outdial (it stays readable, with tm_delete set)."))


# --- targets -----------------------------------------------------------------------------------

targets_app = typer.Typer(help="Targets: the people an outdial holds.", no_args_is_help=True)
DESTINATION_KINDS = ("tel", "sip", "email")


class DestinationOrderCommand(TyperCommand):
    """Remembers the order of --tel/--sip/--email on the command line: click gathers each option
    into its own list, but destination_0..4 follow the order in which they were written."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # ctx: typer's click Context
        order = []
        for arg in args:
            if arg == "--":
                break
            order += [kind for kind in DESTINATION_KINDS
                      if arg == f"--{kind}" or arg.startswith(f"--{kind}=")]
        ctx.meta["destination_order"] = order
        return super().parse_args(ctx, args)


TelOpt = Annotated[list[str] | None, typer.Option("--tel", help="an E.164 number (repeatable)")]
SipOpt = Annotated[list[str] | None, typer.Option("--sip", help="a SIP URI (repeatable)")]
EmailOpt = Annotated[list[str] | None, typer.Option("--email", help="an email address (repeatable)")]
TimezoneOpt = Annotated[str | None, typer.Option(
    help="the target's IANA time zone for calling windows, e.g. America/Chicago (default: "
         "its numbers' zones)")]
DestinationJsonOpt = Annotated[str | None, typer.Option(
    "--destination-json",
    help='addresses as JSON: one {"type", "target", ...} or a list of up to 5 (null allowed)')]


def destinations_from_options(ctx: typer.Context, tel: list[str] | None, sip: list[str] | None,
                              email: list[str] | None, as_json: str | None) -> list[Any] | None:
    """destination_0..N from the options, in command-line order; None when none was given."""
    given = {"tel": iter(tel or []), "sip": iter(sip or []), "email": iter(email or [])}
    order = ctx.meta.get("destination_order", [])
    addresses: list[Any] = [{"type": kind, "target": next(given[kind])} for kind in order]
    if as_json is not None:
        if addresses:
            raise typer.BadParameter("use either --tel/--sip/--email or --destination-json")
        parsed = _json_option(as_json, "--destination-json")
        addresses = parsed if isinstance(parsed, list) else [parsed]
    if not addresses:
        return None
    if len(addresses) > 5:
        raise typer.BadParameter(f"a target has at most 5 destinations, not {len(addresses)}")
    return addresses


def _with_destinations(body: dict[str, Any], addresses: list[Any]) -> dict[str, Any]:
    slots = {f"destination_{n}": addresses[n] if n < len(addresses) else None for n in range(5)}
    return {**body, **slots}


@targets_app.command("list")
def targets_list(
    outdial: OutdialOpt,
    status: Annotated[Literal["idle", "progressing", "done"] | None, typer.Option()] = None,
    limit: LimitOpt = 100, url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """List an outdial's targets, newest first."""
    with connect(url, token) as client:
        Output(as_json).items("target", *client.pages(path("outdials", outdial, "targets"), limit,
                                                      status=status))


@targets_app.command("create", cls=DestinationOrderCommand)
def targets_create(
    ctx: typer.Context,
    outdial: OutdialOpt,
    name: Annotated[str, typer.Option()] = "",
    detail: Annotated[str, typer.Option()] = "",
    data: Annotated[str, typer.Option()] = "",
    tel: TelOpt = None, sip: SipOpt = None, email: EmailOpt = None,
    destination_json: DestinationJsonOpt = None, timezone: TimezoneOpt = None,
    url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Add a target; its destinations are the --tel/--sip/--email given, in that order."""
    addresses = destinations_from_options(ctx, tel, sip, email, destination_json)
    if addresses is None:
        raise typer.BadParameter("give at least one --tel, --sip, --email or --destination-json")
    body = _with_destinations(_set({"name": name, "detail": detail, "data": data},
                                   timezone=timezone), addresses)
    with connect(url, token) as client:
        Output(as_json).item(client.post(path("outdials", outdial, "targets"), body))


@targets_app.command("get")
def targets_get(target_id: IdArg, outdial: OutdialOpt,
                url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Show one target."""
    with connect(url, token) as client:
        Output(as_json).item(client.get(path("outdials", outdial, "targets", target_id)))


@targets_app.command("update", cls=DestinationOrderCommand)
def targets_update(
    ctx: typer.Context,
    target_id: IdArg,
    outdial: OutdialOpt,
    name: Annotated[str | None, typer.Option()] = None,
    detail: Annotated[str | None, typer.Option()] = None,
    data: Annotated[str | None, typer.Option()] = None,
    tel: TelOpt = None, sip: SipOpt = None, email: EmailOpt = None,
    destination_json: DestinationJsonOpt = None,
    timezone: Annotated[str | None, typer.Option(
        help='an IANA time zone, or "" for none (its numbers\' zones)')] = None,
    url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Change a target; destinations given replace all of its destinations, the rest is kept."""
    addresses = destinations_from_options(ctx, tel, sip, email, destination_json)
    if addresses is None and name is None and detail is None and data is None and timezone is None:
        raise typer.BadParameter("give at least one field to change")
    with connect(url, token) as client:
        here = path("outdials", outdial, "targets", target_id)
        current = client.get(here)
        # PUT replaces every field: those not given are sent as they are.
        body = _set({key: current.get(key) for key in ("name", "detail", "data", "timezone")},
                    name=name, detail=detail, data=data)
        if timezone is not None:
            body["timezone"] = timezone or None
        body = _with_destinations(body, addresses if addresses is not None else
                                  [current[f"destination_{n}"] for n in range(5)])
        Output(as_json).item(client.put(here, body))


@targets_app.command("delete")
def targets_delete(target_id: IdArg, outdial: OutdialOpt,
                   url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Delete a target."""
    with connect(url, token) as client:
        Output(as_json).item(client.delete(path("outdials", outdial, "targets", target_id)))


# --- outplans ----------------------------------------------------------------------------------

outplans_app = typer.Typer(help="Outplans: how hard to try each target.", no_args_is_help=True)
SourceOpt = Annotated[str | None, typer.Option(
    help="caller id / sender: +E.164, sip: URI or email address")]
DialTimeoutOpt = Annotated[int | None, typer.Option(help="ms to wait for an answer")]
TryIntervalOpt = Annotated[int | None, typer.Option(help="ms between attempts of one target")]
MaxTryOpt = Annotated[list[int] | None, typer.Option(
    "--max-try-count", help="attempts on destination_0, then _1, … (repeat in slot order)")]
SipChannelOpt = Annotated[str | None, typer.Option(
    "--sip-channel", help="channel dialing tel and sip destinations (nil UUID: none)")]
EmailChannelOpt = Annotated[str | None, typer.Option(
    "--email-channel", help="channel sending to email destinations (nil UUID: none)")]
RetryRulesOpt = Annotated[str | None, typer.Option(
    "--retry-rules-json",
    help='what each outcome does next, e.g. {"busy": {"interval": 120000, "max_tries": 3, '
         '"next": "retry", "backoff": 2}}; null: try_interval for every outcome')]
DIAL_INFO = ("source", "dial_timeout", "try_interval", *(f"max_try_count_{n}" for n in range(5)),
             "retry_rules")


def _dial_info(source: str | None, dial_timeout: int | None, try_interval: int | None,
               max_try_count: list[int] | None, sip_channel: str | None = None,
               email_channel: str | None = None,
               retry_rules_json: str | None = None) -> dict[str, Any]:
    if max_try_count and len(max_try_count) > 5:
        raise typer.BadParameter("at most 5 values (slots 0-4)", param_hint="--max-try-count")
    info = _set({}, dial_timeout=dial_timeout, try_interval=try_interval,
                source=None if source is None else infer_address(source, "--source"),
                sip_channel_id=sip_channel, email_channel_id=email_channel)
    for slot, count in enumerate(max_try_count or []):
        info[f"max_try_count_{slot}"] = count
    if retry_rules_json is not None:
        # null is a value here: it takes the rules away.
        info["retry_rules"] = _json_option(retry_rules_json, "--retry-rules-json")
    return info


outplans_app.command("list")(list_command("outplans", "outplan", "List outplans, newest first."))


@outplans_app.command("create")
def outplans_create(
    name: Annotated[str, typer.Option()] = "",
    detail: Annotated[str, typer.Option()] = "",
    source: SourceOpt = None, dial_timeout: DialTimeoutOpt = None,
    try_interval: TryIntervalOpt = None, max_try_count: MaxTryOpt = None,
    sip_channel: SipChannelOpt = None, email_channel: EmailChannelOpt = None,
    retry_rules_json: RetryRulesOpt = None,
    url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Create an outplan; values not given take the server's defaults."""
    body = {"name": name, "detail": detail,
            **_dial_info(source, dial_timeout, try_interval, max_try_count, sip_channel,
                         email_channel, retry_rules_json)}
    with connect(url, token) as client:
        Output(as_json).item(client.post(path("outplans"), body))


outplans_app.command("get")(item_command("get", "outplans", "Show one outplan."))


@outplans_app.command("update")
def outplans_update(
    outplan_id: IdArg,
    name: Annotated[str | None, typer.Option()] = None,
    detail: Annotated[str | None, typer.Option()] = None,
    source: SourceOpt = None, dial_timeout: DialTimeoutOpt = None,
    try_interval: TryIntervalOpt = None, max_try_count: MaxTryOpt = None,
    sip_channel: SipChannelOpt = None, email_channel: EmailChannelOpt = None,
    retry_rules_json: RetryRulesOpt = None,
    url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Change an outplan; fields not given are kept."""
    info = _dial_info(source, dial_timeout, try_interval, max_try_count, sip_channel,
                      email_channel, retry_rules_json)
    if name is None and detail is None and not info:
        raise typer.BadParameter("give at least one field to change")
    with connect(url, token) as client:
        here = path("outplans", outplan_id)
        answer = client.get(here)
        if name is not None or detail is not None:
            answer = client.put(here, _renamed(answer, name, detail))
        if info:
            # PUT dial_info replaces these (the channels are kept when left out): send the
            # current value of each one not given.
            answer = client.put(f"{here}/dial_info",
                                {**{k: answer.get(k) for k in DIAL_INFO}, **info})
        Output(as_json).item(answer)


outplans_app.command("delete")(item_command("delete", "outplans", "Delete an outplan."))


# --- campaigns ---------------------------------------------------------------------------------

campaigns_app = typer.Typer(help="Campaigns: runs that dial an outdial by an outplan.",
                            no_args_is_help=True)
EndHandleOpt = Annotated[Literal["stop", "continue"] | None, typer.Option(
    help="stop by itself when nothing is left to dial, or keep waiting for new targets")]
ConcurrencyOpt = Annotated[int | None, typer.Option(help="most attempts in flight at once")]
DialRateOpt = Annotated[int | None, typer.Option(help="most new attempts per second")]
ActionsOpt = Annotated[str | None, typer.Option(
    "--actions-json", help='the dialer\'s actions, e.g. [{"type": "talk", "option": {}}]')]
ServiceLevelOpt = Annotated[int | None, typer.Option()]
WindowDaysOpt = Annotated[str | None, typer.Option(
    "--window-days", help="calling window: the days it opens, e.g. mon-fri or mon,wed,sat")]
WindowStartOpt = Annotated[str | None, typer.Option(
    "--window-start", help="calling window: local opening time, HH:MM")]
WindowEndOpt = Annotated[str | None, typer.Option(
    "--window-end", help="calling window: local closing time, HH:MM (24:00: midnight)")]
WindowZoneOpt = Annotated[str | None, typer.Option(
    "--window-timezone",
    help="calling window: the IANA zone of destinations with no known zone (sip, email)")]
HolidayOpt = Annotated[list[str] | None, typer.Option(
    "--window-holiday", help="calling window: a local date YYYY-MM-DD it stays shut (repeatable)")]
PriorityOpt = Annotated[Literal["due_first", "fresh_first"] | None, typer.Option(
    help="due_first: earliest due first; fresh_first: untried targets before retries")]
DnclistOpt = Annotated[list[str] | None, typer.Option(
    "--dnclist", help="a do-not-call list to honour, besides those applying to all (repeatable)")]
CAMPAIGN_BASICS = ("type", "name", "detail", "end_handle", "concurrency", "dial_rate")
CAMPAIGN_RESOURCES = ("outplan_id", "outdial_id", "queue_id", "next_campaign_id")
WINDOW_REQUIRED = {"days": "--window-days", "start": "--window-start", "end": "--window-end",
                   "timezone_default": "--window-timezone"}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_days(text: str) -> list[str]:
    """"mon-fri" or "mon,wed,sat-sun" → the days in week order; a range may wrap (fri-mon)."""
    days: set[str] = set()
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        for day in (first, last or first):
            if day not in DAYS:
                raise typer.BadParameter(f"{day!r} is not one of {', '.join(DAYS)}",
                                         param_hint="--window-days")
        start, end = DAYS.index(first), DAYS.index(last or first)
        days.update(DAYS[(start + n) % 7] for n in range((end - start) % 7 + 1))
    return [day for day in DAYS if day in days]


def calling_window(current: dict[str, Any] | None, days: str | None, start: str | None,
                   end: str | None, zone: str | None,
                   holidays: list[str] | None) -> dict[str, Any] | None:
    """The window the options describe, written over `current`; None when none was given. A
    new window needs its days, hours and default zone."""
    given = _set({}, days=None if days is None else parse_days(days), start=start, end=end,
                 timezone_default=zone, holidays=holidays)
    if not given:
        return None
    window = {**(current or {}), **given}
    if missing := [option for key, option in WINDOW_REQUIRED.items() if key not in window]:
        raise typer.BadParameter(f"a calling window needs {', '.join(missing)} too")
    return window


campaigns_app.command("list")(list_command("campaigns", "campaign",
                                           "List campaigns, newest first."))


@campaigns_app.command("create")
def campaigns_create(
    outdial: Annotated[str, typer.Option(help="the outdial to dial")],
    outplan: Annotated[str, typer.Option(help="the outplan to dial it by")],
    name: Annotated[str, typer.Option()] = "",
    detail: Annotated[str, typer.Option()] = "",
    campaign_type: Annotated[str, typer.Option("--type")] = "call",
    end_handle: EndHandleOpt = None, concurrency: ConcurrencyOpt = None,
    dial_rate: DialRateOpt = None, actions_json: ActionsOpt = None,
    service_level: ServiceLevelOpt = None,
    queue: Annotated[str | None, typer.Option(help="a queue id (kept for compatibility)")] = None,
    next_campaign: Annotated[str | None, typer.Option(help="a campaign id")] = None,
    window_days: WindowDaysOpt = None, window_start: WindowStartOpt = None,
    window_end: WindowEndOpt = None, window_timezone: WindowZoneOpt = None,
    window_holiday: HolidayOpt = None, priority: PriorityOpt = None,
    dnclist: DnclistOpt = None,
    url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Create a campaign (status stop; start it with `campaigns run`). Without --window-*
    options it may dial at any time."""
    body = _set({"type": campaign_type, "name": name, "detail": detail,
                 "outdial_id": outdial, "outplan_id": outplan},
                end_handle=end_handle, concurrency=concurrency, dial_rate=dial_rate,
                service_level=service_level, queue_id=queue, next_campaign_id=next_campaign,
                actions=_json_option(actions_json, "--actions-json"),
                calling_window=calling_window(None, window_days, window_start, window_end,
                                              window_timezone, window_holiday),
                priority=priority, dnclist_ids=dnclist)
    with connect(url, token) as client:
        Output(as_json).item(client.post(path("campaigns"), body))


campaigns_app.command("get")(item_command("get", "campaigns", "Show one campaign."))


@campaigns_app.command("update")
def campaigns_update(
    campaign_id: IdArg,
    name: Annotated[str | None, typer.Option()] = None,
    detail: Annotated[str | None, typer.Option()] = None,
    end_handle: EndHandleOpt = None, concurrency: ConcurrencyOpt = None,
    dial_rate: DialRateOpt = None, actions_json: ActionsOpt = None,
    service_level: ServiceLevelOpt = None,
    outdial: Annotated[str | None, typer.Option()] = None,
    outplan: Annotated[str | None, typer.Option()] = None,
    queue: Annotated[str | None, typer.Option()] = None,
    next_campaign: Annotated[str | None, typer.Option()] = None,
    window_days: WindowDaysOpt = None, window_start: WindowStartOpt = None,
    window_end: WindowEndOpt = None, window_timezone: WindowZoneOpt = None,
    window_holiday: HolidayOpt = None,
    no_window: Annotated[bool, typer.Option(
        "--no-window", help="take the calling window away: dial at any time")] = False,
    no_holidays: Annotated[bool, typer.Option(
        "--no-holidays", help="clear the calling window's holidays, keeping its days and "
                              "hours")] = False,
    priority: PriorityOpt = None, dnclist: DnclistOpt = None,
    no_dnclists: Annotated[bool, typer.Option(
        "--no-dnclists", help="honour no list but those applying to all")] = False,
    url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Change a campaign; fields not given are kept. The --window-* options given replace
    those parts of its calling window (--window-holiday: all its holidays; --no-holidays clears
    them); --dnclist replaces its lists."""
    window_given = any(option is not None for option in (
        window_days, window_start, window_end, window_timezone, window_holiday))
    if no_window and (window_given or no_holidays):
        raise typer.BadParameter("give either --no-window or --window-* options")
    if no_holidays and window_holiday:
        raise typer.BadParameter("give either --no-holidays or --window-holiday")
    if no_dnclists and dnclist:
        raise typer.BadParameter("give either --no-dnclists or --dnclist")
    basics = _set({}, name=name, detail=detail, end_handle=end_handle, concurrency=concurrency,
                  dial_rate=dial_rate, priority=priority,
                  dnclist_ids=[] if no_dnclists else dnclist)
    resources = _set({}, outdial_id=outdial, outplan_id=outplan, queue_id=queue,
                     next_campaign_id=next_campaign)
    actions = _json_option(actions_json, "--actions-json")
    if (not basics and not resources and actions is None and service_level is None
            and not window_given and not no_window and not no_holidays):
        raise typer.BadParameter("give at least one field to change")
    with connect(url, token) as client:
        here = path("campaigns", campaign_id)
        answer = client.get(here)
        if no_window:
            basics["calling_window"] = None  # sent as null: no window any more
        elif window_given or no_holidays:
            if no_holidays and answer.get("calling_window") is None and not window_given:
                raise CliError(f"campaign {campaign_id} has no calling window")
            basics["calling_window"] = calling_window(
                answer.get("calling_window"), window_days, window_start, window_end,
                window_timezone, [] if no_holidays else window_holiday)
        if basics:
            # PUT replaces these together: send the current values of those not given.
            current = {k: answer[k] for k in CAMPAIGN_BASICS if k in answer}
            answer = client.put(here, {**current, **basics})
        if resources:
            current = {k: answer[k] for k in CAMPAIGN_RESOURCES}
            answer = client.put(f"{here}/resource_info", {**current, **resources})
        if actions is not None:
            answer = client.put(f"{here}/actions", {"actions": actions})
        if service_level is not None:
            answer = client.put(f"{here}/service_level", {"service_level": service_level})
        Output(as_json).item(answer)


campaigns_app.command("delete")(item_command("delete", "campaigns", "Delete a stopped campaign."))


def status_command(status: str, doc: str) -> Callable[..., None]:
    """`run` and `stop`: the campaign's status set to `status`."""
    def set_status(campaign_id: IdArg, url: UrlOpt = None, token: TokenOpt = None,
                   as_json: JsonOpt = False) -> None:
        with connect(url, token) as client:
            Output(as_json).item(client.put(path("campaigns", campaign_id, "status"),
                                            {"status": status}))
    set_status.__doc__ = doc
    return set_status


campaigns_app.command("run")(status_command("run", "Start dialing."))
campaigns_app.command("stop")(status_command(
    "stop", "Stop dialing (status `stopping` until the attempts in flight end)."))


campaigns_app.command("calls")(sublist_command(
    "campaigns", IdArg, "campaigncalls", "campaigncall",
    "List a campaign's attempts (campaigncalls), newest first."))


# --- channels ----------------------------------------------------------------------------------

channels_app = typer.Typer(help="Channels: SIP trunks, SMTP relays and simulated channels.",
                           no_args_is_help=True)
SettingsOpt = Annotated[str | None, typer.Option(
    "--settings-json", help='the type\'s settings as JSON, e.g. {"host": "sip.example.net"}')]
AskPasswordOpt = Annotated[bool, typer.Option(
    "--ask-password", help="ask for the channel's password (kept out of the shell history)")]


def _channel_settings(settings_json: str | None, ask_password: bool) -> dict[str, Any]:
    settings = _json_option(settings_json, "--settings-json") or {}
    if not isinstance(settings, dict):
        raise typer.BadParameter("must be a JSON object", param_hint="--settings-json")
    if ask_password:
        settings["password"] = typer.prompt("password", hide_input=True, err=True)
    return settings


channels_app.command("list")(list_command("channels", "channel", "List channels, newest first."))


@channels_app.command("create")
def channels_create(
    channel_type: Annotated[Literal["sip", "smtp", "simulated"], typer.Option("--type")],
    name: Annotated[str, typer.Option()] = "",
    detail: Annotated[str, typer.Option()] = "",
    settings_json: SettingsOpt = None, ask_password: AskPasswordOpt = False,
    url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Create a channel; settings not given take the server's defaults."""
    body = {"name": name, "detail": detail, "type": channel_type,
            "settings": _channel_settings(settings_json, ask_password)}
    with connect(url, token) as client:
        Output(as_json).item(client.post(path("channels"), body))


channels_app.command("get")(item_command(
    "get", "channels", "Show one channel (its password is never shown, only whether it has one)."))


@channels_app.command("update")
def channels_update(
    channel_id: IdArg,
    name: Annotated[str | None, typer.Option()] = None,
    detail: Annotated[str | None, typer.Option()] = None,
    settings_json: Annotated[str | None, typer.Option(
        "--settings-json", help="settings to change, as JSON; the others are kept")] = None,
    ask_password: AskPasswordOpt = False,
    url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Change a channel; fields and settings not given are kept (the password too)."""
    changes = _channel_settings(settings_json, ask_password)
    if name is None and detail is None and not changes:
        raise typer.BadParameter("give at least one of --name, --detail, --settings-json, "
                                 "--ask-password")
    with connect(url, token) as client:
        here = path("channels", channel_id)
        current = client.get(here)
        settings = {k: v for k, v in current["settings"].items()
                    if k not in ("password", "has_password")}
        body = {**_renamed(current, name, detail), "settings": {**settings, **changes}}
        Output(as_json).item(client.put(here, body))


channels_app.command("delete")(item_command(
    "delete", "channels", "Delete a channel that no running campaign uses."))


# The server gives a check up to 45 s (channels.service.CHECK_TIMEOUT_S) and then answers why
# it failed: the command waits for that answer.
CHANNEL_CHECK_ANSWER_S = 60.0


@channels_app.command("check")
def channels_check(channel_id: IdArg, url: UrlOpt = None,
                   token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Try the channel now (SMTP: connect, TLS, AUTH; SIP: OPTIONS); exit 1 if it failed."""
    with connect(url, token) as client:
        answer = client.request("POST", path("channels", channel_id, "check"), json_body={},
                                timeout=CHANNEL_CHECK_ANSWER_S)
    if as_json:
        print_json(answer)
    else:
        (console if answer["ok"] else err_console).print(
            f"{'ok' if answer['ok'] else 'failed'}: {answer['detail']}")
    if not answer["ok"]:
        raise typer.Exit(1)


# --- webhooks ----------------------------------------------------------------------------------

webhooks_app = typer.Typer(help="Webhooks: endpoints that receive events, signed.",
                           no_args_is_help=True)
EventTypeOpt = Annotated[list[str] | None, typer.Option(
    "--event-type", help="an event type to deliver (repeat it); none: every type")]


webhooks_app.command("list")(list_command("webhooks", "webhook", "List webhooks, newest first."))


@webhooks_app.command("create")
def webhooks_create(
    endpoint: Annotated[str, typer.Argument(metavar="URL", help="where events are POSTed")],
    event_type: EventTypeOpt = None,
    ask_secret: Annotated[bool, typer.Option(
        "--ask-secret", help="ask for your own whsec_… secret instead of a generated one")] = False,
    url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Create a webhook; its signing secret is shown this once."""
    body: dict[str, Any] = {"url": endpoint, "event_types": event_type or []}
    if ask_secret:
        body["secret"] = typer.prompt("secret", hide_input=True, err=True)
    with connect(url, token) as client:
        Output(as_json).item(client.post(path("webhooks"), body))


webhooks_show = item_command("get", "webhooks", "Show one webhook (never its secret).")
webhooks_app.command("show")(webhooks_show)
webhooks_app.command("get", hidden=True)(webhooks_show)  # the other resources' word


@webhooks_app.command("update")
def webhooks_update(
    webhook_id: IdArg,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="a new URL")] = None,
    event_type: EventTypeOpt = None,
    all_types: Annotated[bool, typer.Option("--all-types", help="deliver every type")] = False,
    status: Annotated[Literal["enabled", "disabled"] | None, typer.Option()] = None,
    url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Change a webhook's URL or event types, or enable or disable it; the rest is kept."""
    with connect(url, token) as client:
        here = path("webhooks", webhook_id)
        current = client.get(here)
        types = [] if all_types else (event_type or current["event_types"])
        body = _set({"url": current["url"], "event_types": types}, url=endpoint, status=status)
        Output(as_json).item(client.put(here, body))


webhooks_app.command("delete")(item_command(
    "delete", "webhooks", "Delete a webhook: nothing more is sent to it."))


webhooks_app.command("deliveries")(sublist_command(
    "webhooks", IdArg, "deliveries", "delivery",
    "The webhook's deliveries, newest first, with their latest attempt."))


@webhooks_app.command("retry")
def webhooks_retry(webhook_id: IdArg,
                   delivery_id: Annotated[str, typer.Argument(metavar="DELIVERY_ID")],
                   url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Send a delivery again now."""
    with connect(url, token) as client:
        Output(as_json).item(client.post(
            path("webhooks", webhook_id, "deliveries", delivery_id, "retry"), {}))


@webhooks_app.command("test")
def webhooks_test(webhook_id: IdArg, url: UrlOpt = None,
                  token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Send a signed ping now; exit 1 if the receiver did not take it."""
    with connect(url, token) as client:
        answer = client.post(path("webhooks", webhook_id, "test"), {})
    if as_json:
        print_json(answer)
    elif answer["status"] == "delivered":
        console.print(f"delivered: {answer['response_code']} in {answer['latency_ms']} ms")
    else:
        err_console.print(f"failed: {answer['error']}")
    if answer["status"] != "delivered":
        raise typer.Exit(1)


# --- import, export, stats ---------------------------------------------------------------------

IMPORT_TYPES = {"csv": "text/csv", "ndjson": "application/x-ndjson", "json": "application/json"}
EXTENSIONS = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson", ".json": "json"}
CHUNK_BYTES = 256 * 1024


class _Upload:
    """The file sent in a thread while the main thread follows the job; what came of it."""

    def __init__(self, client: ApiClient, file: Path, target: str, content_type: str,
                 params: dict[str, Any]) -> None:
        self.size = file.stat().st_size
        self.sent = 0
        self.finished = False  # every byte was handed to the connection
        self.job: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self._args = (client, file, target, content_type, params)
        self.thread = threading.Thread(target=self._run, name="upload", daemon=True)

    def _chunks(self, file: Path) -> Iterator[bytes]:
        with file.open("rb") as source:
            while chunk := source.read(CHUNK_BYTES):
                self.sent += len(chunk)
                yield chunk
        self.finished = True

    def _run(self) -> None:
        client, file, target, content_type, params = self._args
        try:
            self.job = client.upload(target, self._chunks(file), content_type, **params)
        except BaseException as error:  # noqa: BLE001 - handed to the main thread, which raises it
            self.error = error


def _rows_done(job: dict[str, Any]) -> int:
    return sum(int(job.get(key) or 0) for key in ("rows_imported", "rows_rejected", "rows_duplicate"))


def _counts(job: dict[str, Any]) -> str:
    return (f"{job.get('rows_imported', 0)} imported, {job.get('rows_rejected', 0)} rejected, "
            f"{job.get('rows_duplicate', 0)} duplicate")


@dataclass(frozen=True)
class Holder:
    """What an import fills: an outdial (its targets) or a do-not-call list (its entries)."""

    collection: Literal["outdials", "dnclists"]
    id: str

    def path(self, *parts: str) -> str:
        return path(self.collection, self.id, *parts)

    @property
    def option(self) -> str:
        return "--outdial" if self.collection == "outdials" else "--dnclist"


def _follow_hint(holder: Holder, job_id: str) -> str:
    return f"outdial imports show {job_id} {holder.option} {holder.id} --follow"


def _file_kind(file: Path, file_format: str | None) -> str:
    kind = file_format or EXTENSIONS.get(file.suffix.lower())
    if kind is None:
        raise typer.BadParameter(f"cannot tell the format of {file.name}; give --format",
                                 param_hint="FILE")
    return kind


FileArg = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="a .csv, .ndjson/.jsonl or .json file")]
# Also spelled as the API's parameter, which the server's messages name.
RegionOpt = Annotated[str | None, typer.Option(
    "--region", "--default-region",
    help="country (ISO 3166, e.g. US) of numbers written without +country code")]
FileFormatOpt = Annotated[Literal["csv", "ndjson", "json"] | None, typer.Option(
    "--format", help="the file's format (default: from its extension)")]
ShowErrorsOpt = Annotated[int, typer.Option("--errors", min=0, help="bad rows to show")]
PollOpt = Annotated[float, typer.Option(min=0.05, help="seconds between progress checks")]


def import_file(
    file: FileArg,
    outdial: OutdialOpt,
    region: RegionOpt = None,
    dedupe: Annotated[bool, typer.Option(
        help="skip rows whose first destination is already in the outdial or the file")] = False,
    validation: Annotated[Literal["possible", "valid"] | None, typer.Option(
        help="possible: plausible length; valid: also a range in service (default: possible)")] = None,
    file_format: FileFormatOpt = None, show_errors: ShowErrorsOpt = 10, poll: PollOpt = 0.5,
    url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Import targets from a file, streamed, following the job's counts until it ends."""
    params = {"default_region": region, "validation": validation, "dedupe": dedupe or None}
    run_import(Holder("outdials", outdial), file, _file_kind(file, file_format), params,
               show_errors, poll, url, token, as_json)


def run_import(holder: Holder, file: Path, kind: str, params: dict[str, Any], show_errors: int,
               poll: float, url: str | None, token: str | None, as_json: bool) -> None:
    """Send the file to the holder's imports, show its progress, then the finished job."""
    # The id is chosen here so that the job can be followed (here or from elsewhere) while
    # the file is still being sent: the server answers the upload only once it has ended.
    job_id = str(uuid.uuid4())
    params = {**params, "id": job_id}
    with connect(url, token) as client:
        # On one line however narrow the terminal: the command is meant to be copied.
        err_console.print(f"import {job_id}: follow it from elsewhere with "
                          f"`{_follow_hint(holder, job_id)}`", soft_wrap=True)
        upload = _Upload(client, file, holder.path("imports"), IMPORT_TYPES[kind], params)
        try:
            job = _send_and_follow(client, upload, holder, job_id, poll, as_json)
        except KeyboardInterrupt:
            if upload.finished:
                err_console.print(f"stopped following; import {job_id} goes on on the server: "
                                  f"`{_follow_hint(holder, job_id)}`", soft_wrap=True)
            else:
                err_console.print(f"upload stopped: import {job_id} fails on the server and "
                                  f"imports no row; see it with `{_follow_hint(holder, job_id)}`",
                                  soft_wrap=True)
            raise typer.Exit(130) from None
    _print_import(job, show_errors, as_json)
    if job.get("status") == "failed":
        raise typer.Exit(1)


class _CtrlC:
    """Ctrl-C, noted by its signal handler and raised (KeyboardInterrupt) only where a loop
    checks for it. Raised wherever it lands, it can land inside a `with lock:` of the progress
    display, after the lock is taken and before the block that gives it back: the display's own
    thread then waits for that lock forever, and so does the command's exit."""

    def __init__(self) -> None:
        self.pressed = threading.Event()

    def check(self) -> None:
        if self.pressed.is_set():
            raise KeyboardInterrupt


@contextmanager
def _ctrl_c_at_checks() -> Iterator[_CtrlC]:
    ctrl_c = _CtrlC()
    if threading.current_thread() is not threading.main_thread():
        yield ctrl_c  # only the main thread gets signals
        return
    previous = signal.signal(signal.SIGINT, lambda *_: ctrl_c.pressed.set())
    try:
        yield ctrl_c
    finally:
        signal.signal(signal.SIGINT, previous)


def _send_and_follow(client: ApiClient, upload: _Upload, holder: Holder, job_id: str,
                     poll: float, quiet: bool) -> dict[str, Any]:
    """Send the file and, meanwhile, show what is sent and the job's counts as it checks and
    writes the rows; the answer to the upload is the finished job."""
    here = holder.path("imports", job_id)
    progress = Progress(TextColumn("{task.description:>10}"), BarColumn(), TextColumn("{task.fields[detail]}"),
                        TimeElapsedColumn(), console=err_console, disable=quiet)
    # A client of its own: the upload's holds its connection until the job ends.
    with _ctrl_c_at_checks() as ctrl_c, progress, ApiClient(client.connection) as watcher:
        sending = progress.add_task("uploading", total=upload.size or 1, detail="")
        rows = progress.add_task("rows", total=None, detail="waiting for the server")
        upload.thread.start()
        while upload.thread.is_alive():
            upload.thread.join(poll)
            ctrl_c.check()
            progress.update(sending, completed=upload.sent,
                            detail=f"{upload.sent / 1e6:.1f} of {upload.size / 1e6:.1f} MB")
            if upload.finished:
                progress.update(sending, description="sent")
            try:
                job = watcher.get(here)
            except CliError:
                continue  # not created yet, or a missed look: the upload's answer decides
            progress.update(rows, completed=_rows_done(job), detail=_counts(job),
                            description="checking" if not upload.finished else "writing")
        if upload.error is not None:
            raise upload.error
        assert upload.job is not None
        progress.update(rows, total=_rows_done(upload.job) or 1, completed=_rows_done(upload.job),
                        detail=_counts(upload.job), description=str(upload.job.get("status")))
    return upload.job


def _follow_import(client: ApiClient, holder: Holder, job: dict[str, Any], poll: float,
                   quiet: bool) -> dict[str, Any]:
    """Poll the job until it is no longer running, with its counts."""
    here = holder.path("imports", str(job["id"]))
    progress = Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("rows"), TimeElapsedColumn(), console=err_console,
                        disable=quiet)
    with _ctrl_c_at_checks() as ctrl_c, progress:
        task = progress.add_task("importing", total=None)
        while job.get("status") == "running":
            progress.update(task, completed=_rows_done(job))
            time.sleep(poll)
            ctrl_c.check()
            job = client.get(here)
        progress.update(task, completed=_rows_done(job), total=_rows_done(job) or 1)
    return job


def _print_import(job: dict[str, Any], show_errors: int, as_json: bool) -> None:
    if as_json:
        print_json(job)
        return
    summary = {key: job.get(key) for key in ("id", "status", "rows_total", "rows_imported",
                                             "rows_rejected", "rows_duplicate", "tm_create", "tm_end")}
    console.print(item_table(summary, "import"))
    errors = job.get("errors") or []
    if errors and show_errors:
        table = Table(title=f"bad rows (first {min(show_errors, len(errors))} of "
                            f"{job.get('rows_rejected', len(errors))})", title_justify="left",
                      header_style="bold")
        for header in ("row", "field", "message"):
            table.add_column(header, overflow="fold")
        for error in errors[:show_errors]:
            # Text: a message quotes the rejected value, which may look like markup.
            table.add_row(*(Text(str(error.get(key, ""))) for key in ("row", "field", "message")))
        console.print(table)


imports_app = typer.Typer(help="The import jobs of an outdial or a do-not-call list.",
                          no_args_is_help=True)
HolderOutdialOpt = Annotated[str | None, typer.Option(
    "--outdial", show_default=False, help="the outdial's id")]
HolderDnclistOpt = Annotated[str | None, typer.Option(
    "--dnclist", show_default=False, help="the do-not-call list's id")]


def _holder(outdial: str | None, dnclist: str | None) -> Holder:
    if (outdial is None) == (dnclist is None):
        raise typer.BadParameter("give one of --outdial and --dnclist")
    return Holder("outdials", outdial) if outdial is not None else Holder("dnclists", str(dnclist))


@imports_app.command("list")
def imports_list(outdial: HolderOutdialOpt = None, dnclist: HolderDnclistOpt = None,
                 limit: LimitOpt = 100, url: UrlOpt = None, token: TokenOpt = None,
                 as_json: JsonOpt = False) -> None:
    """List the import jobs of an outdial or a do-not-call list, newest first."""
    holder = _holder(outdial, dnclist)
    with connect(url, token) as client:
        jobs, next_token = client.pages(holder.path("imports"), limit)
    if as_json:
        print_json({"result": jobs, "next_page_token": next_token})
        return
    if not jobs:
        err_console.print("no imports")
        return
    table = Table(header_style="bold")
    for header in ("id", "status", "total", "imported", "rejected", "duplicate", "created"):
        table.add_column(header, no_wrap=header in ("id", "created"))
    for job in jobs:
        table.add_row(*map(Text, (str(job["id"]), str(job["status"]), *(
            str(job.get(f"rows_{key}", "")) for key in ("total", "imported", "rejected", "duplicate")
        ), stamp(job.get("tm_create")))))
    console.print(table)


@imports_app.command("show")
def imports_show(
    import_id: IdArg,
    outdial: HolderOutdialOpt = None, dnclist: HolderDnclistOpt = None,
    follow: Annotated[bool, typer.Option("--follow", help="show its counts until it ends")] = False,
    show_errors: ShowErrorsOpt = 10, poll: PollOpt = 0.5,
    url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Show an import job; with --follow, until it ends (exit 1 if it failed)."""
    holder = _holder(outdial, dnclist)
    with connect(url, token) as client:
        job = client.get(holder.path("imports", import_id))
        if follow:
            try:
                job = _follow_import(client, holder, job, poll, as_json)
            except KeyboardInterrupt:
                err_console.print(f"stopped following import {import_id}; it goes on on the server")
                raise typer.Exit(130) from None
    _print_import(job, show_errors, as_json)
    if follow and job.get("status") == "failed":
        raise typer.Exit(1)


ExportFormatOpt = Annotated[Literal["csv", "ndjson"], typer.Option("--format")]
OutputFileOpt = Annotated[Path | None, typer.Option("--output", "-o", dir_okay=False,
                                                    help="write here instead of stdout")]


def export(
    outdial: OutdialOpt,
    export_format: ExportFormatOpt = "csv", output: OutputFileOpt = None,
    url: UrlOpt = None, token: TokenOpt = None,
) -> None:
    """Export an outdial's targets (with status and try counts), streamed."""
    with connect(url, token) as client:
        save(client.download(path("outdials", outdial, "targets", "export"), format=export_format),
             output)


def save(chunks: Iterator[bytes], output: Path | None) -> None:
    """A download to stdout, or to `output` whole or not at all."""
    if output is None:
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return
    # Written beside the destination and renamed at the end: a failed export leaves no
    # half file under the name the user asked for.
    partial = output.with_name(output.name + ".part")
    written = 0
    try:
        with partial.open("wb") as sink:
            for chunk in chunks:
                written += sink.write(chunk)
        partial.replace(output)
    except OSError as error:  # no such folder, no permission, disk full
        fail(f"cannot write {output}: {error.strerror or error}; choose another --output")
    finally:
        partial.unlink(missing_ok=True)
    err_console.print(f"wrote {written} bytes to {output}")


def stats(outdial: OutdialOpt,
          reasons: Annotated[bool, typer.Option(
              "--reasons",
              help="also count the targets per waiting reason (reads the targets a rule may hold now)")] = False,
          url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Show an outdial's live statistics: targets by status, attempts per slot, dialable now."""
    with connect(url, token) as client:
        Output(as_json).figures(client.get(path("outdials", outdial, "stats"),
                                           reasons=reasons or None), "statistics")


# --- do-not-call lists -------------------------------------------------------------------------

dnclists_app = typer.Typer(help="Do-not-call lists: destinations your campaigns never dial.",
                           no_args_is_help=True)
entries_app = typer.Typer(help="The entries of a do-not-call list.", no_args_is_help=True)
dnclists_app.add_typer(entries_app, name="entries")
ListArg = Annotated[str, typer.Argument(metavar="LIST", help="the list's id")]
AppliesToAllOpt = Annotated[bool | None, typer.Option(
    "--applies-to-all/--named-only",
    help="honoured by every campaign of yours, or only by those naming it (--dnclist)")]


dnclists_app.command("list")(list_command("dnclists", "dnclist",
                                          "List your do-not-call lists, newest first."))


@dnclists_app.command("create")
def dnclists_create(
    name: Annotated[str, typer.Option()] = "",
    detail: Annotated[str, typer.Option()] = "",
    applies_to_all: AppliesToAllOpt = None,
    url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Create a do-not-call list (named only, unless --applies-to-all)."""
    body = {"name": name, "detail": detail, "applies_to_all": bool(applies_to_all)}
    with connect(url, token) as client:
        Output(as_json).item(client.post(path("dnclists"), body))


dnclists_show = item_command("get", "dnclists", "Show one do-not-call list.", ListArg)
dnclists_app.command("show")(dnclists_show)
dnclists_app.command("get", hidden=True)(dnclists_show)  # the other resources' word


@dnclists_app.command("update")
def dnclists_update(
    dnclist_id: ListArg,
    name: Annotated[str | None, typer.Option()] = None,
    detail: Annotated[str | None, typer.Option()] = None,
    applies_to_all: AppliesToAllOpt = None,
    url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Change a list's name, detail or reach; the rest is kept."""
    if name is None and detail is None and applies_to_all is None:
        raise typer.BadParameter("give at least one of --name, --detail, --applies-to-all, "
                                 "--named-only")
    with connect(url, token) as client:
        here = path("dnclists", dnclist_id)
        current = client.get(here)
        body = _set({key: current[key] for key in ("name", "detail", "applies_to_all")},
                    name=name, detail=detail, applies_to_all=applies_to_all)
        Output(as_json).item(client.put(here, body))


dnclists_app.command("delete")(item_command(
    "delete", "dnclists", "Delete a list: from the next claim on, no campaign honours it.",
    ListArg))


@entries_app.command("add")
def entries_add(
    dnclist_id: ListArg,
    value: Annotated[str, typer.Argument(
        help="a phone number (+E.164, or national with --region), a SIP URI or an email address")],
    region: RegionOpt = None,
    expire: Annotated[str | None, typer.Option(
        help="when the entry stops counting, UTC, e.g. 2027-06-30T00:00:00Z (default: "
             "never)")] = None,
    url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Add a destination to a list, stored normalised; it counts from the next claim."""
    body = _set({"value": value}, default_region=region, tm_expire=expire)
    with connect(url, token) as client:
        Output(as_json).item(client.post(path("dnclists", dnclist_id, "entries"), body))


entries_app.command("list")(sublist_command(
    "dnclists", ListArg, "entries", "entry", "List a list's entries, newest first."))


@entries_app.command("remove")
def entries_remove(
    dnclist_id: ListArg,
    entry_id: Annotated[str | None, typer.Argument(
        metavar="[ENTRY]", help="the entry's id (or give --value)", show_default=False)] = None,
    value: Annotated[str | None, typer.Option(
        help="the destination instead of the entry's id, written as for `entries add` (it is "
             "normalised the same way)")] = None,
    region: RegionOpt = None,
    url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Remove an entry, by its id or its value: the destination may be dialed again."""
    if (entry_id is None) == (value is None):
        raise typer.BadParameter("give the entry's id or --value, one of them")
    if region is not None and value is None:
        raise typer.BadParameter("--region goes with --value")
    with connect(url, token) as client:
        if value is not None:
            found = client.get(path("dnclists", dnclist_id, "entries"),
                               **_set({"value": value}, default_region=region))["result"]
            if not found:
                raise CliError(f"dnclist {dnclist_id} holds no entry for {value}")
            entry_id = found[0]["id"]
        Output(as_json).item(client.delete(path("dnclists", dnclist_id, "entries", str(entry_id))))


# `delete`, the word the other resources use.
entries_app.command("delete", hidden=True)(entries_remove)


@dnclists_app.command("import")
def dnclists_import(
    dnclist_id: ListArg, file: FileArg, region: RegionOpt = None,
    file_format: FileFormatOpt = None, show_errors: ShowErrorsOpt = 10, poll: PollOpt = 0.5,
    url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Import entries (columns value, tm_expire) from a file, following the job until it ends."""
    run_import(Holder("dnclists", dnclist_id), file, _file_kind(file, file_format),
               {"default_region": region}, show_errors, poll, url, token, as_json)


@dnclists_app.command("export")
def dnclists_export(
    dnclist_id: ListArg,
    export_format: ExportFormatOpt = "csv", output: OutputFileOpt = None,
    url: UrlOpt = None, token: TokenOpt = None,
) -> None:
    """Export every entry of a list, streamed (it imports back unchanged)."""
    with connect(url, token) as client:
        save(client.download(path("dnclists", dnclist_id, "entries", "export"),
                             format=export_format), output)


# --- contact limits ----------------------------------------------------------------------------

contactlimits_app = typer.Typer(
    help="Contact limits: how often one destination may be contacted, across every campaign "
         "and channel.", no_args_is_help=True)
UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_limit(text: str) -> dict[str, Any]:
    """"3/1d" → {"max": 3, "window": 86400000}; "1/7d/answered" counts answered contacts. The
    window is in ms, or with a unit: s, m, h, d."""
    parts = text.strip().split("/")
    problem = "write MAX/WINDOW[/answered], e.g. 3/1d, 7/168h or 1/7d/answered"
    if len(parts) not in (2, 3) or not parts[0].isdigit():
        raise typer.BadParameter(f"{text!r}: {problem}", param_hint="--limit")
    window = parts[1].strip().lower()
    number = window.rstrip("smhd")
    unit = window[len(number):] or "ms"
    if not number.isdigit() or unit not in UNITS_MS:
        raise typer.BadParameter(f"{text!r}: the window is ms, or a number with s, m, h or d",
                                 param_hint="--limit")
    limit: dict[str, Any] = {"max": int(parts[0]), "window": int(number) * UNITS_MS[unit]}
    if len(parts) == 3:
        if parts[2] not in ("attempts", "answered"):
            raise typer.BadParameter(f"{text!r}: count attempts or answered", param_hint="--limit")
        limit["count"] = parts[2]
    return limit


def _print_limits(answer: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(answer)
        return
    limits = answer.get("limits") or []
    if not limits:
        err_console.print("no contact limits")
        return
    console.print(list_table("contactlimit", limits))


@contactlimits_app.command("show")
def contactlimits_show(url: UrlOpt = None, token: TokenOpt = None,
                       as_json: JsonOpt = False) -> None:
    """Show your contact limits."""
    with connect(url, token) as client:
        _print_limits(client.get(path("contactlimits")), as_json)


@contactlimits_app.command("set")
def contactlimits_set(
    limit: Annotated[list[str], typer.Option(
        "--limit", help="MAX/WINDOW[/answered]: at most MAX attempts (or answered contacts) "
                        "in any WINDOW, e.g. 3/1d; repeat it for several")],
    url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Replace your contact limits with those given."""
    body = {"limits": [parse_limit(text) for text in limit]}
    with connect(url, token) as client:
        _print_limits(client.put(path("contactlimits"), body), as_json)


@contactlimits_app.command("clear")
def contactlimits_clear(url: UrlOpt = None, token: TokenOpt = None,
                        as_json: JsonOpt = False) -> None:
    """Remove every contact limit."""
    with connect(url, token) as client:
        _print_limits(client.put(path("contactlimits"), {"limits": []}), as_json)


# --- watch -------------------------------------------------------------------------------------

# Attempts fetched per refresh: more than any terminal shows.
WATCHED_CALLS = 100


def _watch_state(client: ApiClient, campaign_id: str) -> dict[str, Any]:
    """Everything one frame shows, as the API gave it."""
    campaign = client.get(path("campaigns", campaign_id))
    try:
        outdial_stats = client.get(path("outdials", campaign["outdial_id"], "stats"))
    except ApiError as error:
        if not error.route_missing:
            raise
        outdial_stats = None  # an older server without statistics: show the rest
    calls = client.get(path("campaigns", campaign_id, "campaigncalls"), page_size=WATCHED_CALLS)
    return {"campaign": campaign, "stats": outdial_stats, "campaigncalls": calls.get("result") or []}


def _figures(stats: dict[str, Any], width: int) -> Text:
    """The outdial's counts, `name value` pairs laid out in lines of `width` without splitting a
    pair (every figure is in `outdial stats`)."""
    pairs = [(key.replace("_", " "), str(value)) for key, value in stats.items()
             if isinstance(value, int) and not key.startswith("attempts_")]
    text, line_length = Text(), 0
    for name, value in pairs:
        length = len(name) + 1 + len(value)
        if line_length and line_length + 3 + length > width:
            text.append("\n")
            line_length = 0
        elif line_length:
            text.append("   ")
            line_length += 3
        text.append(name, style="dim")
        text.append(f" {value}")
        line_length += length
    return text


def _watch_frame(state: dict[str, Any], width: int | None = None, height: int | None = None) -> Group:
    """One frame that fits the terminal: the campaign, its outdial's figures, then as many of
    the latest attempts as there are lines left."""
    width, height = width or console.width, height or console.height
    campaign = state["campaign"]
    colour = {"run": "green", "stopping": "yellow"}.get(campaign["status"], "red")
    head = Text.assemble(("campaign ", "bold"), (campaign.get("name") or campaign["id"], "bold"),
                         "  ", (campaign["status"], f"bold {colour}"),
                         f"\noutdial {campaign['outdial_id']}\noutplan {campaign['outplan_id']}")
    parts: list[Any] = [head]
    if state["stats"] is None:
        parts.append(Text("statistics: not offered by this server", style="dim"))
    else:
        parts.append(_figures(state["stats"], width))
    options = console.options.update(width=width)
    used = sum(len(console.render_lines(part, options, pad=False)) for part in parts)
    frame = len(console.render_lines(
        list_table("campaigncall_brief", [], "latest attempts", width=width), options, pad=False))
    # One line spare: the cursor sits below a live frame.
    room = max(1, height - used - frame - 1)
    calls = state["campaigncalls"][:room]
    parts.append(list_table("campaigncall_brief", calls, "latest attempts", width=width))
    return Group(*parts)


def watch(
    campaign_id: Annotated[str, typer.Argument(metavar="CAMPAIGN")],
    once: Annotated[bool, typer.Option("--once", help="print one frame and exit")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="seconds between refreshes")] = 2.0,
    url: UrlOpt = None, token: TokenOpt = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="one JSON object per refresh: campaign, stats, campaigncalls")] = False,
) -> None:
    """Follow a campaign live until it stops (Ctrl-C leaves it running and stops watching)."""
    with connect(url, token) as client:
        try:
            _follow_campaign(client, campaign_id, once, interval, as_json)
        except KeyboardInterrupt:
            err_console.print("stopped watching; the campaign goes on")


def _follow_campaign(client: ApiClient, campaign_id: str, once: bool, interval: float,
                     as_json: bool) -> None:
    state = _watch_state(client, campaign_id)
    if once or as_json:
        # Frames printed one after another: what a script or a log wants.
        _watch_json_or_frame(state, as_json)
        while not once and state["campaign"]["status"] != "stop":
            time.sleep(interval)
            state = _watch_state(client, campaign_id)
            _watch_json_or_frame(state, as_json)
        return
    with Live(_watch_frame(state), console=console, auto_refresh=False) as live:
        while state["campaign"]["status"] != "stop":
            time.sleep(interval)
            state = _watch_state(client, campaign_id)
            live.update(_watch_frame(state), refresh=True)


def _watch_json_or_frame(state: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(state, ensure_ascii=False), flush=True)
    else:
        console.print(_watch_frame(state))


# --- events ------------------------------------------------------------------------------------

# A stream silent this long is taken for broken and reopened (servers send a heartbeat every
# 15 s by default).
EVENTS_READ_TIMEOUT = 60.0
# Waits between reconnections, after the first retry at once.
RECONNECT_WAITS = (1.0, 2.0, 5.0, 10.0)


def events(
    after: Annotated[int, typer.Option(min=0, help="only events with a greater id")] = 0,
    types: Annotated[list[str] | None, typer.Option(
        "--type", help="only events of this type (repeatable), e.g. campaigncall_updated")] = None,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="print events as they happen, until Ctrl-C")] = False,
    limit: LimitOpt = 100, url: UrlOpt = None, token: TokenOpt = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="the API's raw JSON (with --follow: one event per line)")] = False,
) -> None:
    """List your events after an id, oldest first; with --follow, print them live, resuming
    after the last one printed whenever the connection drops."""
    with connect(url, token) as client:
        if not follow:
            Output(as_json).items("event", *client.pages(path("events"), limit, after=after,
                                                         type=types or None))
            return
        try:
            _follow_events(client, after, types or [], as_json)
        except KeyboardInterrupt:
            err_console.print("stopped following events")


def _follow_events(client: ApiClient, after: int, types: list[str], as_json: bool) -> None:
    last, failures = after, 0
    while True:
        try:
            for message in client.server_sent_events(
                path("events", "stream"), last, EVENTS_READ_TIMEOUT, type=types or None,
            ):
                event = json.loads(message["data"])
                _print_event(event, as_json)
                last, failures = int(event["id"]), 0
            why = "the server closed the stream"
        except ServerUnreachable as error:
            why = error.message
        except ApiError as error:
            if error.http_status < 500:
                raise  # a bad credential or option: reconnecting will not help
            why = f"{error.message} ({error.reason})"
        wait = 0.0 if failures == 0 else RECONNECT_WAITS[min(failures, len(RECONNECT_WAITS)) - 1]
        failures += 1
        err_console.print(f"{why}; reconnecting after event {last}"
                          + (f" in {wait:g} s" if wait else ""))
        time.sleep(wait)


def _print_event(event: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(event, ensure_ascii=False), flush=True)
        return
    console.print(Text.assemble(
        (str(event["id"]), "bold"), "  ", stamp(event.get("tm_create")), "  ",
        (str(event["type"]), "cyan"), "  ", event_subject(event), "  ", event_state(event)))


# --- registration ------------------------------------------------------------------------------

def register(app: typer.Typer) -> None:
    """Add the client commands to the `outdial` application."""
    app.command()(login)
    app.command()(logout)
    app.add_typer(outdials_app, name="outdials")
    app.add_typer(targets_app, name="targets")
    app.add_typer(outplans_app, name="outplans")
    app.add_typer(campaigns_app, name="campaigns")
    app.add_typer(channels_app, name="channels")
    app.add_typer(webhooks_app, name="webhooks")
    app.add_typer(dnclists_app, name="dnclists")
    app.add_typer(contactlimits_app, name="contactlimits")
    app.command("import")(import_file)
    app.add_typer(imports_app, name="imports")
    app.command()(export)
    app.command()(stats)
    app.command()(watch)
    app.command()(events)

