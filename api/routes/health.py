"""Liveness, readiness and the public signing keys."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel
from sanic import Blueprint, HTTPResponse, Request
from sanic.response import json
from tortoise import connections

from api.openapi import doc

bp = Blueprint("health")


class HealthStatus(BaseModel):
    status: str
    checks: dict[str, str] = {}


class Jwks(BaseModel):
    keys: list[dict[str, str]]


@bp.get("/health/live")
@doc(summary="Liveness: the process answers", tag="health", ok=(200, HealthStatus), secured=False)
async def live(request: Request) -> HTTPResponse:
    return json({"status": "ok", "checks": {}})


@bp.get("/health/ready")
@doc(
    summary="Readiness: the database and Redis answer",
    tag="health",
    ok=(200, HealthStatus),
    secured=False,
    extra_responses={503: ("Not ready", {"application/json": {"$ref": "#/components/schemas/HealthStatus"}})},
)
async def ready(request: Request) -> HTTPResponse:
    services = request.app.ctx.services
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(connections.get("default").execute_query("SELECT 1"), 2)
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; the kind is reported, not the details
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        await asyncio.wait_for(services.kv.ping(), 2)
        checks["redis"] = "ok" if services.settings.redis_url else "ok (in-process)"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    ok = all(v.startswith("ok") for v in checks.values())
    return json({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)


@bp.get("/.well-known/jwks.json")
@doc(summary="Public keys that verify our access tokens (JWKS)", tag="auth", ok=(200, Jwks), secured=False)
async def jwks(request: Request) -> HTTPResponse:
    return json(request.app.ctx.services.signer.jwks(), headers={"Cache-Control": "public, max-age=300"})
