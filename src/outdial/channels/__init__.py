"""Channels: the SIP trunks, SMTP relays and simulated channels that campaigns dial through."""
