"""The register's two hot reads at any register size: a citizen's own list and a clerk's look-up.

    python -m bench run --scenario register-reads --base-url URL --database-url URL --users 2000

Meant to be run twice, on the small demo register and on the city-sized one (docs/scale.md), then
compared with `python -m bench compare SMALL.json CITY.json`. So that both runs measure the same
thing, the users are a sample spread over the whole register, not its first rows: persons holding
1 to 5 current rights, ordered by a multiplicative hash of their id (deterministic, and at city
scale mostly generated persons, not the demo's fixed ones). The bench reads their ID numbers with
the API's own keys (from the same environment) and mints their access tokens and one clerk's with
the server's signing key, so no SMS and no sign-in limit is involved.

- `GET /api/v1/me/properties`, round robin over the citizens: after each citizen's first read the
  list comes from the per-person cache; every read appends one access-log entry.
- `POST /api/v1/clerk/property-queries`, round robin over the same persons' ID numbers: no cache;
  a blind-index look-up, the person's rights with their mortgages and encumbrances, one access-log
  entry. The server needs the clerk's per-minute and per-day look-up limits raised for the run
  (ESTATE_CLERK_LOOKUPS_PER_MINUTE, ESTATE_CLERK_LOOKUPS_PER_DAY): the bench is one clerk.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from bench.procinfo import pids_listening_on
from bench.scenarios import Options, measure

MY_PROPERTIES = "GET /api/v1/me/properties"
CLERK_LOOKUP = "POST /api/v1/clerk/property-queries"
PURPOSE, REFERENCE = "holder_request", "压测 bench"

# Knuth's multiplicative hash: a deterministic order that spreads the sample over every id range.
_SAMPLE = """
SELECT h.person_id FROM right_holder h
  JOIN "right" r ON r.id = h.right_id AND r.status = 'current'
 WHERE h.person_id IS NOT NULL
 GROUP BY h.person_id
HAVING COUNT(*) BETWEEN 1 AND 5
 ORDER BY (h.person_id * 2654435761) % 4294967296
 LIMIT {limit:d}
"""


async def _prepare(opts: Options) -> tuple[list[str], list[str], str, dict[str, Any]]:
    """(citizen tokens, their ID numbers, a clerk token, setup facts), with the server's keys."""
    import time

    from tortoise import connections

    from config.settings import load_settings
    from services.clock import SystemClock
    from services.db import close_database, open_database
    from services.identity.install_keys import with_install_secrets
    from services.identity.models import StaffUser
    from services.identity.tokens import TokenSigner
    from services.pii import PiiVault
    from services.registry.models import Person

    started = time.perf_counter()
    settings = with_install_secrets(load_settings(database_url=opts.database_url))
    vault, signer = PiiVault.from_settings(settings), TokenSigner.from_settings(settings, SystemClock())
    ctx = await open_database(settings.tortoise_config())
    try:
        rows = await connections.get("default").execute_query_dict(_SAMPLE.format(limit=opts.users))
        ids = [int(r["person_id"]) for r in rows]
        persons = {p.id: p for p in await Person.filter(id__in=ids).only("id", "id_number_enc")}
        clerk = await StaffUser.filter(role="clerk", office_code__not_isnull=True).order_by("id").first()
        persons_in_register = await Person.all().count()
    finally:
        await close_database(ctx)
    if not ids:
        raise SystemExit("no person with 1-5 current rights in the database: seed the register first")
    if clerk is None:
        raise SystemExit("no clerk with an office in the database: seed the demo first")
    citizens = [signer.issue(subject=f"person:{pid}", role="citizen", claims={"pid": pid})[0] for pid in ids]
    id_numbers = [vault.decrypt(persons[pid].id_number_enc) for pid in ids]
    clerk_claims = {"office": clerk.office_code}
    clerk_token = signer.issue(subject=f"staff:{clerk.id}", role="clerk", claims=clerk_claims)[0]
    setup = {
        "persons_in_register": persons_in_register,
        "users": len(ids),
        "sample": "persons with 1-5 current rights, by multiplicative hash of the id",
        "clerk_office": clerk.office_code,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return citizens, id_numbers, clerk_token, setup


async def register_reads(opts: Options) -> dict[str, Any]:
    """A citizen's property list and a clerk's look-up by ID number, on a sample of the register."""
    citizens, id_numbers, clerk_token, setup = await _prepare(opts)
    print(f"[bench] {setup['users']} holders sampled from {setup['persons_in_register']} persons", flush=True)
    citizen_headers = [{"Authorization": f"Bearer {token}"} for token in citizens]
    clerk_headers = {"Authorization": f"Bearer {clerk_token}"}

    def properties(i: int) -> tuple[str, str, dict[str, str], Any]:
        return "GET", "/api/v1/me/properties", citizen_headers[i % len(citizen_headers)], None

    def lookup(i: int) -> tuple[str, str, dict[str, str], Any]:
        body = {"id_number": id_numbers[i % len(id_numbers)], "purpose": PURPOSE, "reference": REFERENCE}
        return "POST", "/api/v1/clerk/property-queries", clerk_headers, body

    port = urlsplit(opts.base_url).port or 80
    pids = pids_listening_on(port) if opts.server_pid is None else [opts.server_pid]
    runs = {
        MY_PROPERTIES: await measure(opts, MY_PROPERTIES, opts.base_url, pids, properties),
        CLERK_LOOKUP: await measure(opts, CLERK_LOOKUP, opts.base_url, pids, lookup),
    }
    return {"setup": setup, "runs": runs}
