"""The CLI's tables and live view on an 80×24 terminal: ids and numbers never split."""

import re
import uuid
from typing import Any

import pytest
from rich.console import Console

from outdial.cli import output, resources

WIDTH, HEIGHT = 80, 24


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> Console:
    """An 80×24 terminal in place of the real one, recording what is printed."""
    console = Console(width=WIDTH, height=HEIGHT, record=True, color_system=None)
    monkeypatch.setattr(output, "console", console)
    monkeypatch.setattr(resources, "console", console)
    return console


def printed(console: Console, renderable: Any) -> list[str]:
    console.print(renderable)
    return console.export_text().splitlines()


def whole_on_one_line(lines: list[str], value: str) -> bool:
    return any(value in line for line in lines)


def target(number: str, name: str, email: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "name": name, "status": "progressing",
            "destination_0": {"type": "tel", "target": number, "target_name": ""},
            "destination_1": {"type": "email", "target": email, "target_name": ""},
            "try_count_0": 2, "tm_create": "2026-11-27 06:45:29.686769"}


def call(number: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "outdial_target_id": str(uuid.uuid4()),
            "destination": {"type": "tel", "target": number}, "try_count": 3,
            "status": "progressing", "result": "", "outcome": "invalid_destination",
            "tm_create": "2026-11-27 06:45:29.686769"}


def test_targets_keep_their_ids_and_numbers_whole(screen: Console) -> None:
    items = [target("+442071838750", "Alice Bartholomew-Smithson the third", "alice@example.com"),
             target("+15559876543", "Bob", "robert.longname@example.org")]
    lines = printed(screen, output.list_table("target", items))
    assert max(len(line) for line in lines) <= WIDTH
    for item in items:
        assert whole_on_one_line(lines, item["id"])
        assert whole_on_one_line(lines, item["destination_0"]["target"])
        assert whole_on_one_line(lines, item["destination_1"]["target"])
    assert "Alice" in lines[2]  # the name keeps a readable width


@pytest.mark.parametrize("kind", ["campaigncall", "campaigncall_brief"])
def test_attempts_keep_their_ids_and_numbers_whole(screen: Console, kind: str) -> None:
    items = [call("+442071838750"), call("+8613800138000")]
    lines = printed(screen, output.list_table(kind, items))
    assert max(len(line) for line in lines) <= WIDTH
    for item in items:
        assert whole_on_one_line(lines, item["destination"]["target"])
        shown_id = item["id"] if kind == "campaigncall" else item["outdial_target_id"][:8]
        assert whole_on_one_line(lines, shown_id)


@pytest.mark.parametrize("kind, item", [
    ("outdial", {"id": str(uuid.uuid4()), "name": "spring list", "detail": "renewals of 2026",
                 "campaign_id": str(uuid.uuid4()), "tm_create": "2026-11-27 06:45:29.686769"}),
    ("outplan", {"id": str(uuid.uuid4()), "name": "twice, then the mobile",
                 "source": {"type": "tel", "target": "+15550001111"}, "dial_timeout": 30000,
                 "try_interval": 600000, "max_try_count_0": 2}),
    ("campaign", {"id": str(uuid.uuid4()), "name": "renewals", "status": "stopping",
                  "outdial_id": str(uuid.uuid4()), "outplan_id": str(uuid.uuid4()),
                  "end_handle": "stop"}),
])
def test_every_list_keeps_its_ids_whole(screen: Console, kind: str, item: dict[str, Any]) -> None:
    lines = printed(screen, output.list_table(kind, [item]))
    assert max(len(line) for line in lines) <= WIDTH
    assert whole_on_one_line(lines, item["id"])


