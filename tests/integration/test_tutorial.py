"""Every example of the user's tutorial, replayed: same keys, same order, same value formats."""

import json
import re
from pathlib import Path
from typing import Any

from tests.conftest import Api

TUTORIAL = (Path(__file__).parent.parent / "fixtures" / "outdial-tutorial.txt").read_text()
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
NIL = "00000000-0000-0000-0000-000000000000"
STAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}")
NEVER = "9999-01-01 00:00:00.000000"


def tutorial_answers() -> list[Any]:
    """The JSON answers printed in the tutorial, in order ("..." list elisions removed)."""
    answers, depth, start = [], 0, None
    for index, char in enumerate(TUTORIAL):
        if char == "{":
            if depth == 0:
                start = index
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0 and start is not None:
                block = re.sub(r",\s*\.\.\.\s*", "", TUTORIAL[start : index + 1])
                block = re.sub(r"'[^']*'", "", block)
                parsed = json.loads(block)
                if "id" in parsed or "result" in parsed:  # answers, not request bodies
                    answers.append(parsed)
    return answers


# Fields a target carries beyond the tutorial's (dialing strategy: its zone and why it waits):
# a script written for the tutorial reads the same fields in the same order around them.
TARGET_EXTENSIONS = ("timezone", "waiting_reason", "next_attempt_at", "waiting_detail")


def tutorial_fields(value: dict[str, Any]) -> dict[str, Any]:
    """`value` without our extension fields: all of them present on a target, none elsewhere."""
    present = [key for key in TARGET_EXTENSIONS if key in value]
    assert present in ([], list(TARGET_EXTENSIONS)), present
    return {key: item for key, item in value.items() if key not in TARGET_EXTENSIONS}


def shape(value: Any) -> Any:
    """What the tutorial fixes about a value: its kind and format, not its content."""
    if isinstance(value, dict):
        return [(key, shape(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    if isinstance(value, str):
        if value == NIL:
            return "nil-uuid"
        if value == NEVER:
            return "never"
        if UUID.fullmatch(value):
            return "uuid"
        if STAMP.fullmatch(value):
            return "timestamp"
        return "string"
    return type(value).__name__


def test_the_tutorial_has_five_answers() -> None:
    assert len(tutorial_answers()) == 5


async def test_replay_of_every_tutorial_example(api: Api) -> None:
    created_outdial = await api.post("/v1.0/outdials", json={
        "name": "test outdial", "detail": "outdial for test use.", "data": "test data"})
    outdial_id = created_outdial.json()["id"]
    listed = await api.get("/v1.0/outdials")
    detail = await api.get(f"/v1.0/outdials/{outdial_id}")
    created_target = await api.post(f"/v1.0/outdials/{outdial_id}/targets", json={
        "name": "test destination 0", "detail": "test detatination 0 detail", "data": "test data",
        "destination_0": {"type": "tel", "target": "+15559876543"}})
    listed_targets = await api.get(f"/v1.0/outdials/{outdial_id}/targets")

    ours = [listed, detail, created_outdial, created_target, listed_targets]
    for response, example in zip(ours, tutorial_answers(), strict=True):
        assert response.status_code == 200, response.text
        body = response.json()
        if "result" in example:
            assert list(body) == list(example)
            assert shape(tutorial_fields(body["result"][0])) == shape(example["result"][0])
            assert shape(body["next_page_token"]) == "timestamp"
        else:
            assert shape(tutorial_fields(body)) == shape(example)
    # The tutorial's tm_update of an outdial that was never updated is the sentinel.
    assert created_outdial.json()["tm_update"] == NEVER
    target = created_target.json()
    assert target["tm_update"] == target["tm_create"]
    assert target["destination_0"] == {
        "type": "tel", "target": "+15559876543", "target_name": "", "name": "", "detail": ""}
