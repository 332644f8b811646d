"""Outdial: outbound dialing lists and the campaigns that dial them."""

__version__ = "0.1.0"
