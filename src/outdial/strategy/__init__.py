"""Dialing strategy: what each outcome does next, do-not-call lists, calling windows, limits."""