@pytest.mark.parametrize("width", [40, 50, 60])
def test_a_terminal_too_narrow_for_an_id_folds_it_but_never_cuts_it(
    monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    narrow = Console(width=width, record=True, color_system=None)
    monkeypatch.setattr(output, "console", narrow)
    item = target("+442071838750", "Alice", "alice@example.com")
    lines = printed(narrow, output.list_table("target", [item]))
    assert max(len(line) for line in lines) <= width
    header = lines[0]

    def column(name: str, after: str | None) -> str:
        """The column's cells, line by line, joined: what a reader puts back together."""
        start, end = header.index(name), header.index(after) if after else None
        return "".join(line[start:end].strip() for line in lines[2:])

    assert column("id", "name") == item["id"], lines
    assert "tel:+442071838750" in column("destinations", None), lines


def test_a_wide_terminal_shows_every_column(monkeypatch: pytest.MonkeyPatch) -> None:
    wide = Console(width=160, record=True, color_system=None)
    monkeypatch.setattr(output, "console", wide)
    item = target("+442071838750", "Alice", "alice@example.com")
    lines = printed(wide, output.list_table("target", [item]))
    header = next(line for line in lines if "destinations" in line)
    assert re.findall(r"\w+", header) == [
        "id", "name", "status", "destinations", "tries", "waiting", "created"]


def test_the_waiting_column_says_why_until_when_and_where() -> None:
    waiting = {"waiting_reason": "outside_calling_window", "next_attempt_at": "2026-06-01 15:00:00.000000",
               "waiting_detail": "America/Denver"}
    assert output.waiting(waiting) == "outside_calling_window\nuntil 2026-06-01 15:00 UTC (America/Denver)"
    assert output.waiting({"waiting_reason": "dnc", "waiting_detail": "5f0f4a9c"}) == "dnc\n(5f0f4a9c)"
    assert output.waiting({"waiting_reason": "dialable", "next_attempt_at": "2026-06-01 15:00:00.000000"}) == "dialable"


def test_a_120_column_table_keeps_why_a_target_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = Console(width=120, record=True, color_system=None)
    monkeypatch.setattr(output, "console", screen)
    item = {**target("+16055550188", "Bob", "bob@example.com"), "status": "idle",
            "waiting_reason": "outside_calling_window", "waiting_detail": "America/Denver",
            "next_attempt_at": "2026-06-01 14:00:00.000000"}
    lines = printed(screen, output.list_table("target", [item]))
    assert max(len(line) for line in lines) <= 120
    assert whole_on_one_line(lines, "outside_calling_window")
    assert whole_on_one_line(lines, "until 2026-06-01 14:00 UTC (America/Denver)")
    assert whole_on_one_line(lines, item["id"])


def test_the_live_view_shows_the_latest_attempts_in_80_by_24(screen: Console) -> None:
    calls = [call(f"+4420718387{n:02d}") for n in range(40)]
    stats = {"outdial_id": str(uuid.uuid4()), "targets": 46000, "idle": 45000, "progressing": 10,
             "done": 990, "answered": 500, "exhausted": 490, "attempts_0": 1400, "attempts": 1400,
             "dialable_now": 44000, "waiting_retry": 947}
    campaign = {"id": str(uuid.uuid4()), "name": "renewals", "status": "run",
                "outdial_id": str(uuid.uuid4()), "outplan_id": str(uuid.uuid4())}
    state = {"campaign": campaign, "stats": stats, "campaigncalls": calls}

    lines = printed(screen, resources._watch_frame(state))

    assert len(lines) < HEIGHT  # a live frame taller than the screen loses its bottom: the attempts
    assert max(len(line) for line in lines) <= WIDTH
    assert whole_on_one_line(lines, campaign["outdial_id"]) and whole_on_one_line(lines, campaign["outplan_id"])
    shown = [c for c in calls if whole_on_one_line(lines, c["destination"]["target"])]
    assert len(shown) >= 10
    assert shown == calls[:len(shown)]  # the newest first, as the API lists them


def test_a_message_on_stderr_is_one_line_however_long_and_never_markup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    written = io.StringIO()
    monkeypatch.setattr(output.err_console, "file", written)
    monkeypatch.setattr(output.err_console, "width", 80)
    path = "/home/someone/.config/outdial/" + "a-rather-long-folder-name/" * 5 + "config.json"
    output.err_console.print(f"logged in to http://127.0.0.1:8080 as admin; saved in {path}")
    output.err_console.print("failed: [Errno 111] Connect call failed [/bold]")
    assert written.getvalue().splitlines() == [
        f"logged in to http://127.0.0.1:8080 as admin; saved in {path}",
        "failed: [Errno 111] Connect call failed [/bold]"]


def test_names_that_look_like_markup_are_printed_as_written(screen: Console) -> None:
    name = "[b]x[/]"  # short enough for the list's name column
    item = target("+15559876543", name, "a@example.com")
    for table in (output.list_table("target", [item]), output.item_table(item),
                  output.flat_table({"by_name": {name: 1}})):
        assert whole_on_one_line(printed(screen, table), name)
