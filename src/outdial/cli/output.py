"""How the `outdial` commands print: Rich tables for people, the API's raw JSON for scripts."""

import json
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

NIL_UUID = "00000000-0000-0000-0000-000000000000"
NEVER = "9999-01-01 00:00:00.000000"

console = Console(highlight=False)
if not console.is_terminal:
    # Piped tables are read by people in logs and pagers, not an 80-column screen; scripts use --json.
    console = Console(highlight=False, width=160)
err_console = Console(stderr=True, highlight=False)


def print_json(value: Any) -> None:
    """Plain JSON on stdout: no colours, no wrapping, so pipes and `jq` get exactly the API's data."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_error(message: str, hint: str | None = None) -> None:
    """One line `error: …` (and maybe one `hint: …`) on stderr; the message is never markup."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)
    if hint:
        err_console.print(Text.assemble(("hint:", "bold"), " ", hint), soft_wrap=True)


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


def milliseconds(value: Any) -> str:
    if not isinstance(value, int):
        return cell("", value)
    return f"{value / 1000:g}s"


# --- columns of each resource's list ------------------------------------------------------------

Column = tuple[str, Callable[[dict[str, Any]], str]]


def _field(name: str) -> Callable[[dict[str, Any]], str]:
    return lambda item: cell(name, item.get(name))


COLUMNS: dict[str, list[Column]] = {
    "outdial": [
        ("id", _field("id")), ("name", _field("name")), ("detail", _field("detail")),
        ("campaign", _field("campaign_id")), ("created", _field("tm_create")),
    ],
    "target": [
        ("id", _field("id")), ("name", _field("name")), ("status", _field("status")),
        ("destinations", destinations), ("tries", lambda t: per_slot(t, "try_count")),
        ("created", _field("tm_create")),
    ],
    "outplan": [
        ("id", _field("id")), ("name", _field("name")), ("source", _field("source")),
        ("timeout", lambda p: milliseconds(p.get("dial_timeout"))),
        ("interval", lambda p: milliseconds(p.get("try_interval"))),
        ("tries", lambda p: per_slot(p, "max_try_count")), ("created", _field("tm_create")),
    ],
    "channel": [
        ("id", _field("id")), ("name", _field("name")), ("type", _field("type")),
        ("host", lambda c: str((c.get("settings") or {}).get("host", ""))),
        ("created", _field("tm_create")),
    ],
    "campaign": [
        ("id", _field("id")), ("name", _field("name")), ("status", _field("status")),
        ("outdial", _field("outdial_id")), ("outplan", _field("outplan_id")),
        ("end", _field("end_handle")), ("created", _field("tm_create")),
    ],
    "campaigncall": [
        ("id", _field("id")), ("target", _field("outdial_target_id")),
        ("destination", lambda c: address(c.get("destination"))),
        ("try", _field("try_count")), ("status", _field("status")), ("result", _field("result")),
        ("outcome", _field("outcome")), ("created", _field("tm_create")),
    ],
    # The live view has no room for two full ids per attempt: the target's prefix is enough
    # to tell attempts apart, and `campaigns calls` lists them in full.
    "campaigncall_brief": [
        ("target", lambda c: ref(c.get("outdial_target_id"))[:8]),
        ("destination", lambda c: address(c.get("destination"))),
        ("try", _field("try_count")), ("status", _field("status")), ("result", _field("result")),
        ("outcome", _field("outcome")), ("at", lambda c: stamp(c.get("tm_create"))[11:]),
    ],
}
# Columns people copy or scan as a whole: never wrapped.
UNBROKEN = {"id", "created", "at", "target", "tries"}
# Left out on a narrow terminal, so that the ids and what matters most keep their room; every
# field is still there in `get` and in --json.
SECONDARY = {"created", "detail", "campaign", "outdial", "outplan", "source", "end", "target"}
NARROW = 120


def list_table(kind: str, items: list[dict[str, Any]], title: str | None = None) -> Table:
    columns = COLUMNS[kind]
    if console.width < NARROW and kind != "campaigncall_brief":
        columns = [c for c in columns if c[0] not in SECONDARY]
    table = Table(title=title, title_justify="left", header_style="bold")
    for header, _ in columns:
        table.add_column(header, no_wrap=header in UNBROKEN, overflow="fold")
    for item in items:
        table.add_row(*(render(item) for _, render in columns))
    return table


def item_table(item: dict[str, Any], title: str | None = None) -> Table:
    """One resource as a two-column table, in the API's field order."""
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in item.items():
        table.add_row(key, cell(key, value))
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
            table.add_row(prefix, cell(prefix.rsplit(".", 1)[-1], node))

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

