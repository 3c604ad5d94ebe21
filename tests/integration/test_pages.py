"""Every HTML page we serve loads only from our own origin, and everything it loads is there.

Government intranets have no internet: a page that references a CDN works on a developer's
machine and is blank at the registration counter. So for each page: every `src`, `href`,
`data-*url` and CSS `url()` reference (also inside the stylesheets it links) must resolve to our
origin and answer 200 with the content type its kind needs (a browser with `nosniff` refuses a
script served as text/plain). The headers that make the browser enforce the same rule (CSP,
nosniff) are checked here too; tests/e2e/test_clerk_verify_page.py checks it in a real browser.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from api.pages import PAGE_POLICY
from api.pages.assets import asset_version

PAGES = ["/docs", "/docs/swagger", "/clerk/verify", "/v"]
_URL_ATTRIBUTES = {"src", "href", "poster", "action", "formaction", "data-url", "data-config-url"}
_CSS_URL = re.compile(r"""url\(\s*(['"]?)(.*?)\1\s*\)""")
# What a browser needs to use each kind of file (nosniff makes it strict).
_CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".svg": ("image/svg+xml",),
    ".png": ("image/png",),
    ".json": ("application/json",),
}


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self.inline_styles = 0
        self._in_script_without_src = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        for name, value in values.items():
            if name in _URL_ATTRIBUTES or name == "srcset":
                self.urls += [part.split()[0] for part in value.split(",") if part.strip()]
            if name == "style":
                self.urls += [m.group(2) for m in _CSS_URL.finditer(value)]
            if name.startswith("on"):
                self.inline_scripts += 1  # an event handler attribute is inline script
        if tag == "script" and "src" not in values:
            self._in_script_without_src = True
        if tag == "style":
            self.inline_styles += 1

    def handle_data(self, data: str) -> None:
        if self._in_script_without_src and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script_without_src = False


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _check_content_type(url: str, response: httpx.Response) -> str | None:
    path = urlsplit(url).path
    suffix = path[path.rfind(".") :] if "." in path.rsplit("/", 1)[-1] else ".json"
    wanted = _CONTENT_TYPES.get(suffix)
    got = response.headers.get("content-type", "").split(";")[0].strip()
    if wanted is None:
        return f"{url}: no expected content type for {suffix!r} (add one to _CONTENT_TYPES)"
    if got not in wanted:
        return f"{url}: content type {got!r}, expected one of {wanted}"
    return None


async def _check_references(
    client: httpx.AsyncClient, base: str, referrer: str, urls: list[str], seen: set[str]
) -> list[str]:
    problems: list[str] = []
    for ref in urls:
        if ref.startswith("data:") or ref.startswith("#"):
            continue  # inline data and fragments load nothing
        absolute = urljoin(referrer, ref)
        if _origin(absolute) != _origin(base):
            problems.append(f"{referrer}: {ref!r} is on another origin")
            continue
        if absolute in seen:
            continue
        seen.add(absolute)
        r = await client.get(absolute)
        if r.status_code != 200:
            problems.append(f"{referrer}: {ref!r} answered {r.status_code}")
            continue
        if problem := _check_content_type(absolute, r):
            problems.append(f"{referrer}: {problem}")
        if r.headers.get("x-content-type-options") != "nosniff":
            problems.append(f"{absolute}: no X-Content-Type-Options: nosniff")
        if urlsplit(absolute).path.endswith(".css"):
            inner = [m.group(2) for m in _CSS_URL.finditer(r.text)]
            problems += await _check_references(client, base, absolute, inner, seen)
    return problems


@pytest.mark.parametrize("path", PAGES)
async def test_page_loads_everything_from_our_origin(client: httpx.AsyncClient, app, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    parser = _References()
    parser.feed(r.text)
    assert parser.urls, f"{path}: no references found: is the page parsed?"
    assert parser.inline_scripts == 0, f"{path}: inline script (the CSP blocks it)"
    assert parser.inline_styles == 0, f"{path}: inline <style> (the CSP blocks it)"
    assert "//" not in " ".join(u for u in parser.urls if not u.startswith("data:")), parser.urls
    problems = await _check_references(client, app.base_url, f"{app.base_url}{path}", parser.urls, set())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", PAGES)
async def test_page_headers_forbid_other_origins(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    policy = r.headers.get("content-security-policy", "")
    assert policy == PAGE_POLICY, policy
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'", "no inline or foreign scripts"
    for directive, sources in directives.items():
        for source in sources.split():
            assert source in ("'self'", "'none'", "data:", "blob:"), f"{directive} allows {source}"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-cache", "a page must pick up new asset versions"


async def test_versioned_assets_are_cached_for_a_year_and_others_revalidate(
    client: httpx.AsyncClient,
) -> None:
    version = asset_version()
    for path in ("/assets/pages/verdict.js", "/assets/swagger-ui/swagger-ui.css"):
        r = await client.get(path, params={"v": version})
        assert r.status_code == 200
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        for params in ({}, {"v": "old"}):
            r = await client.get(path, params=params)
            assert r.status_code == 200
            assert r.headers["cache-control"] == "no-cache", (path, params)


async def test_asset_routes_serve_nothing_outside_their_directories(client: httpx.AsyncClient) -> None:
    for path in (
        "/assets/pages/nothing-here.js",
        "/assets/pages/../__init__.py",
        "/assets/pages/%2e%2e/__init__.py",
        "/assets/pages/..%2f__init__.py",
        "/assets/swagger-ui/../__init__.py",
    ):
        r = await client.get(path)
        assert r.status_code == 404, (path, r.status_code, r.text[:200])
        assert "immutable" not in r.headers.get("cache-control", "")


async def test_swagger_oauth2_redirect_is_served_from_the_bundle(client: httpx.AsyncClient) -> None:
    """sanic-ext's own handler downloads this page from a CDN on each request; ours does not."""
    r = await client.get("/docs/oauth2-redirect.html")
    assert r.status_code == 200
    assert "swaggerUIRedirectOauth2" in r.text
    policy = r.headers["content-security-policy"]
    assert "script-src 'sha256-" in policy and "'unsafe-inline'" not in policy
    assert "default-src 'self'" in policy


async def test_pages_are_documented_as_html_and_assets_not_at_all(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/docs/openapi.json")).json()
    for page in ("/clerk/verify", "/v"):
        operation = spec["paths"][page]["get"]
        assert "text/html" in operation["responses"]["200"]["content"]
        assert not operation.get("security")
    assert not [p for p in spec["paths"] if p.startswith("/assets/")]
