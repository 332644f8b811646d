"""Outplans, campaigns and campaigncalls: the resources a campaign run is made of."""
