"""Customers, agents, access keys and the credentials that authenticate them."""
