"""The web dashboard at `/`: one page and its scripts, all served from the package.

The page is a client of the same /v1.0 API (it logs in with POST /auth/login and sends the token
as a Bearer header), so it adds no route of its own beyond the page and its files."""

from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from outdial import __version__

WEB = files("outdial") / "web"
ASSETS_PATH = "/dashboard-assets"

# Nothing from another host, no inline script or style, no eval: the page runs only the files
# below. (Style *attributes* set from script go through the CSSOM, which this allows.)
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class _AssetHeaders:
    """The assets' answers carry the same policy and are revalidated, so an upgrade is seen."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                headers.append((b"cache-control", b"no-cache"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_dashboard(app: FastAPI) -> None:
    app.mount(ASSETS_PATH, _AssetHeaders(StaticFiles(directory=str(WEB))), name="dashboard-assets")
    # The version in the asset links makes a browser fetch the new files after an upgrade.
    page = (WEB / "index.html").read_text(encoding="utf-8").replace("{{version}}", __version__)

    @app.get("/", include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(page, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})
