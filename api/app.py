"""The Sanic application factory: the one composition root."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import ujson
from sanic import Sanic
from sanic_ext import Extend

from api import errors, observability, openapi
from api.container import start_services, stop_services
from api.routes import admin as admin_routes
from api.routes import auth as auth_routes
from api.routes import clerk as clerk_routes
from api.routes import health as health_routes
from api.routes import me as me_routes
from api.routes import messages as messages_routes
from api.routes import properties as properties_routes
from api.routes import wards as wards_routes
from api.worker import run_guardianship_feed_poller, run_outbox_worker
from config.settings import Settings, load_settings
from services.clock import Clock

API_TITLE = "不动产一网通办 API"


def create_app(
    settings: Settings | None = None, *, clock: Clock | None = None, name: str = "estate"
) -> Sanic:
    settings = settings or load_settings()
    # UTF-8 JSON: Chinese text stays readable on the wire.
    app = Sanic(
        name,
        configure_logging=False,
        dumps=partial(ujson.dumps, ensure_ascii=False, escape_forward_slashes=False),
    )
    app.config.update(
        {
            "OAS_URL_PREFIX": "/docs",
            "OAS_UI_DEFAULT": "swagger",
            "OAS_UI_REDOC": False,
            "OAS_AUTODOC": False,
            "OAS_IGNORE_HEAD": True,
            "OAS_IGNORE_OPTIONS": True,
            "CORS": False,
            "HEALTH": False,
            "REQUEST_MAX_SIZE": 2 * 1024 * 1024,
            "REQUEST_TIMEOUT": 30,
            "KEEP_ALIVE_TIMEOUT": 15,
            "FALLBACK_ERROR_FORMAT": "json",
            "PROXIES_COUNT": settings.proxies_count or None,
        }
    )
    Extend(app)
    app.ext.openapi.describe(
        API_TITLE,
        version="1.0.0",
        description=(
            "Citizens, guardians, registration clerks and banks. Errors are RFC 9457 problem+json "
            "with a stable `code`; send `Accept-Language: en` for English texts."
        ),
    )
    app.ctx.settings = settings
    observability.install(app)
    errors.register_error_handlers(app)
    for blueprint in (
        health_routes.bp,
        auth_routes.bp,
        me_routes.bp,
        admin_routes.bp,
        properties_routes.bp,
        wards_routes.bp,
        clerk_routes.bp,
        messages_routes.bp,
    ):
        app.blueprint(blueprint)
    openapi.install(app)

    @app.before_server_start
    async def open_services(app: Sanic, *_: Any) -> None:
        app.ctx.services = await start_services(app.ctx.settings, clock=clock)

    @app.after_server_start
    async def start_background(app: Sanic, *_: Any) -> None:
        # Started after the listeners, outside any transaction, and stopped with the services.
        services = app.ctx.services
        observability.settle_heap()
        if services.settings.outbox_in_process:
            task = asyncio.get_running_loop().create_task(run_outbox_worker(services), name="outbox-worker")
            services.background.append(task)
        if services.settings.guardianship_feed_poll_interval_s > 0:
            task = asyncio.get_running_loop().create_task(
                run_guardianship_feed_poller(services), name="guardianship-feed-poller"
            )
            services.background.append(task)

    @app.after_server_stop
    async def close_services(app: Sanic, *_: Any) -> None:
        services = getattr(app.ctx, "services", None)
        if services is not None:
            await stop_services(services)

    return app
