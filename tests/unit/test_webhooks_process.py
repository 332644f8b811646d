"""The deliverer process sends its counts of delivery attempts up to its worker, whose /metrics
shows them: what it sends is what it counted since its last report."""

import multiprocessing

from outdial import metrics
from outdial.webhooks.process import _add_to_metrics, _send_increase, _totals


def _delivered() -> float:
    return _totals()["outdial_webhook_deliveries_total|delivered"]


def test_a_report_carries_what_was_counted_since_the_last_and_adds_it_up() -> None:
    reports, deliverer_end = multiprocessing.Pipe(duplex=False)
    sent = _send_increase(deliverer_end, {})  # everything counted so far
    while reports.poll():
        reports.recv()
    metrics.webhook_delivery("delivered")
    metrics.webhook_delivery("delivered")
    metrics.webhook_delivery("timeout")
    metrics.webhook_disabled()
    sent = _send_increase(deliverer_end, sent)
    increase = reports.recv()
    assert increase == {
        "outdial_webhook_deliveries_total|delivered": 2.0,
        "outdial_webhook_deliveries_total|timeout": 1.0,
        "outdial_webhooks_disabled_total|": 1.0,
    }
    # Nothing new: nothing sent.
    _send_increase(deliverer_end, sent)
    assert not reports.poll()
    # In the worker, the report is added to its own counters.
    before = _delivered()
    _add_to_metrics(increase)
    assert _delivered() == before + 2.0
