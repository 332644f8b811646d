"""Events: every change written to an outbox in its own transaction, and read back in order."""
