"""Rows the city loader leaves out, added so the query-plan test guards the tables that grow
fastest in a real city (tests/integration/test_query_plans.py, docs/scale.md "Query plans").

`demo.city.seed_city` fills the register (persons, units, rights, holders, mortgages,
encumbrances, cases, guardianship links); the tables filled by the service as it runs stay at the
demo's handful of rows: the access log, slots and their stripes, appointments, waitlists,
certificates, inbox messages, bank filings, case parties, events and utility transfers, outbox
messages and idempotency records. The planner rightly scans a table of a few rows, so a missing
index there went unseen. In a city those tables hold millions of rows; `pad_register` gives each
some 20,000 to 60,000 (more than the test's 10,000-row threshold, and enough for realistic
estimates), once.

How: one `INSERT ... SELECT ... FROM generate_series(...)` per table, made by the server, then
ANALYZE. Values are spread the way the service spreads them, so the planner's estimates are the
city's: rows over many persons (any of the register's, drawn at random), days, statuses, offices
and banks; appointments one per booked seat of past slots; filings one per registered mortgage;
case parties from the holders of each case's right, utility transfers for each issued transfer;
outbox messages for the padded appointments and filings. Reproducible: the session's random
stream is seeded first.

What the requests of the test still find as they expect, and why:
- Padded slots, stripes, appointments and waitlist entries are in the past, so no free seat, no
  active appointment (`active_key` stays NULL) and no future day changes: bookings work as before.
- The access log gets entries over the past `LOG_MONTHS` monthly partitions (made with
  services/audit/partitions.py's own DDL), with seqs after the head's `last_seq`, and the head is
  moved to the last of them, so the requests' own appends continue the sequence. Their hashes are
  not a valid chain (`audit verify` would say so); the test does not verify it.
- Outbox messages are `delivered` or `dead`, never `pending`: a worker started on a padded
  register later has nothing of theirs to send.

A table that already holds its rows is left as it is (a register kept with
`TEST_PLANS_DATABASE_URL` is padded the first time only).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from tortoise.context import TortoiseContext

from config.settings import Settings
from integrations.utilities.config import load_providers
from services.appointments.seats import STRIPES
from services.appointments.topics import CENTRE_PUSH
from services.audit.partitions import add_months, ensure_partitions, month_start
from services.certificates.purposes import Catalogue
from services.filings.topics import BANK_NOTIFY_FILING
from services.messages.topics import SMS_SEND

PAD_ROWS = 40_000
SLOT_ROWS = 20_000  # some 60,000 seat stripes, 45,000 appointments and 20,000 waitlist entries
LOG_MONTHS = 12  # the access log's entries spread over this month and the 11 before it
_SEED = 0.15  # setseed(): the same padding on every run
# Padded slots are on the days before today (Shanghai): today's are the service's own.
_BEFORE_TODAY = "date_trunc('day', now() AT TIME ZONE 'Asia/Shanghai') AT TIME ZONE 'Asia/Shanghai'"
# The errors of a rejected filing, as validation writes them (services/filings/rules.py).
_REJECTED = {"code": "MORTGAGOR_NOT_HOLDER", "message": "须至少填写一名抵押人", "field": "mortgagors"}

# A person drawn at random from the register, per row: a row draws a number `_PICK` (1 .. the
# persons) and joins `people`, every person id numbered, on it.
_PEOPLE = "people AS MATERIALIZED (SELECT id, row_number() OVER (ORDER BY id) AS n FROM person)"
_PICK = "1 + floor(random() * (SELECT count(*) FROM person))::bigint"
# 64 hex digits, as a SHA-256 or a blind index looks.
_HEX64 = "encode(sha256(convert_to(({})::text, 'UTF8')), 'hex')"


@dataclass(frozen=True)
class PadContext:
    settings: Settings
    log_since: datetime  # the first month of padded access-log entries


PadFn = Callable[[asyncpg.Connection, int, PadContext], Awaitable[str]]


# --- the access log --------------------------------------------------------------------------------


async def pad_access_log(conn: asyncpg.Connection, rows: int, ctx: PadContext) -> str:
    """Reads by citizens of their own data (most), guardians, clerks and banks, over many persons
    and every month since `log_since`, in seq order; some about a person known only by blind index.
    Then the head moves to the last padded seq (module docstring)."""
    status = await conn.execute(
        f"""
        WITH {_PEOPLE},
        head AS (SELECT COALESCE((SELECT last_seq FROM access_log_head WHERE id = 1), 0) AS last_seq),
        e AS MATERIALIZED (
            SELECT head.last_seq + g AS seq,
                   $2::timestamptz + (now() - $2::timestamptz) * (g::float8 / ($1 + 1)) AS occurred_at,
                   p.id AS person_id, o.id AS other_id, random() AS who, random() AS what
              FROM (SELECT g, {_PICK} AS pick, {_PICK} AS other FROM generate_series(1, $1) AS g) AS d
              JOIN people p ON p.n = d.pick JOIN people o ON o.n = d.other, head
        )
        INSERT INTO access_log (seq, occurred_at, reader_subject, reader_role, reader_display,
                                person_id, person_index, action, object_type, object_id, purpose,
                                request_id, prev_hash, hash)
        SELECT seq, occurred_at,
               CASE WHEN who < 0.70 THEN 'person:' || person_id
                    WHEN who < 0.75 THEN 'person:' || other_id
                    WHEN who < 0.92 THEN 'staff:' || (1 + seq % 60)
                    ELSE 'client:bank-icbc-sh' END,
               CASE WHEN who < 0.70 THEN 'citizen' WHEN who < 0.75 THEN 'guardian'
                    WHEN who < 0.92 THEN 'clerk' ELSE 'bank' END,
               CASE WHEN who < 0.75 THEN '王*' WHEN who < 0.92 THEN '登记工作人员 李*'
                    ELSE '中国工商银行上海市分行' END,
               CASE WHEN who BETWEEN 0.92 AND 0.95 THEN NULL ELSE person_id END,
               CASE WHEN who BETWEEN 0.92 AND 0.95 THEN {_HEX64.format("'index:' || seq")} END,
               CASE WHEN what < 0.6 THEN 'property.list' ELSE 'property.detail' END,
               CASE WHEN what < 0.6 THEN 'person' ELSE 'right' END,
               CASE WHEN what < 0.6 THEN person_id::text ELSE (1 + seq % 400000)::text END,
               CASE WHEN who < 0.70 THEN 'self_query' WHEN who < 0.75 THEN 'guardian_query'
                    WHEN who < 0.92 THEN 'holder_request' ELSE 'mortgage_check' END,
               md5('request:' || seq),
               {_HEX64.format("seq - 1")}, {_HEX64.format("seq")}
          FROM e
        """,
        rows,
        ctx.log_since,
    )
    await conn.execute(
        f"""
        INSERT INTO access_log_head (id, last_seq, last_hash, updated_at)
        SELECT 1, s, {_HEX64.format("s")}, now() FROM (SELECT max(seq) AS s FROM access_log) AS last
        ON CONFLICT (id) DO UPDATE
           SET last_seq = EXCLUDED.last_seq, last_hash = EXCLUDED.last_hash, updated_at = EXCLUDED.updated_at
        """
    )
    return status


async def _past_log_months(settings: Settings, since: datetime) -> None:
    """The access log's partitions from `since`, made by the service's own code (one DDL rule)."""
    ctx = TortoiseContext()
    with ctx:
        await ctx.init(config=settings.tortoise_config())
        try:
            await ensure_partitions(
                now=datetime.now(UTC), months_ahead=settings.access_log_partitions_ahead, since=since
            )
        finally:
            await ctx.close_connections()


# --- appointments ----------------------------------------------------------------------------------


async def pad_slots(conn: asyncpg.Connection, rows: int, ctx: PadContext) -> str:
    """The latest past days' slots of every template, as the releaser makes them: the template's
    weekdays, within the office's opening hours, not on closure days (Shanghai time)."""
    return await conn.execute(
        """
        INSERT INTO slot (office_id, service, starts_at, ends_at, capacity, released_at, template_id)
        SELECT office_id, service, starts_at, starts_at + length, capacity, released_at, template_id
          FROM (
            SELECT t.office_id, t.service, t.capacity, t.id AS template_id,
                   make_interval(mins => t.duration_min) AS length,
                   local_start AT TIME ZONE 'Asia/Shanghai' AS starts_at,
                   (local_day - make_interval(days => t.release_days_ahead) + t.release_at::time::interval)
                       AT TIME ZONE 'Asia/Shanghai' AS released_at
              FROM generate_series(
                   date_trunc('day', now() AT TIME ZONE 'Asia/Shanghai') - interval '120 days',
                   date_trunc('day', now() AT TIME ZONE 'Asia/Shanghai') - interval '1 day',
                   interval '1 day') AS days (local_day)
              JOIN slot_template t
                ON t.active AND t.weekdays @> to_jsonb(extract(isodow FROM local_day)::int - 1)
              JOIN office_timetable tt ON tt.office_id = t.office_id
             CROSS JOIN LATERAL
                   jsonb_array_elements(tt.opening_hours -> lower(to_char(local_day, 'Dy'))) AS span
             CROSS JOIN LATERAL generate_series(
                   local_day + greatest((span ->> 0)::time, t.day_start::time)::interval,
                   local_day + least((span ->> 1)::time, t.day_end::time)::interval
                       - make_interval(mins => t.duration_min),
                   make_interval(mins => t.duration_min)) AS starts (local_start)
             WHERE NOT EXISTS (
                   SELECT 1 FROM office_closure c WHERE c.office_id = t.office_id AND c.day = local_day::date)
             ORDER BY local_start DESC
             LIMIT $1
          ) AS made
        ON CONFLICT (office_id, service, starts_at) DO NOTHING
        """,
        rows,
    )


