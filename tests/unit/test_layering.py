"""The architecture, checked: only the api package may import the web framework."""

import ast
from pathlib import Path

import outdial

PACKAGE = Path(outdial.__file__).parent
WEB = ("fastapi", "starlette", "uvicorn")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_api_and_cli_import_the_web_framework() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        part = path.relative_to(PACKAGE).parts[0]
        if part in ("api", "cli"):
            continue
        web = {m for m in imported_modules(path) if m.split(".")[0] in WEB}
        if web:
            offenders.append(f"{path.relative_to(PACKAGE)} imports {sorted(web)}")
    assert offenders == []


def test_domain_packages_do_not_import_the_api() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] not in ("api", "cli")
        and any(m.startswith("outdial.api") for m in imported_modules(path))
    ]
    assert offenders == []
