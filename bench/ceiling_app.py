"""The framework ceiling: the smallest Sanic app on the same stack as the API, for comparison.

    python -m bench.ceiling_app --port 8099 --database-url sqlite://var/estate.sqlite3

GET /ceiling/json answers a tiny JSON; GET /ceiling/db does one single-row SELECT on the given
database through Tortoise's connection (aiosqlite or asyncpg, as the API uses); POST /ceiling/db
does the same after reading a JSON body, as a booking request arrives (bench/rush.py). One process,
one worker, no access log: as `python -m api serve` runs by default; `--workers N` for the rush,
whose server runs two. The harness starts it.
"""

from __future__ import annotations

import argparse
import logging
from functools import partial
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse, json
from sanic.worker.loader import AppLoader
from tortoise import connections

from config.settings import tortoise_config
from services.db import close_database, open_database


def create_app(database_url: str) -> Sanic:
    app = Sanic("ceiling", configure_logging=False)
    app.config.update({"OAS": False, "HEALTH": False, "KEEP_ALIVE_TIMEOUT": 15})

    @app.before_server_start
    async def open_db(app: Sanic, *_: Any) -> None:
        app.ctx.db = await open_database(tortoise_config(database_url))
        conn = connections.get("default")
        dialect = str(conn.capabilities.dialect)
        placeholder = "$1" if dialect == "postgres" else "?"
        app.ctx.sql = f"SELECT id, phone_index FROM person WHERE id = {placeholder}"
        _, rows = await conn.execute_query("SELECT min(id) FROM person")
        app.ctx.person_id = next(iter(dict(rows[0]).values())) if rows else None

    @app.after_server_stop
    async def close_db(app: Sanic, *_: Any) -> None:
        await close_database(app.ctx.db)

    @app.get("/ceiling/json")
    async def tiny(request: Request) -> HTTPResponse:
        return json({"status": "ok"})

    @app.get("/ceiling/db")
    async def one_row(request: Request) -> HTTPResponse:
        rows = await connections.get("default").execute_query_dict(
            request.app.ctx.sql, [request.app.ctx.person_id]
        )
        return json({"found": len(rows)})

    @app.post("/ceiling/db")
    async def one_row_posted(request: Request) -> HTTPResponse:
        body = request.json
        rows = await connections.get("default").execute_query_dict(
            request.app.ctx.sql, [request.app.ctx.person_id]
        )
        return json({"found": len(rows), "fields": len(body) if isinstance(body, dict) else 0})

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling_app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.workers == 1:
        app = create_app(args.database_url)
        app.run(host=args.host, port=args.port, single_process=True, access_log=False, motd=False)
        return
    loader = AppLoader(factory=partial(create_app, args.database_url))
    app = loader.load()
    app.prepare(host=args.host, port=args.port, workers=args.workers, access_log=False, motd=False)
    Sanic.serve(primary=app, app_loader=loader)


if __name__ == "__main__":
    main()