async def pad_slot_stripes(conn: asyncpg.Connection, rows: int, ctx: PadContext) -> str:
    """The stripes of every past slot that has none (seats.new_stripes' split); 70% of seats taken."""
    return await conn.execute(
        f"""
        INSERT INTO slot_stripe (slot_id, stripe, capacity, booked)
        SELECT id, k, share, CASE WHEN random() < 0.7 THEN share ELSE 0 END
          FROM (
            SELECT s.id, k, s.capacity / n + CASE WHEN k < s.capacity % n THEN 1 ELSE 0 END AS share
              FROM slot s
             CROSS JOIN LATERAL (SELECT greatest(1, least(s.capacity, $1::int)) AS n) AS parts
             CROSS JOIN LATERAL generate_series(0, parts.n - 1) AS k
             WHERE s.starts_at < {_BEFORE_TODAY}
               AND NOT EXISTS (SELECT 1 FROM slot_stripe t WHERE t.slot_id = s.id)
          ) AS seats
        """,
        STRIPES,
    )


async def pad_appointments(conn: asyncpg.Connection, rows: int, ctx: PadContext) -> str:
    """One appointment per taken seat of a past slot (checked in, or a no-show), and cancelled
    ones on a quarter of the free seats; booked by persons all over the register."""
    return await conn.execute(
        f"""
        WITH {_PEOPLE},
        seats AS MATERIALIZED (
            SELECT t.id AS stripe_id, t.slot_id, t.stripe, t.booked > 0 AS taken, s.office_id,
                   s.service, s.starts_at,
                   s.starts_at - make_interval(secs => 86400 * (1 + 13 * random())) AS created_at,
                   p.id AS person_id, random() AS fate
              FROM (SELECT t.*, {_PICK} AS pick FROM slot_stripe t) AS t
              JOIN slot s ON s.id = t.slot_id JOIN people p ON p.n = t.pick
             WHERE s.starts_at < {_BEFORE_TODAY} AND (t.booked > 0 OR t.id % 4 = 0)
               AND NOT EXISTS (
                   SELECT 1 FROM appointment a WHERE a.slot_id = t.slot_id AND a.stripe = t.stripe)
        )
        INSERT INTO appointment (ref, person_id, slot_id, office_code, service, status, stripe,
                                 active_key, with_tax, centre_ref, centre_status, created_at,
                                 cancelled_at, checked_in_at)
        SELECT 'A' || to_char(created_at AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD')
                   || upper(lpad(to_hex(stripe_id), 8, '0')),
               person_id, slot_id, office_id, service,
               CASE WHEN NOT taken THEN 'cancelled' WHEN fate < 0.93 THEN 'checked_in' ELSE 'no_show' END,
               stripe, NULL, false, 'C' || stripe_id,
               CASE WHEN taken THEN 'pushed' ELSE 'cancelled' END,
               created_at,
               CASE WHEN NOT taken THEN created_at + (starts_at - created_at) * fate END,
               CASE WHEN taken AND fate < 0.93 THEN starts_at - make_interval(mins => (fate * 20)::int) END
          FROM seats
        ON CONFLICT DO NOTHING
        """
    )


