"""Every /v1.0 route checks its caller: the router only finds the credential, so each route must
depend on `authenticated` (Ctx) or, on a hot route, `deferred_authentication` (DeferredCtx)."""

from typing import Any

from fastapi.routing import APIRoute

from outdial.api import create_app
from outdial.api.deps import authenticated, deferred_authentication
from outdial.settings import Settings


def _calls(dependant: Any) -> set[Any]:
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= _calls(sub)
    return found


def _routes(app: Any) -> list[Any]:
    """The app's routes with their full paths (included routers are resolved lazily)."""
    found = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "effective_route_contexts"):
            found.extend(route.effective_route_contexts())
    return found


def test_every_v1_route_checks_its_caller() -> None:
    app = create_app(Settings(database_url="sqlite+aiosqlite:///unused.db"))
    routes = [r for r in _routes(app) if r.path.startswith("/v1.0")]
    assert len(routes) > 30
    unchecked = [f"{sorted(r.methods)} {r.path}" for r in routes
                 if not _calls(r.dependant) & {authenticated, deferred_authentication}]
    assert unchecked == []
