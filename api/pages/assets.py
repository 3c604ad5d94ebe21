"""Where the pages' files live, and the one version string that makes their URLs cacheable.

Invariant: a page we serve loads nothing from another origin. Templates are in `templates/`;
scripts, styles and the vendored QR decoder in `static/` (package data, so they are in the wheel
and the image); Swagger UI's files come from the `swagger_ui_bundle` package. Both trees are served
under `/assets` by `api.pages`, and every reference a page makes carries `?v=<asset_version()>`.
The version is a digest of our files and Swagger UI's version, so a changed file gets a new URL
and a year-long cache is safe; a URL without the current version is not cached long.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from swagger_ui_bundle import swagger_ui_path

PACKAGE = "api.pages"
ASSETS_URL = "/assets"
OUR_ASSETS_URL = f"{ASSETS_URL}/pages"
SWAGGER_ASSETS_URL = f"{ASSETS_URL}/swagger-ui"
SWAGGER_UI_VERSION = Path(str(swagger_ui_path)).name.removeprefix("swagger-ui-")


def static_dir() -> Path:
    """Our assets as a directory on disk (Sanic's `static` serves paths, not resources)."""
    return Path(str(files(PACKAGE) / "static"))


def swagger_ui_dir() -> Path:
    return Path(str(swagger_ui_path))


def template_path(name: str) -> Path:
    return Path(str(files(PACKAGE) / "templates" / name))


def _walk(node: Traversable, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name.startswith(".") or child.name == "__pycache__":
            continue
        if child.is_dir():
            yield from _walk(child, f"{prefix}{child.name}/")
        else:
            yield f"{prefix}{child.name}", child


@functools.cache
def asset_version() -> str:
    """A digest of every file under `static/` (names and contents) and Swagger UI's version."""
    digest = hashlib.sha256(f"swagger-ui {SWAGGER_UI_VERSION}\0".encode())
    for name, node in _walk(files(PACKAGE) / "static"):
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256(node.read_bytes()).digest())
    return digest.hexdigest()[:16]


@functools.cache
def render(template: str) -> str:
    """A page template with its asset URLs filled in. Pages are static: no request data goes in."""
    return (
        template_path(template)
        .read_text(encoding="utf-8")
        .replace("__ASSETS__", OUR_ASSETS_URL)
        .replace("__V__", asset_version())
    )


def swagger_ui_config(*, title: str) -> dict[str, Any]:
    """sanic-ext's Swagger UI settings (`OAS_UI_SWAGGER_*`): our page template, our assets.

    sanic-ext fills `__CDN_URL__` and `__VERSION__` in the template; they become `/assets` and the
    asset version, so the page references `/assets/swagger-ui/...?v=...` and
    `/assets/pages/swagger-init.js?v=...`, never a CDN. The template has no inline script or
    style (the Content-Security-Policy forbids them).
    """
    return {
        "OAS_PATH_TO_SWAGGER_HTML": str(template_path("swagger.html")),
        "OAS_UI_SWAGGER_CDN_URL": ASSETS_URL,
        "OAS_UI_SWAGGER_VERSION": asset_version(),
        "OAS_UI_SWAGGER_HTML_TITLE": title,
    }