async def pad_waitlist(conn: asyncpg.Connection, rows: int, ctx: PadContext) -> str:
    """Persons who waited for each full past slot (three a slot): some got a seat, most saw the
    offer expire or left."""
    return await conn.execute(
        f"""
        WITH {_PEOPLE},
        full_slots AS (
            SELECT s.id, s.service, s.starts_at FROM slot s
             WHERE s.starts_at < {_BEFORE_TODAY}
               AND EXISTS (SELECT 1 FROM slot_stripe t WHERE t.slot_id = s.id)
               AND NOT EXISTS (SELECT 1 FROM slot_stripe t WHERE t.slot_id = s.id AND t.booked < t.capacity)
               AND NOT EXISTS (SELECT 1 FROM waitlist_entry x WHERE x.slot_id = s.id)
        )
        INSERT INTO waitlist_entry (slot_id, person_id, service, status, created_at)
        SELECT f.id, p.id, f.service,
               (ARRAY['expired', 'expired', 'left', 'accepted'])[1 + ((w + f.id) % 4)::int],
               f.starts_at - make_interval(secs => 86400 * (1 + 6 * random()))
          FROM (SELECT f.*, w, {_PICK} AS pick FROM full_slots f CROSS JOIN generate_series(1, 3) AS w) AS f
          JOIN people p ON p.n = f.pick
        ON CONFLICT DO NOTHING
        """
    )


