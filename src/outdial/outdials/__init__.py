"""Outdials (dialing lists) and their targets."""
