"""Bulk import of targets: streamed uploads, checked on every core, landed all or nothing."""
