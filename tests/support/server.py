"""Run the real app on a real port inside the test event loop."""

from __future__ import annotations

import itertools
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

from sanic import Sanic
from sanic_ext.extensions.openapi.builders import SpecificationBuilder
from tortoise import context as tortoise_context

from api.app import create_app
from config.settings import Settings
from services.clock import Clock

_names = itertools.count(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningApp:
    app: Sanic
    base_url: str

    @property
    def services(self):  # type: ignore[no-untyped-def]
        return self.app.ctx.services


@contextmanager
def _own_global_tortoise_context() -> Iterator[None]:
    """The app opens its database as Tortoise's global fallback context (services/db.py), and
    Tortoise allows one at a time. A test that runs a second app on another database while the
    session's app is idle (tests/integration/test_query_plans.py) sets the session's aside for
    the second app's lifetime and puts it back afterwards."""
    saved = tortoise_context._global_context
    tortoise_context._global_context = None
    try:
        yield
    finally:
        tortoise_context._global_context = saved


@contextmanager
def _own_openapi_operations() -> Iterator[None]:
    """sanic-ext keeps one specification per process, whose operations (one per handler, shared by
    every app of the handler) name the app that built them last; a second app's start takes them
    over, and the first app's /docs/openapi.json would list no path. Put them back afterwards."""
    spec = SpecificationBuilder()
    saved = {path: dict(ops) for path, ops in spec._paths.items()}
    owners = {id(op): (op, op._app) for ops in saved.values() for op in ops.values() if hasattr(op, "_app")}
    try:
        yield
    finally:
        spec._paths.clear()
        spec._paths.update(saved)
        for op, app in owners.values():
            op._app = app


@asynccontextmanager
async def running_app(settings: Settings, *, clock: Clock | None = None) -> AsyncIterator[RunningApp]:
    with _own_global_tortoise_context(), _own_openapi_operations():
        async with _running_app(settings, clock=clock) as running:
            yield running


@asynccontextmanager
async def _running_app(settings: Settings, *, clock: Clock | None = None) -> AsyncIterator[RunningApp]:
    port = free_port()
    settings = settings.model_copy(update={"host": "127.0.0.1", "port": port})
    app = create_app(settings, clock=clock, name=f"estate_test_{next(_names)}")
    # Sanic's TouchUp rewrites server methods from their source at a primary app's start; a second
    # app in the same process would rewrite the rewritten method, whose source it cannot find.
    app.config.TOUCHUP = False
    server = await app.create_server(
        host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False
    )
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    await server.start_serving()
    try:
        yield RunningApp(app, f"http://127.0.0.1:{port}")
    finally:
        await server.before_stop()
        await server.close()
        await server.after_stop()
