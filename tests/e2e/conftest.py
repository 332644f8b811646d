"""Fixtures of the end-to-end tests."""

from collections.abc import Iterator

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.e2e.browser import chromium


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """Debian's headless Chromium, cut off from every host but this machine."""
    yield from chromium()