# --- certificates and messages ---------------------------------------------------------------------


async def pad_certificates(conn: asyncpg.Connection, rows: int, ctx: PadContext) -> str:
    """No-housing certificates over the past year for many persons, for every purpose of the
    catalogue with its validity; a few revoked."""
    catalogue = Catalogue.load(ctx.settings.certificates_file)
    purposes = list(catalogue.purposes.values())
    return await conn.execute(
        f"""
        WITH {_PEOPLE},
        c AS MATERIALIZED (
            SELECT g, people.id AS person_id, 1 + floor(random() * cardinality($3::text[]))::int AS p,
                   now() - make_interval(secs => 365 * 86400 * random()) AS issued_at, random() AS fate
              FROM (SELECT g, {_PICK} AS pick FROM generate_series(1, $1) AS g) AS d
              JOIN people ON people.n = d.pick
        )
        INSERT INTO certificate (serial, cert_type, purpose, household_rule, person_id, as_of, issued_at,
                                 valid_until, status, revoked_at, revoked_reason, revoked_by, kid, token)
        SELECT 'WF' || to_char(issued_at AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD')
                    || upper(lpad(to_hex(g), 10, '0')),
               $2, ($3::text[])[p], ($4::text[])[p], person_id, issued_at, issued_at,
               issued_at + make_interval(days => ($5::int[])[p]),
               CASE WHEN fate < 0.03 THEN 'revoked' ELSE 'issued' END,
               CASE WHEN fate < 0.03 THEN issued_at + interval '3 days' END,
               CASE WHEN fate < 0.03 THEN '登记取得住房' END,
               CASE WHEN fate < 0.03 THEN 'system:registration' END,
               'padding', 'padded.' || md5('certificate:' || g)
          FROM c
        ON CONFLICT DO NOTHING
        """,
        rows,
        catalogue.cert_type,
        [p.code for p in purposes],
        [p.household for p in purposes],
        [p.validity_days for p in purposes],
    )


