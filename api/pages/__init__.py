"""Our web pages: the clerk's certificate check (`/clerk/verify`), the public check a certificate's
QR code opens (`/v#<token>`), and the assets of those pages and of Swagger UI (`/docs`).

Invariant: every page loads only from our own origin. Government intranets have no internet, and
a page that pulls code from a CDN is also code we did not review. So the assets are package data
(api/pages/assets.py), and every HTML response carries a Content-Security-Policy that lets the
browser load, run and connect to `'self'` only, with no inline script or style: an injected
`<script>` or a stray CDN link fails in the browser, loudly, instead of working on a developer's
machine and breaking on the intranet. `tests/integration/test_pages.py` crawls the pages for
references to other origins; `tests/e2e/test_clerk_verify_page.py` drives the clerk page in a
real browser and fails on any console error or request to another origin.

What the pages do not protect: the access token a clerk signs in with is kept in the page's memory
only (never in localStorage), so it ends with the tab; anyone at the clerk's unlocked screen can
still use it until then.
"""

from __future__ import annotations

import base64
import hashlib
import re

from sanic import Blueprint, HTTPResponse, Request, Sanic
from sanic.response import BaseHTTPResponse, html

from api.openapi import doc
from api.pages.assets import (
    OUR_ASSETS_URL,
    SWAGGER_ASSETS_URL,
    asset_version,
    render,
    static_dir,
    swagger_ui_config,
    swagger_ui_dir,
)

__all__ = ["PAGE_POLICY", "bp", "install", "swagger_ui_config"]

# What our pages truly need: scripts, styles, fonts and fetch() from our origin; images also as
# data: URIs (Swagger UI's stylesheet draws its icons with them) and blob: (camera frames). The
# camera needs nothing here: getUserMedia is governed by the secure context, not by CSP.
PAGE_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "media-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
# A year, for an asset URL that carries the current version (api/pages/assets.py).
VERSIONED_ASSET_CACHE = "public, max-age=31536000, immutable"

bp = Blueprint("pages")
bp.static(OUR_ASSETS_URL, static_dir(), name="assets", resource_type="dir")
bp.static(SWAGGER_ASSETS_URL, swagger_ui_dir(), name="swagger_ui_assets", resource_type="dir")
_ASSET_ROUTES = frozenset({"assets", "swagger_ui_assets"})


def _page(template: str) -> HTTPResponse:
    return html(render(template))


_PAGE = {"type": "string", "description": "An HTML page"}


@bp.get("/clerk/verify", name="clerk_verify")
@doc(
    summary="The clerk's certificate-check page (HTML)",
    tag="pages",
    ok=(200, _PAGE),
    ok_content_type="text/html",
    secured=False,
)
async def clerk_verify(request: Request) -> HTTPResponse:
    """The clerk signs in and checks a scanned certificate (POST /api/v1/verifications)."""
    return _page("clerk-verify.html")


@bp.get("/v", name="public_verify")
@doc(
    summary="The page a certificate's QR code opens: /v#<token> (HTML)",
    tag="pages",
    ok=(200, _PAGE),
    ok_content_type="text/html",
    secured=False,
)
async def public_verify(request: Request) -> HTTPResponse:
    """Opened by a phone from a certificate's QR code, `/v#<token>`: the token never reaches our
    logs as part of a URL (a fragment is not sent), only in the body of the check it makes."""
    return _page("public-verify.html")


@bp.on_response
async def cache_versioned_assets(request: Request, response: BaseHTTPResponse) -> None:
    route = request.route
    if route is None or response.status != 200 or route.name.rsplit(".", 1)[-1] not in _ASSET_ROUTES:
        return
    current = request.args.get("v") == asset_version()
    response.headers["Cache-Control"] = VERSIONED_ASSET_CACHE if current else "no-cache"


def _oauth2_redirect_page() -> tuple[str, str]:
    """Swagger UI's own OAuth2 redirect page and a policy that allows exactly its inline script.

    sanic-ext's handler for this URL downloads the page from a CDN on every request (an outbound
    call from the server, which fails on an intranet); we answer it from the bundle instead."""
    page = (swagger_ui_dir() / "oauth2-redirect.html").read_text(encoding="utf-8")
    scripts = re.findall(r"<script>(.*?)</script>", page, flags=re.DOTALL)
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts
    )
    return page, PAGE_POLICY.replace("script-src 'self'", f"script-src {hashes}")


def install(app: Sanic) -> None:
    """Register the pages' blueprint and the headers every response gets.

    Called from the composition root after `Extend(app)` (Swagger UI is sanic-ext's blueprint, so
    its page gets its headers from the app-wide middleware here, not from ours)."""
    app.blueprint(bp)
    oauth2_path = app.config.OAS_URL_PREFIX.rstrip("/") + app.config.OAS_UI_SWAGGER_OAUTH2_REDIRECT
    oauth2_page, oauth2_policy = _oauth2_redirect_page()

    @app.on_request
    async def swagger_oauth2_redirect(request: Request) -> HTTPResponse | None:
        if request.path != oauth2_path or request.method not in ("GET", "HEAD"):
            return None
        return html(oauth2_page, headers={"Content-Security-Policy": oauth2_policy})

    @app.on_response
    async def security_headers(request: Request, response: BaseHTTPResponse) -> None:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        content_type = response.content_type or headers.get("content-type") or ""
        if content_type.startswith("text/html"):
            headers.setdefault("Content-Security-Policy", PAGE_POLICY)
            headers.setdefault("Referrer-Policy", "no-referrer")
            headers.setdefault("Cache-Control", "no-cache")
