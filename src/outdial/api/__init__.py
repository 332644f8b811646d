"""The HTTP API: the only package that imports the web framework."""

from outdial.api.app import create_app

__all__ = ["create_app"]