async def pad_inbox(conn: asyncpg.Connection, rows: int, ctx: PadContext) -> str:
    """In-app messages of the past year to many persons, most of them read."""
    return await conn.execute(
        f"""
        WITH {_PEOPLE},
        m AS MATERIALIZED (
            SELECT g, people.id AS person_id,
                   (ARRAY['property_change', 'guardian_query', 'appointment', 'certificate'])[1 + g % 4]
                       AS kind,
                   now() - make_interval(secs => 365 * 86400 * random()) AS created_at, random() AS fate
              FROM (SELECT g, {_PICK} AS pick FROM generate_series(1, $1) AS g) AS d
              JOIN people ON people.n = d.pick
        )
        INSERT INTO inbox_message (person_id, kind, title, body, data, created_at, read_at)
        SELECT person_id, kind, '您的不动产登记信息有变动', '请登录查看详情。', jsonb_build_object('n', g),
               created_at, CASE WHEN fate < 0.6 THEN created_at + interval '2 hours' END
          FROM m
        """,
        rows,
    )


# --- cases and bank filings ------------------------------------------------------------------------


async def pad_case_parties(conn: asyncpg.Connection, rows: int, ctx: PadContext) -> str:
    """The parties of the loaded cases, from the holders of each case's right: buyers of an issued
    transfer, sellers of an open one, applicants of a first registration, mortgagors."""
    return await conn.execute(
        """
        INSERT INTO case_party (case_id, role, person_id, organisation_id, share, confirmed_at)
        SELECT c.id,
               CASE c.kind WHEN 'first' THEN 'applicant'
                           WHEN 'transfer' THEN CASE WHEN c.state = 'issued' THEN 'buyer' ELSE 'seller' END
                           WHEN 'mortgage' THEN 'mortgagor' WHEN 'mortgage_cancel' THEN 'mortgagor'
                           ELSE 'holder' END,
               h.person_id, h.organisation_id, h.share, c.applied_at
          FROM registration_case c JOIN right_holder h ON h.right_id = c.right_id
         WHERE NOT EXISTS (SELECT 1 FROM case_party p WHERE p.case_id = c.id)
         LIMIT $1
        ON CONFLICT DO NOTHING
        """,
        rows,
    )


async def pad_case_events(conn: asyncpg.Connection, rows: int, ctx: PadContext) -> str:
    """Each loaded case's opening (imported from the register it came from), and a clerk's move
    to the state it is in."""
    return await conn.execute(
        """
        INSERT INTO case_event (case_id, from_state, to_state, actor_kind, actor_id, reason, "at")
        SELECT c.id, e.from_state, e.to_state, e.actor_kind, e.actor_id, e.reason, e.moment
          FROM registration_case c
         CROSS JOIN LATERAL (VALUES
               (NULL, 'applied', 'system', 'system:import', NULL, c.applied_at),
               ('applied', c.state, 'staff', 'staff:' || (1 + c.id % 60), c.reason, c.updated_at)
         ) AS e (from_state, to_state, actor_kind, actor_id, reason, moment)
         WHERE (e.from_state IS NULL OR c.state <> 'applied')
           AND NOT EXISTS (SELECT 1 FROM case_event x WHERE x.case_id = c.id)
         LIMIT $1
        """,
        rows,
    )


