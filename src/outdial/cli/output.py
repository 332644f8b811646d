"""How the `outdial` commands print: Rich tables for people, the API's raw JSON for scripts."""

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import typer
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

NIL_UUID = "00000000-0000-0000-0000-000000000000"
NEVER = "9999-01-01 00:00:00.000000"

# Never markup: what is printed quotes names and messages anyone could have written ("x[/]").
# Table cells are Text for the same reason, whatever console prints them.
console = Console(highlight=False, markup=False)
if not console.is_terminal and "COLUMNS" not in os.environ:
    # Piped tables are read by people in logs and pagers, not an 80-column screen; scripts use --json.
    console = Console(highlight=False, markup=False, width=160)
# Messages, one line each however long: the terminal wraps them, a pipe or a log keeps them
# whole (a script may grep the path `login` saved to). Never markup: they quote the server.
err_console = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def print_json(value: Any) -> None:
    """Plain JSON on stdout: no colours, no wrapping, so pipes and `jq` get exactly the API's data."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_error(message: str, hint: str | None = None) -> None:
    """One line `error: …` (and maybe one `hint: …`) on stderr; the message is never markup."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)
    if hint:
        err_console.print(Text.assemble(("hint:", "bold"), " ", hint), soft_wrap=True)


def fail(message: str) -> NoReturn:
    """One line saying what is wrong and how to fix it, and exit 1: never a traceback."""
    print_error(message)
    raise typer.Exit(1)


# --- cell formatting ---------------------------------------------------------------------------

def stamp(value: Any) -> str:
    """Wire timestamp → seconds precision; the 'never' sentinel → empty."""
    if not value or value == NEVER:
        return ""
    return str(value)[:19]


def ref(value: Any) -> str:
    """A reference id; the nil UUID (nothing) → empty."""
    return "" if not value or value == NIL_UUID else str(value)


def address(value: Any) -> str:
    """{"type": "tel", "target": "+1555…"} → "tel:+1555…" (a sip target already says sip:)."""
    if not isinstance(value, dict):
        return ""
    kind, target = str(value.get("type", "")), str(value.get("target", ""))
    shown = target if target.startswith(f"{kind}:") else f"{kind}:{target}"
    if name := value.get("target_name"):
        shown += f" ({name})"
    return shown


def cell(key: str, value: Any) -> str:
    """Any field, readable: timestamps, nil references, addresses, and JSON for the rest."""
    if key.startswith("tm_"):
        return stamp(value)
    if key == "id" or key.endswith("_id"):
        return ref(value)
    if isinstance(value, dict) and "type" in value and "target" in value:
        return address(value)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def destinations(target: dict[str, Any]) -> str:
    """One address per line: a table cell then wraps between addresses, not inside one."""
    return "\n".join(address(target[f"destination_{n}"]) for n in range(5)
                     if target.get(f"destination_{n}"))


def per_slot(item: dict[str, Any], prefix: str) -> str:
    """try_count_0..4 or max_try_count_0..4 → "2/1/0/0/0"."""
    return "/".join(str(item.get(f"{prefix}_{n}", 0)) for n in range(5))


def event_subject(event: dict[str, Any]) -> str:
    """The id of what an event is about (a channel check's channel)."""
    data = event.get("data") or {}
    return ref(data.get("id") or data.get("channel_id"))


def event_state(event: dict[str, Any]) -> str:
    """An event's gist: status and outcome, or a check's ok and detail."""
    data = event.get("data") or {}
    if "ok" in data:
        return f"{'ok' if data['ok'] else 'failed'}: {data.get('detail', '')}"
    return " ".join(str(data[key]) for key in ("status", "outcome") if data.get(key))


def milliseconds(value: Any) -> str:
    if not isinstance(value, int):
        return cell("", value)
    return f"{value / 1000:g}s"


def duration(value: Any) -> str:
    """Milliseconds in the largest unit that divides them: 86400000 → "1d", 90000 → "90s"."""
    if not isinstance(value, int) or value <= 0:
        return cell("", value)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if value % size == 0:
            return f"{value // size}{unit}"
    return f"{value}ms"


