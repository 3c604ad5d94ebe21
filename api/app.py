"""The Sanic application factory: the one composition root."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
from sanic import Sanic
from sanic_ext import Extend

from api import errors, observability, openapi, pages
from api.container import Services, start_services, stop_services
from api.routes import admin as admin_routes
from api.routes import appointments as appointments_routes
from api.routes import auth as auth_routes
from api.routes import banks_admin as banks_admin_routes
from api.routes import cases as cases_routes
from api.routes import certificates as certificates_routes
from api.routes import clerk as clerk_routes
from api.routes import filings as filings_routes
from api.routes import health as health_routes
from api.routes import me as me_routes
from api.routes import messages as messages_routes
from api.routes import offices as offices_routes
from api.routes import properties as properties_routes
from api.routes import registrations as registrations_routes
from api.routes import wards as wards_routes
from api.worker import run_guardianship_feed_poller, run_outbox_worker
from config.settings import Settings, load_settings
from services.appointments.slots import run_slot_releaser
from services.clock import Clock

API_TITLE = "不动产一网通办 API"


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None) -> bytes:
    """Every JSON response body: UTF-8 with Chinese text as is (no \\u escapes), `/` unescaped.

    A `Decimal` goes out as the exact JSON number it holds, not rounded through a float as ujson
    did; so does an integer beyond 64 bits (orjson refuses those, and a caller can send one, e.g.
    an id in a path that a 404 problem echoes). `default` (Sanic passes `json(..., default=...)`
    through) serialises anything else orjson does not know; without it, an unknown type is an
    error, not a guess."""

    def fallback(obj: Any) -> Any:
        if isinstance(obj, Decimal) and obj.is_finite():
            return orjson.Fragment(str(obj))
        if default is not None:
            return default(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")

    try:
        return orjson.dumps(value, default=fallback, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # the rare path; anything else fails again, as it should
        return orjson.dumps(_big_ints_as_numbers(value), default=fallback, option=orjson.OPT_NON_STR_KEYS)


def _big_ints_as_numbers(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return orjson.Fragment(str(int(value)))
    if isinstance(value, dict):
        return {k: _big_ints_as_numbers(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_big_ints_as_numbers(v) for v in value]
    return value


def create_app(
    settings: Settings | None = None, *, clock: Clock | None = None, name: str = "estate"
) -> Sanic:
    settings = settings or load_settings()
    app = Sanic(name, configure_logging=False, dumps=dumps)
    app.config.update(
        {
            "OAS_URL_PREFIX": "/docs",
            "OAS_UI_DEFAULT": "swagger",
            "OAS_UI_REDOC": False,
            "OAS_AUTODOC": False,
            "OAS_IGNORE_HEAD": True,
            "OAS_IGNORE_OPTIONS": True,
            # Swagger UI from our own package and origin, never a CDN (api/pages).
            **pages.swagger_ui_config(title=API_TITLE),
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
    pages.install(app)  # the `pages` blueprint (/clerk/verify, /v, /assets) and page headers
    for blueprint in (
        health_routes.bp,
        auth_routes.bp,
        me_routes.bp,
        admin_routes.bp,
        properties_routes.bp,
        wards_routes.bp,
        clerk_routes.bp,
        messages_routes.bp,
        certificates_routes.bp,
        offices_routes.bp,
        appointments_routes.bp,
        cases_routes.bp,
        registrations_routes.bp,
        filings_routes.bp,
        banks_admin_routes.bp,
    ):
        app.blueprint(blueprint)
    openapi.install(app)

    @app.before_server_start
    async def open_services(app: Sanic, *_: Any) -> None:
        app.ctx.services = await start_services(app.ctx.settings, clock=clock)

    @app.after_server_start
    async def start_background(app: Sanic, *_: Any) -> None:
        # Started after the listeners, outside any transaction, and stopped with the services.
        # Each task is bound to this app's database context (Tortoise's context variable, copied
        # into the task when it is created), not to the global fallback, which another app in
        # the same process (a test's second app) may replace while these run.
        services = app.ctx.services
        observability.settle_heap()
        with services.db:
            _start_background(services)

    def _start_background(services: Services) -> None:
        if services.settings.outbox_in_process:
            task = asyncio.get_running_loop().create_task(run_outbox_worker(services), name="outbox-worker")
            services.background.append(task)
        if services.settings.guardianship_feed_poll_interval_s > 0:
            task = asyncio.get_running_loop().create_task(
                run_guardianship_feed_poller(services), name="guardianship-feed-poller"
            )
            services.background.append(task)
        if services.settings.slot_release_interval_s > 0:
            every = services.settings.slot_release_interval_s
            releaser = run_slot_releaser(clock=services.clock, interval_s=every, stop=services.stop_event)
            services.background.append(asyncio.get_running_loop().create_task(releaser, name="slot-releaser"))

    @app.after_server_stop
    async def close_services(app: Sanic, *_: Any) -> None:
        services = getattr(app.ctx, "services", None)
        if services is not None:
            await stop_services(services)

    return app