async def pad_mortgage_filings(conn: asyncpg.Connection, rows: int, ctx: PadContext) -> str:
    """A filing for each of the latest mortgages, by the bank that holds it (any bank for a
    mortgagee that does not file); a tenth rejected, which registered nothing."""
    return await conn.execute(
        """
        WITH banks AS MATERIALIZED (SELECT array_agg(id ORDER BY id) AS ids FROM participating_bank),
        latest AS MATERIALIZED (
            SELECT m.*, r.unit_id, b.id AS bank_id, random() < 0.1 AS rejected
              FROM mortgage m JOIN "right" r ON r.id = m.right_id
              LEFT JOIN participating_bank b ON b.organisation_id = m.mortgagee_id
             WHERE NOT EXISTS (SELECT 1 FROM mortgage_filing f WHERE f.mortgage_id = m.id)
             ORDER BY m.id DESC
             LIMIT $1
        )
        INSERT INTO mortgage_filing (bank_id, type, status, unit_id, right_id, mortgage_id,
                                     contract_number, amount_fen, term_start, term_end, submitted_by,
                                     errors, warnings, priority_at, certificate_number, filed_on,
                                     created_at, updated_at)
        SELECT COALESCE(m.bank_id, banks.ids[1 + (m.id % cardinality(banks.ids))::int]), 'create',
               CASE WHEN rejected THEN 'rejected' ELSE 'registered' END,
               m.unit_id, m.right_id, CASE WHEN NOT rejected THEN m.id END,
               COALESCE(m.contract_number, 'HT-' || m.id), m.amount_fen, m.term_start, m.term_end,
               '信贷员', CASE WHEN rejected THEN $2 ELSE '[]' END::jsonb,
               '[]'::jsonb, CASE WHEN NOT rejected THEN m.registered_at END,
               CASE WHEN NOT rejected THEN m.certificate_number END,
               (m.registered_at AT TIME ZONE 'Asia/Shanghai')::date, m.registered_at, m.registered_at
          FROM latest AS m, banks
        """,
        rows,
        json.dumps([_REJECTED]),
    )


async def pad_utility_transfers(conn: asyncpg.Connection, rows: int, ctx: PadContext) -> str:
    """The utility accounts each issued transfer moved to its buyer: every kind, with the provider
    that serves the unit's district (config/providers.toml); confirmed, a few refused."""
    serving = load_providers(ctx.settings.utility_providers_file).serving()
    return await conn.execute(
        """
        WITH serving AS (SELECT * FROM unnest($2::text[], $3::text[], $4::text[]) AS s (kind, district, name))
        INSERT INTO utility_transfer (case_id, kind, provider, account_no, state, reason, idempotency_key,
                                      attempts, created_at, updated_at)
        SELECT c.id, s.kind, s.name, lpad((c.id * 7919 % 10000000000)::text, 10, '0'),
               CASE WHEN (c.id + length(s.kind)) % 50 = 0 THEN 'refused' ELSE 'confirmed' END,
               CASE WHEN (c.id + length(s.kind)) % 50 = 0 THEN '原户有欠费' END,
               'utility:' || c.case_number || ':' || s.kind, 1, c.updated_at, c.updated_at
          FROM registration_case c JOIN real_estate_unit u ON u.id = c.unit_id
          JOIN serving s ON s.district = u.district_code
         WHERE c.kind = 'transfer' AND c.state = 'issued'
           AND NOT EXISTS (SELECT 1 FROM utility_transfer x WHERE x.case_id = c.id)
         LIMIT $1
        ON CONFLICT DO NOTHING
        """,
        rows,
        [kind.value for kind, _ in serving],
        [district for _, district in serving],
        [provider.name for provider in serving.values()],
    )


# --- delivery and requests -------------------------------------------------------------------------


async def pad_outbox(conn: asyncpg.Connection, rows: int, ctx: PadContext) -> str:
    """What the padded appointments and filings sent: the centre push and the SMS of each booking,
    the bank's callback of each filing; delivered, a few dead."""
    return await conn.execute(
        """
        INSERT INTO outbox_message (topic, payload, idempotency_key, status, attempts, next_attempt_at,
                                    last_error, created_at, delivered_at)
        SELECT topic, payload, key, CASE WHEN dead THEN 'dead' ELSE 'delivered' END,
               CASE WHEN dead THEN 8 ELSE 1 END,
               created_at, CASE WHEN dead THEN 'timeout' END, created_at,
               CASE WHEN NOT dead THEN created_at + interval '2 seconds' END
          FROM (
            SELECT *, random() < 0.03 AS dead FROM (
                SELECT $2::text AS topic, jsonb_build_object('ref', a.ref) AS payload,
                       'centre.push:' || a.ref AS key, a.created_at FROM appointment a
                UNION ALL
                SELECT $3::text, jsonb_build_object('template', 'appointment_booked'),
                       'sms.appointment_booked:' || a.ref, a.created_at FROM appointment a
                UNION ALL
                SELECT $4::text, jsonb_build_object('filing_id', f.id, 'status', f.status),
                       'bank-filing:MF-' || f.id || ':' || f.status, f.created_at FROM mortgage_filing f
            ) AS made
             ORDER BY created_at DESC
             LIMIT $1
          ) AS sent
        ON CONFLICT DO NOTHING
        """,
        rows,
        CENTRE_PUSH.name,
        SMS_SEND.name,
        BANK_NOTIFY_FILING.name,
    )


