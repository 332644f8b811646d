"""The dashboard's page and files: served from the package under a policy that loads nothing from
elsewhere, every file it links present, each vendored library with its licence."""

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import httpx
import pytest

from outdial.api import create_app
from outdial.api.dashboard import CONTENT_SECURITY_POLICY, WEB
from outdial.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def app() -> Any:
    # The page and its files do not touch the database: the app is never started.
    return create_app(Settings(database_url="sqlite+aiosqlite:///unused.db"))


async def test_the_page_and_every_file_it_links_are_served_under_the_policy(app: Any) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://outdial") as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        links = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert links and all(link.startswith(("/dashboard-assets/", "/docs", "data:")) for link in links)
        for link in (link for link in links if link.startswith("/dashboard-assets/")):
            served = await http.get(link)
            assert served.status_code == 200, link
            assert served.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        missing = await http.get("/dashboard-assets/nothing.js")
        assert missing.status_code == 404


def test_the_policy_allows_nothing_from_elsewhere_nor_inline_code() -> None:
    directives = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'none'"
    for directive, sources in directives.items():
        assert set(sources.split()) <= {"'self'", "'none'", "data:"}, directive
    assert "data:" not in directives["script-src"] + directives["connect-src"]


def test_the_page_is_not_part_of_the_api_document(app: Any) -> None:
    assert "/" not in app.openapi()["paths"]


def test_every_file_of_the_dashboard_is_package_data() -> None:
    """A non-editable install has every file: each matches a package-data pattern."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["outdial"]
    package = ROOT / "src" / "outdial"
    files = [path.relative_to(package).as_posix() for path in (package / "web").rglob("*") if path.is_file()]
    assert files
    assert [name for name in files if not any(fnmatch(name, pattern) for pattern in patterns)] == []


def test_each_vendored_library_ships_with_its_licence() -> None:
    vendor = Path(str(WEB / "vendor"))
    for library in ("preact", "htm", "uplot"):
        assert (vendor / f"LICENSE.{library}").read_text().strip(), library
    scripts = sorted(path.name for path in vendor.glob("*.js"))
    assert scripts == ["htm.umd.js", "preact-hooks.umd.js", "preact.min.umd.js", "uPlot.iife.min.js"]
