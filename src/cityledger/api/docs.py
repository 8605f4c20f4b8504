"""The API reference (/docs) served from an installed package: no CDN, so it works offline.

FastAPI's own /docs page loads Swagger UI's JavaScript and CSS from a public CDN, which a node on a
consortium's private network cannot reach. The pinned `fastapi-offline` package ships those files;
only its static folder is used here, served under DOCS_ASSETS_URL. There is no /redoc: ReDoc's
bundle loads its logo from the vendor's CDN whatever its options, so it is not served offline.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

DOCS_ASSETS_URL = "/docs-assets"
# Swagger UI would otherwise ask an online validator about the document (an outside request).
SWAGGER_PARAMETERS = {"validatorUrl": None, "tryItOutEnabled": False}


def assets_folder() -> str:
    """The installed fastapi-offline package's static folder (swagger-ui-bundle.js, swagger-ui.css)."""
    return str(files("fastapi_offline") / "static")


def include_docs(app: FastAPI) -> None:
    """Serve /docs (Swagger UI) and /docs/oauth2-redirect from the installed assets."""
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=assets_folder()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    favicon = f"{DOCS_ASSETS_URL}/favicon.png"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url, title=f"{app.title} API reference",
                                   swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=favicon,
                                   oauth2_redirect_url="/docs/oauth2-redirect",
                                   swagger_ui_parameters=SWAGGER_PARAMETERS)

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