async def pad_idempotency(conn: asyncpg.Connection, rows: int, ctx: PadContext) -> str:
    """The last day's answered requests with an Idempotency-Key, of banks' clients and persons."""
    return await conn.execute(
        f"""
        WITH {_PEOPLE},
        clients AS MATERIALIZED (SELECT array_agg(client_id ORDER BY id) AS ids FROM api_client),
        r AS MATERIALIZED (
            SELECT g, CASE WHEN g % 3 = 0 THEN 'person:' || people.id
                           ELSE 'client:' || clients.ids[1 + g % cardinality(clients.ids)] END AS scope,
                   now() - make_interval(secs => 86400 * random()) AS created_at
              FROM (SELECT g, {_PICK} AS pick FROM generate_series(1, $1) AS g) AS d
              JOIN people ON people.n = d.pick, clients
        )
        INSERT INTO idempotency_record (scope, key, fingerprint, status, response_status, created_at,
                                        expires_at)
        SELECT scope, md5('key:' || g), {_HEX64.format("'request:' || g")}, 'done', 201, created_at,
               created_at + interval '1 day'
          FROM r
        ON CONFLICT DO NOTHING
        """,
        rows,
    )


# (table, rows it needs, how), in order: rows are made from the rows they refer to. A table that
# holds its rows already is skipped. None: made for every past slot that has none (stripes, their
# appointments, a full slot's waitlist), so always run, and a second run adds nothing.
PADDINGS: tuple[tuple[str, int | None, PadFn], ...] = (
    ("access_log", PAD_ROWS, pad_access_log),
    ("slot", SLOT_ROWS, pad_slots),
    ("slot_stripe", None, pad_slot_stripes),
    ("appointment", None, pad_appointments),
    ("waitlist_entry", None, pad_waitlist),
    ("certificate", PAD_ROWS, pad_certificates),
    ("inbox_message", PAD_ROWS, pad_inbox),
    ("case_party", PAD_ROWS, pad_case_parties),
    ("case_event", PAD_ROWS, pad_case_events),
    ("utility_transfer", PAD_ROWS, pad_utility_transfers),
    ("mortgage_filing", PAD_ROWS, pad_mortgage_filings),
    ("outbox_message", PAD_ROWS, pad_outbox),
    ("idempotency_record", PAD_ROWS, pad_idempotency),
)

_INSERTED = re.compile(r"^INSERT \d+ (\d+)$")


@dataclass
class PaddingReport:
    added: dict[str, int] = field(default_factory=dict)  # table -> rows inserted now (0: had enough)
    table_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0  # in all, with ANALYZE


async def pad_register(settings: Settings, dsn: str) -> PaddingReport:
    """Pad every table of `PADDINGS` that holds fewer rows than its target, then ANALYZE them."""
    started = time.perf_counter()
    since = add_months(month_start(datetime.now(UTC)), 1 - LOG_MONTHS)
    await _past_log_months(settings, since)
    ctx = PadContext(settings=settings, log_since=since)
    report = PaddingReport()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"SELECT setseed({_SEED})")
        for table, target, pad in PADDINGS:
            if target is not None and await conn.fetchval(f'SELECT count(*) FROM "{table}"') >= target:
                report.added[table] = 0
                continue
            began = time.perf_counter()
            async with conn.transaction():
                status = await pad(conn, target or 0, ctx)
            report.table_seconds[table] = round(time.perf_counter() - began, 1)
            found = _INSERTED.match(status)
            report.added[table] = int(found[1]) if found else 0
        for table, _, _ in PADDINGS:
            await conn.execute(f'ANALYZE "{table}"')
    finally:
        await conn.close()
    report.seconds = time.perf_counter() - started
    return report
