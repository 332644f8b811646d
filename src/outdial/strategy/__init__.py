"""Dialing strategy and compliance: which target may be dialed now, and why another waits."""
