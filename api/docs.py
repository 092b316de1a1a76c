"""The interactive docs, served from this server: Swagger UI at /docs, ReDoc at /redoc.

FastAPI's default pages load Swagger UI and ReDoc (and Google's fonts) from public CDNs, so
on a machine without internet they stay blank. Here the pages are FastAPI's own
(:func:`get_swagger_ui_html`, :func:`get_redoc_html`) and their JavaScript and CSS come from
the installed ``fastapi-offline`` package (MIT; it ships the swagger-ui-dist 5 and ReDoc 2
standalone bundles and keeps them current), mounted under :data:`STATIC_URL`. Nothing the
pages load leaves the server: ReDoc 2 still shows Redocly's logo from its CDN, so the pages
carry a Content-Security-Policy that lets the browser load only from this origin
(tests/browser records every request). ``/`` redirects to ``/docs``; none of these routes is
part of the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["DOCS_URL", "REDOC_URL", "STATIC_URL", "add_docs"]

DOCS_URL: Final = "/docs"
REDOC_URL: Final = "/redoc"
STATIC_URL: Final = "/static/docs"
ASSETS_PACKAGE: Final = ("fastapi_offline", "static")  # swagger-ui-bundle.js, redoc.standalone.js

# No online validator badge: Swagger UI would send the schema's URL to validator.swagger.io.
SWAGGER_UI_PARAMETERS: Final[dict[str, Any]] = {"validatorUrl": None}

# Only this origin: the pages' inline start-up script and styles, ReDoc's blob: web worker,
# data: images. Blocks ReDoc's "API docs by Redocly" logo (an <img> on cdn.redoc.ly).
DOCS_CSP: Final = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "frame-ancestors 'self'",
    ]
)


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


def add_docs(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets from this process; redirect / to /docs.

    Create ``app`` with ``docs_url=None, redoc_url=None`` so FastAPI adds no CDN pages.
    """
    app.mount(STATIC_URL, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-static")

    def urls(request: Request) -> tuple[str, str]:
        root = request.scope.get("root_path", "").rstrip("/")  # behind a prefix-stripping proxy
        return f"{root}{app.openapi_url}", f"{root}{STATIC_URL}"

    @app.get("/", include_in_schema=False)
    def root(request: Request) -> RedirectResponse:
        return RedirectResponse(f"{request.scope.get('root_path', '').rstrip('/')}{DOCS_URL}")

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        openapi_url, static = urls(request)
        return _local_only(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{static}/swagger-ui-bundle.js",
                swagger_css_url=f"{static}/swagger-ui.css",
                swagger_favicon_url=f"{static}/favicon.png",
                swagger_ui_parameters={
                    **SWAGGER_UI_PARAMETERS,
                    **(app.swagger_ui_parameters or {}),
                },
            )
        )

    @app.get(REDOC_URL, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        openapi_url, static = urls(request)
        return _local_only(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{static}/redoc.standalone.js",
                redoc_favicon_url=f"{static}/favicon.png",
                with_google_fonts=False,
            )
        )
