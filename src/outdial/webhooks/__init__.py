"""Webhooks: events delivered to customers' HTTP endpoints, signed by the Standard Webhooks
convention, at least once, in event order per endpoint, by the engine's processes."""
