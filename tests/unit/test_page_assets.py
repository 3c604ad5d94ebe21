"""Every asset a page references is a file of the installed package, and ships in the wheel.

The pages (api/pages) are served from package data, not from a CDN: a file missing from the wheel
or the image would be a blank page at the registration counter. Read through
`importlib.resources`, as the running service reads them, and against pyproject.toml's
package-data globs, which decide what the wheel (and so the Docker image) contains.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from importlib.resources import files
from pathlib import Path

import pytest

from api.pages.assets import swagger_ui_dir

ROOT = Path(__file__).resolve().parents[2]
PAGES = files("api.pages")
TEMPLATES = sorted(t.name for t in (PAGES / "templates").iterdir() if t.name.endswith(".html"))
# A reference in a template: an attribute value that starts with one of the asset placeholders.
_REFERENCE = re.compile(r"""(?:src|href)="([^"]*)\"""")
_OURS = ("__ASSETS__/", "__CDN_URL__/pages/")
_SWAGGER = "__CDN_URL__/swagger-ui/"


def _references(template: str) -> list[str]:
    return _REFERENCE.findall((PAGES / "templates" / template).read_text(encoding="utf-8"))


def test_there_are_the_pages_we_serve() -> None:
    assert set(TEMPLATES) >= {"clerk-verify.html", "public-verify.html", "swagger.html"}


@pytest.mark.parametrize("template", TEMPLATES)
def test_each_reference_is_a_packaged_asset_with_a_version(template: str) -> None:
    references = _references(template)
    assert references, f"{template}: no src/href found"
    for ref in references:
        path, _, query = ref.partition("?")
        assert query in ("v=__V__", "v=__VERSION__"), f"{template}: {ref} has no asset version"
        if path.startswith(_OURS):
            relative = path.removeprefix("__ASSETS__/").removeprefix("__CDN_URL__/pages/")
            assert (PAGES / "static" / relative).is_file(), f"{template}: {relative} not in api/pages/static"
        elif path.startswith(_SWAGGER):
            assert (swagger_ui_dir() / path.removeprefix(_SWAGGER)).is_file(), f"{template}: {path}"
        else:
            pytest.fail(f"{template}: {ref} is not one of our assets (another origin?)")


def test_the_vendored_qr_decoder_is_the_published_jsqr_1_4_0() -> None:
    vendor = PAGES / "static" / "vendor" / "jsqr"
    readme = (vendor / "README.md").read_text(encoding="utf-8")
    recorded = re.search(r"sha256 of `jsQR.js` \| `([0-9a-f]{64})`", readme)
    assert recorded, "the README records no sha256 for jsQR.js"
    assert hashlib.sha256((vendor / "jsQR.js").read_bytes()).hexdigest() == recorded.group(1)
    assert "Apache License" in (vendor / "LICENSE").read_text(encoding="utf-8")


def test_package_data_ships_every_page_file() -> None:
    """What setuptools puts in the wheel: the files matched by the package-data globs."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = config["tool"]["setuptools"]["package-data"]["api.pages"]
    package = ROOT / "api" / "pages"
    shipped = {p for pattern in globs for p in package.glob(pattern) if p.is_file()}
    needed = {
        p
        for folder in ("templates", "static")
        for p in (package / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert needed, "no page files found"
    assert not needed - shipped, f"not in the wheel: {sorted(str(p) for p in needed - shipped)}"
