"""Every Prometheus metric of the service, defined in this one place.

Each process counts what it does itself and serves its own numbers (`outdial serve` at
/metrics, `outdial worker --metrics-port`): Prometheus scrapes each process and sums them.
Counters start at zero when a process starts, which Prometheus' rate() and increase() expect.

Label values come from small fixed sets only (outcomes, channel types, route templates …),
never from client input as such, so that the number of series stays bounded.
"""

from collections.abc import Iterable, Mapping
from typing import Literal

from prometheus_client import (
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder

from outdial.dialers.base import OutcomeKind

# No `…_created` series beside each counter: they double the series for a timestamp that
# Prometheus does not need (it detects counter resets by itself).
disable_created_metrics()

# The channel types an attempt is counted under: a channel's type, `simulated` for an outplan
# without channels, and `none` when the outplan has no channel for the destination's type
# (such an attempt fails, saying so).
CHANNEL_TYPES = ("simulated", "sip", "smtp", "none")
# Seconds, from a millisecond to ten seconds: a claim or a request is a few database round trips.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

ATTEMPTS_STARTED = Counter(
    "outdial_attempts_started", "Attempts claimed and handed to a dialer, by channel type.",
    ["channel_type"],
)
ATTEMPTS_ENDED = Counter(
    "outdial_attempts_ended",
    "Attempts whose end was written down (campaigncall status done), by outcome and channel "
    "type; attempts reaped after their worker stopped count here as failed.",
    ["outcome", "channel_type"],
)
ATTEMPTS_REAPED = Counter(
    "outdial_attempts_reaped",
    "Attempts of another worker closed as failed because their lease ran out (that worker "
    "died or hung); also counted in outdial_attempts_ended_total.",
)
ATTEMPTS_IN_FLIGHT = Gauge(
    "outdial_attempts_in_flight", "Attempts this process is dialing now.",
)
CLOCK_OFFSET = Gauge(
    "outdial_engine_clock_offset_seconds",
    "How far this machine's clock was ahead of the database server's (negative: behind) when "
    "the engine last compared them (PostgreSQL only).",
)
CLAIM_SECONDS = Histogram(
    "outdial_claim_duration_seconds",
    "How long one campaign's claim transaction took (lock, count, claim targets, commit).",
    buckets=DURATION_BUCKETS,
)

ImportRowResult = Literal["imported", "rejected", "duplicate", "discarded"]
IMPORT_ROW_RESULTS: tuple[ImportRowResult, ...] = ("imported", "rejected", "duplicate", "discarded")
IMPORT_ROWS = Counter(
    "outdial_import_rows",
    "Rows of finished imports: imported, rejected (a bad value), duplicate (dropped by dedupe), "
    "or discarded (read by an import that failed, so none of its rows was written).",
    ["result"],
)
ImportStatus = Literal["done", "failed"]
IMPORT_JOBS = Counter(
    "outdial_import_jobs", "Import jobs that ended, by status (done or failed).", ["status"],
)

WebhookResult = Literal["delivered", "rejected", "timeout", "unreachable", "refused"]
WEBHOOK_RESULTS: tuple[WebhookResult, ...] = (
    "delivered", "rejected", "timeout", "unreachable", "refused",
)
WEBHOOK_DELIVERIES = Counter(
    "outdial_webhook_deliveries",
    "Webhook delivery attempts by result: delivered (2xx), rejected (another status), timeout, "
    "unreachable (no connection) or refused (the address is not allowed); every result but "
    "delivered is a failure.",
    ["result"],
)
WEBHOOKS_DISABLED = Counter(
    "outdial_webhooks_disabled", "Webhooks disabled automatically after a run of failures.",
)

# Methods outside this set are counted as OTHER: a client cannot add series by inventing some.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Requests that matched no route (a 404, or refused before routing, such as a 413).
UNMATCHED_ROUTE = "unmatched"
HTTP_REQUESTS = Counter(
    "outdial_http_requests",
    "HTTP requests answered, by method, route template (never the raw path) and status.",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "outdial_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method and route template.",
    ["method", "route"],
    buckets=DURATION_BUCKETS,
)


def _zero_series() -> None:
    """Known label values exist from the start at 0, so a query sees a series before its first
    event (and rate() sees the first increase)."""
    for channel_type in CHANNEL_TYPES:
        ATTEMPTS_STARTED.labels(channel_type)
        for outcome in OutcomeKind:
            ATTEMPTS_ENDED.labels(outcome.value, channel_type)
    for result in IMPORT_ROW_RESULTS:
        IMPORT_ROWS.labels(result)
    for status in ("done", "failed"):
        IMPORT_JOBS.labels(status)
    for webhook_result in WEBHOOK_RESULTS:
        WEBHOOK_DELIVERIES.labels(webhook_result)


_zero_series()


def channel_label(channel_type: str) -> str:
    return channel_type or "none"


def attempt_started(channel_type: str) -> None:
    ATTEMPTS_STARTED.labels(channel_label(channel_type)).inc()
    ATTEMPTS_IN_FLIGHT.inc()


def attempt_left_process() -> None:
    """The attempt's task ended here (its outcome is written later, by the recorder)."""
    ATTEMPTS_IN_FLIGHT.dec()


def attempts_ended(ended: Iterable[tuple[str, str]]) -> None:
    """(outcome, channel type) of each attempt whose end has just been committed."""
    for outcome, channel_type in ended:
        ATTEMPTS_ENDED.labels(outcome, channel_label(channel_type)).inc()


def import_ended(status: ImportStatus, counts: Mapping[str, int]) -> None:
    """An import job ended; `counts` are its rows_total/imported/rejected/duplicate."""
    IMPORT_JOBS.labels(status).inc()
    if status == "done":
        IMPORT_ROWS.labels("imported").inc(counts["rows_imported"])
        IMPORT_ROWS.labels("rejected").inc(counts["rows_rejected"])
        IMPORT_ROWS.labels("duplicate").inc(counts["rows_duplicate"])
    else:
        IMPORT_ROWS.labels("discarded").inc(counts["rows_total"])


def webhook_delivery(result: WebhookResult, attempts: int = 1) -> None:
    """`attempts` delivery attempts to a webhook ended with `result` (see WEBHOOK_DELIVERIES)."""
    if result not in WEBHOOK_RESULTS:
        raise ValueError(f"unknown webhook delivery result {result!r}")
    WEBHOOK_DELIVERIES.labels(result).inc(attempts)


def webhook_disabled() -> None:
    WEBHOOKS_DISABLED.inc()


def exposition(accept: str | None) -> tuple[bytes, str]:
    """This process's metrics in the format the scraper asked for (Prometheus text unless it
    asks for OpenMetrics), and that format's content type."""
    encode, content_type = choose_encoder(accept or "")
    return encode(REGISTRY), content_type