def waiting(target: dict[str, Any]) -> str:
    """Why a target waits and, on a second line, until when: "outside_calling_window\nuntil
    2026-06-01 15:00:00 (America/Denver)"; just the reason when nothing more is known. Two
    lines keep the column narrow enough to stay in a 120-column table."""
    reason = target.get("waiting_reason") or ""
    if reason in ("", "dialable", "in_progress", "answered", "exhausted", "campaign_not_running"):
        return reason
    until = target.get("next_attempt_at")
    detail = target.get("waiting_detail")
    # Times on the wire are UTC; said so, since a zone's name may follow.
    more = (f"until {stamp(until)[:16]} UTC" if until else "") + (f" ({detail})" if detail else "")
    return f"{reason}\n{more.strip()}" if more else reason


# --- columns of each resource's list ------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    header: str
    render: Callable[[dict[str, Any]], str]
    # Ids, numbers, statuses and times are copied or scanned as a whole: never wrapped.
    whole: bool = False


def _field(name: str) -> Callable[[dict[str, Any]], str]:
    return lambda item: cell(name, item.get(name))


COLUMNS: dict[str, list[Column]] = {
    "outdial": [
        Column("id", _field("id"), True), Column("name", _field("name")),
        Column("detail", _field("detail")), Column("campaign", _field("campaign_id"), True),
        Column("created", _field("tm_create"), True),
    ],
    "target": [
        Column("id", _field("id"), True), Column("name", _field("name")),
        Column("status", _field("status"), True), Column("destinations", destinations, True),
        Column("tries", lambda t: per_slot(t, "try_count"), True),
        Column("waiting", waiting, True),
        Column("created", _field("tm_create"), True),
    ],
    "outplan": [
        Column("id", _field("id"), True), Column("name", _field("name")),
        Column("source", _field("source"), True),
        Column("timeout", lambda p: milliseconds(p.get("dial_timeout")), True),
        Column("interval", lambda p: milliseconds(p.get("try_interval")), True),
        Column("tries", lambda p: per_slot(p, "max_try_count"), True),
        Column("created", _field("tm_create"), True),
    ],
    "channel": [
        Column("id", _field("id"), True), Column("name", _field("name")),
        Column("type", _field("type"), True),
        Column("host", lambda c: str((c.get("settings") or {}).get("host", ""))),
        Column("created", _field("tm_create"), True),
    ],
    "dnclist": [
        Column("id", _field("id"), True), Column("name", _field("name")),
        Column("applies to all", _field("applies_to_all"), True),
        Column("detail", _field("detail")), Column("created", _field("tm_create"), True),
    ],
    "entry": [
        Column("id", _field("id"), True), Column("type", _field("type"), True),
        Column("value", _field("value"), True), Column("expires", _field("tm_expire"), True),
        Column("created", _field("tm_create"), True),
    ],
    "contactlimit": [
        Column("max", _field("max"), True),
        Column("window", lambda c: duration(c.get("window")), True),
        Column("counts", _field("count"), True),
    ],
    "webhook": [
        Column("id", _field("id"), True), Column("url", _field("url")),
        Column("status", _field("status"), True),
        Column("events", lambda w: ", ".join(w.get("event_types") or []) or "all"),
        Column("created", _field("tm_create"), True),
    ],
    "delivery": [
        Column("id", _field("id"), True), Column("event", _field("event_id"), True),
        Column("type", _field("event_type"), True), Column("status", _field("status"), True),
        Column("tries", _field("attempts"), True), Column("code", _field("response_code"), True),
        Column("ms", _field("latency_ms"), True), Column("error", _field("error")),
        Column("at", _field("tm_update"), True),
    ],
    "campaign": [
        Column("id", _field("id"), True), Column("name", _field("name")),
        Column("status", _field("status"), True), Column("outdial", _field("outdial_id"), True),
        Column("outplan", _field("outplan_id"), True), Column("end", _field("end_handle"), True),
        Column("created", _field("tm_create"), True),
    ],
    "campaigncall": [
        Column("id", _field("id"), True), Column("target", _field("outdial_target_id"), True),
        Column("destination", lambda c: address(c.get("destination")), True),
        Column("try", _field("try_count"), True), Column("status", _field("status"), True),
        Column("result", _field("result")), Column("outcome", _field("outcome"), True),
        Column("created", _field("tm_create"), True),
    ],
    "event": [
        Column("id", _field("id"), True), Column("type", _field("type"), True),
        Column("resource", lambda e: event_subject(e), True),
        Column("status", lambda e: event_state(e), True),
        Column("created", _field("tm_create"), True),
    ],
    # The live view has no room for two full ids per attempt: the target's prefix is enough
    # to tell attempts apart, and `campaigns calls` lists them in full.
    "campaigncall_brief": [
        Column("target", lambda c: ref(c.get("outdial_target_id"))[:8], True),
        Column("destination", lambda c: address(c.get("destination")), True),
        Column("try", _field("try_count"), True), Column("status", _field("status"), True),
        Column("result", _field("result")), Column("outcome", _field("outcome"), True),
        Column("at", lambda c: stamp(c.get("tm_create"))[11:], True),
    ],
}
# Left out, in this order, while a table is wider than the terminal; every field is still there
# in `get` and in --json.
LEFT_OUT_FIRST: dict[str, list[str]] = {
    "outdial": ["created", "campaign", "detail"],
    # The waiting reason says more than the status (in_progress: progressing, answered or
    # exhausted: done, any other: idle): the status goes first.
    "target": ["created", "tries", "status", "waiting"],
    "outplan": ["created", "source", "interval", "tries"],
    "campaign": ["created", "outplan", "outdial", "end"],
    "channel": ["created", "host"],
    "webhook": ["created", "events"],
    "dnclist": ["created", "detail"],
    "entry": ["created", "type", "expires"],
    "contactlimit": [],
    "delivery": ["at", "ms", "type", "error"],
    "campaigncall": ["created", "target", "result", "try", "status"],
    "campaigncall_brief": ["result", "at", "try"],
    "event": ["created", "status"],
}
NARROW = 120
# A wrapped column still gets this many characters before the table counts as too wide.
FOLDED_MIN = 8


