"""/docs (Swagger UI) and /redoc, whole from this server: no CDN, nothing fetched elsewhere."""

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

# Swagger UI and ReDoc as the fastapi-offline package ships them (kept current with their npm
# releases), served here instead of FastAPI's default CDN links.
ASSETS = files("fastapi_offline") / "static"
ASSETS_PATH = "/docs-assets"

# The pages may load nothing from another host: ReDoc links a logo from its CDN, and a browser
# on a machine without Internet access should not even try.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


def _offline(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


def install_docs(app: FastAPI) -> None:
    """Serve the two documentation pages and their assets; the app is made with docs_url=None."""
    app.mount(ASSETS_PATH, StaticFiles(directory=str(ASSETS)), name="docs-assets")
    favicon = f"{ASSETS_PATH}/favicon.png"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _offline(get_swagger_ui_html(
            openapi_url="/openapi.json", title=f"{app.title} API", swagger_favicon_url=favicon,
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            # No "valid" badge fetched from the swagger.io validator.
            swagger_ui_parameters={"validatorUrl": None},
        ))

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _offline(get_redoc_html(
            openapi_url="/openapi.json", title=f"{app.title} API", redoc_favicon_url=favicon,
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js", with_google_fonts=False,
        ))
