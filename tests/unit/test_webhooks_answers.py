"""Reading receivers' answers: the usual one (a complete 2xx with its length) without h11, any
other by h11 from the same bytes, whatever pieces they arrive in."""

import asyncio
import ipaddress
from typing import Any

import h11
import pytest

from outdial.clock import SystemClock
from outdial.webhooks import sending
from outdial.webhooks.sending import NEED_MORE, Sender, _Connection, _NotTaken, quick_answer

ANSWER_TO = h11.Request(method="POST", target="/hook",
                        headers=[("host", "example.com"), ("content-length", "0")])
NO_CONTENT = b"HTTP/1.1 204 No Content\r\nDate: Sat, 28 Nov 2026 10:00:00 GMT\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
ACCEPTED = b"HTTP/1.1 202 \r\ncontent-length: 0\r\n\r\n"  # an empty reason
CREATED = b"HTTP/1.1 201\r\nContent-Length:  0 \r\n\r\n"  # none, and blanks around the length
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"


@pytest.mark.parametrize("answer, expected", [
    (NO_CONTENT, (204, len(NO_CONTENT))),
    (OK, (200, len(OK))),
    (OK + NO_CONTENT, (200, len(OK))),  # the next answer stays for the next read
    (ACCEPTED, (202, len(ACCEPTED))),
    (CREATED, (201, len(CREATED))),
    (OK[:-1], NEED_MORE),  # the body is not all there
    (NO_CONTENT[:-2], NEED_MORE),
    (b"HTTP/1.1 2", NEED_MORE),
    (b"HTT", NEED_MORE),
    (b"", NEED_MORE),
    (CHUNKED, None),
    (b"HTTP/1.1 100 Continue\r\n\r\n" + NO_CONTENT, None),
    (b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n", None),
    (b"HTTP/1.1 5", None),
    (b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n", None),
    (b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n", None),
    (b"HTTP/1.1 200 OK\r\n\r\n", None),  # no length: the body runs to the end
    (b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\nx", None),
    (b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", None),
    (b"HTTP/1.1 204 No Content\r\ncontent-length: 3\r\n\r\n", None),
    (b"HTTP/1.1 200 OK\r\n folded: value\r\ncontent-length: 0\r\n\r\n", None),
    (b"HTTP/1.1 200 OK\r\ncontent-length: 99999\r\n\r\n", None),  # long: h11's
    (b"garbage\r\n\r\n", None),
])
def test_the_usual_answer_is_read_quickly_and_any_other_is_left_to_h11(
    answer: bytes, expected: tuple[int, int] | None
) -> None:
    assert quick_answer(bytearray(answer)) == expected


class Writer:
    """What a _Connection needs of its writer, without a socket."""

    closed = False

    def get_extra_info(self, name: str) -> Any:
        return None

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


async def answers(pieces: list[bytes], count: int, *,
                  end: bool = True) -> tuple[list[int | str], _Connection]:
    """The statuses of `count` answers read from `pieces`, each piece arriving on its own
    (the reader gets one at a time), then the end of the connection (with `end`); an
    exception stops the reading and is noted by its name."""
    reader = asyncio.StreamReader()
    connection = _Connection(ipaddress.ip_address("127.0.0.1"), reader,
                             Writer())  # type: ignore[arg-type]
    sender = Sender(SystemClock(), 5.0, allow_private=True)
    found: list[int | str] = []

    async def read() -> None:
        try:
            for _ in range(count):
                found.append(await sender._answer(connection, ANSWER_TO))
        except Exception as error:  # noqa: BLE001 - the test looks at which
            found.append(type(error).__name__)

    reading = asyncio.create_task(read())
    for piece in pieces:
        reader.feed_data(piece)
        for _ in range(5):  # let the reader take it before the next piece comes
            await asyncio.sleep(0)
    if end:
        reader.feed_eof()
    await asyncio.wait_for(reading, 5)
    return found, connection


def one_byte_each(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))]


async def test_answers_split_across_reads_are_read_whole_in_order() -> None:
    found, connection = await answers(one_byte_each(OK + NO_CONTENT + CHUNKED + OK), 4,
                                      end=False)
    assert found == [200, 204, 200, 200]
    assert connection.reusable and not connection.buffer


async def test_pipelined_answers_in_one_read_are_each_taken_once() -> None:
    found, connection = await answers([NO_CONTENT * 3 + OK[:10]], 3, end=False)
    assert found == [204, 204, 204]
    assert connection.buffer == OK[:10]  # the start of the next answer, kept for it


async def test_a_chunked_answer_then_a_usual_one_in_the_same_read() -> None:
    found, connection = await answers([CHUNKED + NO_CONTENT], 2, end=False)
    assert found == [200, 204]
    assert connection.reusable and not connection.buffer


async def test_informational_answers_come_before_the_answer() -> None:
    found, connection = await answers(
        [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 10", b"3 Early Hints\r\nlink: </a>\r\n\r\n",
         NO_CONTENT], 1, end=False)
    assert found == [204]
    assert connection.reusable


async def test_an_answer_asking_to_close_is_read_and_the_connection_not_kept() -> None:
    found, connection = await answers(
        [b"HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 0\r\n\r\n"], 1)
    assert found == [200]
    assert not connection.reusable


async def test_an_http_1_0_answer_is_read_and_the_connection_not_kept() -> None:
    found, connection = await answers([b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"], 1)
    assert found == [200]
    assert not connection.reusable


@pytest.mark.parametrize("pieces, status", [
    # Python's http.server and many small receivers: HTTP/1.0, no length, closed after.
    ([b"HTTP/1.0 200 OK\r\nServer: BaseHTTP/0.6\r\n\r\n"], 200),
    ([b"HTTP/1.0 400 Bad Request\r\n\r\n", b"bad signature"], 400),
    ([b"HTTP/1.1 200 OK\r\n\r\n", b"accepted, ", b"thanks"], 200),
])
async def test_an_answer_whose_body_runs_to_the_connection_s_end_is_read(
    pieces: list[bytes], status: int
) -> None:
    found, connection = await answers(pieces, 1)
    assert found == [status]
    assert not connection.reusable


async def test_a_failure_status_is_read_by_h11() -> None:
    found, _ = await answers([b"HTTP/1.1 503 Busy\r\ncontent-length: 4\r\n\r\nbusy"], 1)
    assert found == [503]


async def test_a_long_answer_is_cut_at_the_limit_and_the_connection_not_kept() -> None:
    size = sending.MAX_RESPONSE_BYTES + 10
    head = f"HTTP/1.1 200 OK\r\ncontent-length: {size}\r\n\r\n".encode()
    found, connection = await answers([head, b"x" * size], 1)
    assert found == [200]
    assert not connection.reusable


async def test_a_connection_closed_mid_answer_is_an_error() -> None:
    found, _ = await answers([NO_CONTENT[:20]], 1)
    assert found == ["RemoteProtocolError"]
    found, _ = await answers([OK[:-1]], 1)  # the body cut short
    assert found == ["RemoteProtocolError"]


async def test_a_connection_closed_before_an_answer_did_not_take_its_request() -> None:
    found, _ = await answers([], 1)
    assert found == [_NotTaken.__name__]
    found, _ = await answers([NO_CONTENT], 2)  # the second request was not taken
    assert found == [204, _NotTaken.__name__]


async def test_a_malformed_answer_is_an_error() -> None:
    found, _ = await answers([b"HTTP/1.1 2xx OK\r\n\r\n"], 1)
    assert found == ["RemoteProtocolError"]


async def _send_with_answers(answer_after: list[float], timeout: float) -> list[Any]:
    """What send() makes of a receiver whose answers come `answer_after` seconds apart (on the
    injected clock), the exchange itself stood in for: only the waiting is under test."""
    from outdial.clock import FakeClock

    clock = FakeClock()
    sender = Sender(clock, timeout, allow_private=True)
    answered = asyncio.Event()

    async def exchange(url: str, messages: Any, outcomes: list[Any], elapsed: Any) -> None:
        for _ in answer_after:
            await answered.wait()
            answered.clear()
            outcomes.append(sending.Sent(200, elapsed(), kind="delivered"))

    sender._post = exchange  # type: ignore[method-assign]
    sending_task = asyncio.create_task(sender.send("http://receiver.example/", []))
    for gap in answer_after:
        await asyncio.sleep(0)
        clock.advance(gap)
        for _ in range(5):  # the sender sees the time pass (and may give up) first
            await asyncio.sleep(0)
        if sending_task.done():
            break
        answered.set()
        for _ in range(3):
            await asyncio.sleep(0)
    return [sent.kind for sent in await asyncio.wait_for(sending_task, 5)]


async def test_a_long_run_answered_steadily_is_not_cut_at_the_timeout() -> None:
    # Ten answers, 6 s apart: a minute in all, each well within the 10 s timeout.
    assert await _send_with_answers([6.0] * 10, timeout=10) == ["delivered"] * 10


async def test_an_answer_that_does_not_come_within_the_timeout_ends_the_run() -> None:
    assert await _send_with_answers([6.0, 6.0, 25.0, 1.0], timeout=10) == [
        "delivered", "delivered", "timeout"]
