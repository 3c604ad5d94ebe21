"""The service answers, documents every route, and reports its health."""

import re


async def test_live_and_ready(client):
    r = await client.get("/health/live")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    r = await client.get("/health/ready")
    assert r.status_code == 200, r.text
    assert r.json()["checks"]["database"] == "ok" and r.json()["checks"]["redis"].startswith("ok")
    assert r.headers["X-Request-ID"]


async def test_spec_lists_every_route(client, app):
    spec = (await client.get("/docs/openapi.json")).json()
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    for route in app.app.router.routes:
        if route.path.startswith("docs") or getattr(route.extra, "static", False):
            continue  # the spec's own pages, and package files (pages' assets): not API operations
        path = "/" + re.sub(r"<(\w+)(:[^>]*)?>", r"{\1}", route.path)
        for method in route.methods - {"HEAD", "OPTIONS"}:
            assert (method, path) in documented, f"{method} {path} is not in the OpenAPI spec"
    assert "bearer" in spec["components"]["securitySchemes"]
    assert (await client.get("/docs")).status_code == 200


async def test_metrics_are_exposed(client):
    await client.get("/health/live")
    r = await client.get("/metrics")
    assert r.status_code == 200 and "estate_http_requests_total" in r.text


async def test_request_id_is_echoed_and_errors_carry_it(client):
    r = await client.get("/api/v1/me", headers={"X-Request-ID": "trace-12345678"})
    assert r.status_code == 401
    assert r.headers["X-Request-ID"] == "trace-12345678" and r.json()["request_id"] == "trace-12345678"