def _needed_width(columns: list[Column], rows: list[list[str]], compact: bool,
                  folded_min: int = FOLDED_MIN) -> int:
    """The width at which no whole column has to be cut, the others keeping `folded_min`."""
    total = 0
    for index, column in enumerate(columns):
        lines = [column.header] + [line for row in rows for line in row[index].split("\n")]
        widest = max(cell_len(line) for line in lines)
        total += widest if column.whole else min(widest, folded_min)
    # Between columns: padding either side and a rule (compact: no outer edges).
    return total + 3 * (len(columns) - 1) + (0 if compact else 4)


def list_table(kind: str, items: list[dict[str, Any]], title: str | None = None,
               width: int | None = None) -> Table:
    """Items as rows. On a narrow terminal the table loses its frame, then its least needed
    columns, until ids and numbers fit unbroken."""
    width = width or console.width
    compact = width < NARROW
    columns = COLUMNS[kind]
    rows = [[column.render(item) for column in columns] for item in items]
    for header in LEFT_OUT_FIRST[kind]:
        if _needed_width(columns, rows, compact) <= width:
            break
        keep = [i for i, column in enumerate(columns) if column.header != header]
        columns = [columns[i] for i in keep]
        rows = [[row[i] for i in keep] for row in rows]
    # Too narrow even for the ids and numbers alone: they fold onto a second line rather than
    # be cut short (a cut id would be copied as it shows).
    whole = _needed_width(columns, rows, compact, folded_min=1) <= width
    frame: dict[str, Any] = {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False} if compact else {}
    table = Table(title=title, title_justify="left", header_style="bold", **frame)
    for column in columns:
        table.add_column(column.header, no_wrap=column.whole and whole, overflow="fold")
    for row in rows:
        table.add_row(*map(Text, row))
    return table


def item_table(item: dict[str, Any], title: str | None = None) -> Table:
    """One resource as a two-column table, in the API's field order."""
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in item.items():
        table.add_row(Text(key), Text(cell(key, value)))
    return table


def flat_table(value: dict[str, Any], title: str | None = None) -> Table:
    """Nested figures (e.g. statistics) as dotted keys: {"status": {"idle": 3}} → status.idle 3."""
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("figure", style="bold", no_wrap=True)
    table.add_column("value", justify="right")

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), child)
        else:
            table.add_row(Text(prefix), Text(cell(prefix.rsplit(".", 1)[-1], node)))

    walk("", value)
    return table


class Output:
    """Prints answers the way the user asked: a table, or (with --json) the raw API JSON."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def item(self, item: dict[str, Any], title: str | None = None) -> None:
        if self.as_json:
            print_json(item)
        else:
            console.print(item_table(item, title))

    def items(self, kind: str, items: list[dict[str, Any]], next_page_token: str) -> None:
        if self.as_json:
            print_json({"result": items, "next_page_token": next_page_token})
        elif not items:
            err_console.print(f"no {kind}s")
        else:
            console.print(list_table(kind, items))

    def figures(self, value: dict[str, Any], title: str | None = None) -> None:
        if self.as_json:
            print_json(value)
        else:
            console.print(flat_table(value, title))

