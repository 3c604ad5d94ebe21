"""Command line: `python -m api <command>`.

serve [--demo]           run the API (the embedded default with --demo: demo data, simulators)
migrate                  apply the database migrations
seed [--persons N ...]   load the deterministic demo data
seed-city --persons N --units N --rights N [--seed S] [--no-progress] [--report FILE]
                         bulk-load the city-sized register into PostgreSQL (docs/scale.md)
worker [--handlers M:F] [--once] [--worker-id ID] [--lease-s S] ...
                         run an outbox worker process (docs/outbox.md)
outbox stats|redrive|purge  operate the outbox
idempotency purge        delete expired Idempotency-Key records (run it daily, e.g. from cron)
audit verify [--full] [--checkpoint FILE]
                         check the access log's hash chain (exit 1 if it was tampered with)
audit checkpoint [--publish FILE]  sign the verified head of the access log
audit retain [--dry-run] drop access-log months past the retention (PostgreSQL)
pii reencrypt            seal all personal data with the current key (resumable; docs/decisions/0006)
crypto switch-profile P  convert the database to profile P (service stopped; resumable)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from functools import partial
from pathlib import Path
from typing import Any

from sanic import Sanic
from sanic.worker.loader import AppLoader

from api.container import certificate_keyring
from api.observability import configure_logging
from certificates.keys import CertificateKeyring
from config.settings import Profile, Settings, load_settings
from services.identity.install_keys import with_install_secrets
from standards.crypto_profile import signature_algorithm

log = logging.getLogger("estate.cli")


def _serve(settings: Settings, *, demo: bool) -> None:
    from api.app import create_app

    loader = AppLoader(factory=partial(create_app, settings))
    app = loader.load()
    if demo:

        @app.after_server_start
        async def announce(app: Sanic, *_: Any) -> None:
            services = app.ctx.services
            lines = ["", "=" * 72, "不动产一网通办 demo is running", f"Base URL:  {settings.base_url}"]
            lines.append(f"API docs:  {settings.base_url}/docs")
            if services.simulators is not None:
                lines.append(f"SMS inbox: {services.settings.sms_gateway_url}/messages?phone=<phone>")
            if services.demo is not None:
                lines.append(services.demo.as_text())
            lines.append("=" * 72)
            print("\n".join(lines), flush=True)

    single = settings.workers == 1
    app.prepare(
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        single_process=single,
        backlog=settings.listen_backlog,
        access_log=False,
        motd=False,
    )
    if single:
        Sanic.serve_single(primary=app)
    else:
        Sanic.serve(primary=app, app_loader=loader)


async def _migrate(settings: Settings) -> None:
    from services.db import apply_migrations
    from services.pii import PiiVault

    await apply_migrations(settings.tortoise_config(), vault=PiiVault.from_settings(settings))
    print("migrations applied")


async def _seed(settings: Settings) -> None:
    from api.container import load_demo, start_services, stop_services

    services = await start_services(settings.model_copy(update={"load_demo_data": False}), migrate=True)
    try:
        await load_demo(services)
        print(services.demo.as_text())
    finally:
        await stop_services(services)


async def _seed_city(settings: Settings, args: argparse.Namespace) -> int:
    from demo.city import CityLoadRefused, seed_city

    try:
        report = await seed_city(
            settings,
            persons=args.persons,
            units=args.units,
            rights=args.rights,
            seed=args.seed,
            progress=not args.no_progress,
        )
    except (CityLoadRefused, ValueError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print("city register " + ("loaded" if report.loaded else "already there: nothing written"))
    for table, n in report.rows_in_tables.items():
        print(f"  {table:<20} {n:>12,} rows ({report.rows_loaded[table]:,} loaded now)")
    for phase, seconds in report.seconds.items():
        print(f"  {phase:<20} {seconds:>10.1f} s")
    print(f"  {'total':<20} {report.total_seconds:>10.1f} s")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report.as_dict(), indent=2) + "\n", encoding="utf-8")
        print(f"report written to {args.report}")
    return 0


async def _worker(settings: Settings, args: argparse.Namespace) -> None:
    """Deliver until SIGTERM or SIGINT (in-flight deliveries finish, exit 0), or with --once
    until nothing is due. Migrations are not applied here."""
    from api.container import start_services, stop_services
    from api.worker import WorkerOptions, deliver_until_stopped, make_worker, run_custom_worker

    options = WorkerOptions(
        worker_id=args.worker_id,
        lease_s=args.lease_s,
        poll_interval_s=args.poll_s,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        max_attempts=args.max_attempts,
        backoff_base_s=args.backoff_base_s,
        backoff_cap_s=args.backoff_cap_s,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if args.handlers:
        processed = await run_custom_worker(settings, args.handlers, stop, once=args.once, options=options)
    else:
        services = await start_services(settings.model_copy(update={"load_demo_data": False}), migrate=False)
        try:
            worker = make_worker(
                services.settings, services.outbox_handlers, clock=services.clock, options=options
            )
            processed = await deliver_until_stopped(worker, stop, once=args.once)
        finally:
            await stop_services(services)
    if args.once:
        print(json.dumps({"processed": processed}), flush=True)


async def _outbox(settings: Settings, args: argparse.Namespace) -> None:
    from services.clock import SystemClock
    from services.db import close_database, open_database
    from services.outbox import store as outbox

    ctx = await open_database(settings.tortoise_config())
    try:
        if args.outbox_command == "redrive":
            if not (args.id or args.topic or args.all):
                raise SystemExit("say which dead messages: --id N (repeatable), --topic T or --all")
            count = await outbox.redrive(ids=args.id or None, topic=args.topic)
            print(f"re-driven: {count}")
        elif args.outbox_command == "purge":
            days = (
                args.older_than_days if args.older_than_days is not None else settings.outbox_retention_days
            )
            if days is None:
                raise SystemExit(
                    "retention is off (ESTATE_OUTBOX_RETENTION_DAYS unset): pass --older-than-days"
                )
            try:
                count = await outbox.purge_delivered(older_than_days=days, clock=SystemClock())
            except ValueError as exc:
                raise SystemExit(str(exc)) from None
            print(f"purged: {count} delivered message(s) older than {days:g} days")
        else:
            print(json.dumps(await outbox.outbox_stats(), ensure_ascii=False, default=str, indent=2))
    finally:
        await close_database(ctx)


async def _idempotency_purge(settings: Settings) -> None:
    from services.clock import SystemClock
    from services.db import close_database, open_database
    from services.idempotency import IdempotencyStore

    ctx = await open_database(settings.tortoise_config())
    try:
        count = await IdempotencyStore(SystemClock(), settings.idempotency_ttl_s).purge_expired()
    finally:
        await close_database(ctx)
    print(f"purged: {count} expired Idempotency-Key record(s)")


async def _audit(settings: Settings, args: argparse.Namespace) -> int:
    """`audit verify|checkpoint|retain` (docs/decisions/0007): exit 1 if the log or a checkpoint
    does not verify, 2 if the command cannot run here (no key, SQLite for retention)."""
    from api.container import audit_checkpoint_keys
    from services.audit.checkpoints import (
        CheckpointError,
        last_published,
        latest_trusted_seq,
        publish,
        take_checkpoint,
        verify_log,
    )
    from services.audit.partitions import (
        PartitionsBusy,
        RetentionUnavailable,
        drop_expired_partitions,
        ensure_partitions,
    )
    from services.clock import SystemClock
    from services.db import close_database, open_database

    command, clock = args.audit_command, SystemClock()
    try:
        keys = audit_checkpoint_keys(settings, for_signing=command == "checkpoint")
        published = last_published(args.checkpoint) if command == "verify" and args.checkpoint else None
    except CheckpointError as exc:
        print(str(exc), file=sys.stderr)
        return 1 if command == "verify" else 2
    ctx = await open_database(settings.tortoise_config())
    try:
        try:
            await ensure_partitions(now=clock.now(), months_ahead=settings.access_log_partitions_ahead)
        except PartitionsBusy as exc:
            print(f"warning: {exc}", file=sys.stderr)
        if command == "retain":
            try:
                retained = await drop_expired_partitions(
                    now=clock.now(),
                    retention_months=settings.access_log_retention_months,
                    checkpoint_seq=await latest_trusted_seq(keys),
                    dry_run=args.dry_run,
                )
            except RetentionUnavailable as exc:
                print(str(exc), file=sys.stderr)
                return 2
            except (CheckpointError, PartitionsBusy) as exc:
                print(f"nothing dropped: {exc}", file=sys.stderr)
                return 1
            print(json.dumps(retained.as_dict(), ensure_ascii=False, indent=2))
            verb = "would drop" if args.dry_run else "dropped"
            names = ", ".join(p.name for p in retained.dropped) or "nothing"
            print(f"{verb}: {names}", file=sys.stderr)
            return 0
        if command == "checkpoint":
            try:
                chain, checkpoint = await take_checkpoint(keys=keys, clock=clock)
            except CheckpointError as exc:
                print(str(exc), file=sys.stderr)
                return 2
            if checkpoint is None:
                print(json.dumps(chain.as_dict(), ensure_ascii=False, indent=2))
                print(f"no checkpoint: {_chain_problem(chain)}", file=sys.stderr)
                return 1
            if args.publish:
                publish(args.publish, checkpoint)
            print(json.dumps(checkpoint.as_dict(), ensure_ascii=False, indent=2))
            return 0
        report = await verify_log(keys=keys, full=args.full, published=published)
    finally:
        await close_database(ctx)
    print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    if not report.ok:
        print(f"access log tampered: {_chain_problem(report)}", file=sys.stderr)
    return 0 if report.ok else 1


def _chain_problem(report: Any) -> str:
    text = f"first bad entry {report.first_bad_seq} ({report.problem})"
    return f"{text}: {report.detail}" if report.detail else text


def _progress_line(phase: str, done: int, total: int) -> None:
    """A progress line on stderr, rewritten in place (no dependency for a bar)."""
    width = 30
    filled = width * done // total if total else width
    end = "\n" if done >= total else ""
    print(
        f"\r{phase:<20} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}",
        end=end,
        file=sys.stderr,
        flush=True,
    )


async def _crypto(settings: Settings, args: argparse.Namespace) -> int:
    from services.clock import SystemClock
    from services.crypto.switch import CryptoProfileMismatch, SwitchRefused, reencrypt_all, switch_profile
    from services.db import close_database, open_database
    from services.pii import PiiVault

    ctx = await open_database(settings.tortoise_config())
    try:
        if args.command == "pii":
            vault = PiiVault.from_settings(settings)
            report = await reencrypt_all(vault=vault, batch_size=args.batch_size, progress=_progress_line)
        else:
            vault = PiiVault.from_settings(settings, profile=args.profile)
            report = await switch_profile(
                vault=vault, now=SystemClock().now, batch_size=args.batch_size, progress=_progress_line
            )
    except (CryptoProfileMismatch, SwitchRefused) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    finally:
        await close_database(ctx)
    print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    if args.command == "crypto" and args.profile != settings.crypto_profile:
        print(f"start the service with ESTATE_CRYPTO_PROFILE={args.profile}", file=sys.stderr)
    return 0 if report.complete else 1


def _certificate_keys(settings: Settings, command: str) -> int:
    directory = settings.certificate_keys_dir or settings.key_dir / "certificates"
    if command == "rotate":
        if settings.profile is Profile.PRODUCTION and settings.certificate_keys_dir is not None:
            # refuses a broken directory before adding to it; its current key may be of either algorithm
            CertificateKeyring.load(directory)
        else:
            certificate_keyring(settings)
        kid = CertificateKeyring.rotate(directory, signature_algorithm(settings.crypto_profile))
        print(f"new current certificate key {kid} in {directory}; restart the service to sign with it")
    print(json.dumps(certificate_keyring(settings).jwks(), indent=2))
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m api")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("--demo", action="store_true", help="embedded default with demo data and simulators")
    sub.add_parser("migrate")
    seed = sub.add_parser("seed")
    seed.add_argument("--persons", type=int)
    seed.add_argument("--units", type=int)
    city = sub.add_parser("seed-city", help="bulk-load the city-sized register (PostgreSQL; docs/scale.md)")
    city.add_argument("--persons", type=int, required=True)
    city.add_argument("--units", type=int, required=True)
    city.add_argument("--rights", type=int, required=True, help="units <= rights <= 2 * units")
    city.add_argument("--seed", type=int, default=1)
    city.add_argument("--no-progress", action="store_true", help="no progress bars")
    city.add_argument("--report", type=Path, help="also write the report (counts, seconds) as JSON")
    worker = sub.add_parser("worker", help="deliver outbox messages until stopped")
    worker.add_argument("--database-url", help="default: the settings' DATABASE_URL")
    worker.add_argument(
        "--handlers", metavar="MODULE:FUNCTION", help="another handler table (default: the application's)"
    )
    worker.add_argument("--once", action="store_true", help="deliver what is due now, then exit")
    worker.add_argument("--worker-id", help="default: host-pid")
    worker.add_argument("--lease-s", type=float)
    worker.add_argument("--poll-s", type=float)
    worker.add_argument("--batch-size", type=int)
    worker.add_argument("--concurrency", type=int)
    worker.add_argument("--max-attempts", type=int)
    worker.add_argument("--backoff-base-s", type=float)
    worker.add_argument("--backoff-cap-s", type=float)
    ob = sub.add_parser("outbox")
    ob.add_argument("--database-url", help="default: the settings' DATABASE_URL")
    ob_sub = ob.add_subparsers(dest="outbox_command", required=True)
    redrive = ob_sub.add_parser("redrive", help="send dead messages again")
    redrive.add_argument("--id", type=int, action="append", help="a dead message id (repeatable)")
    redrive.add_argument("--topic")
    redrive.add_argument("--all", action="store_true", help="every dead message")
    ob_sub.add_parser("stats", help="counts by status and topic, oldest pending age")
    purge = ob_sub.add_parser("purge", help="delete delivered messages past the retention")
    purge.add_argument("--older-than-days", type=float, help="default: ESTATE_OUTBOX_RETENTION_DAYS")
    idem = sub.add_parser("idempotency", help="the inbound Idempotency-Key store (docs/security.md)")
    idem.add_argument("--database-url", help="default: the settings' DATABASE_URL")
    idem.add_subparsers(dest="idempotency_command", required=True).add_parser(
        "purge", help="delete records past their expiry (begin() already ignores them)"
    )
    au = sub.add_parser("audit", help="the access log (docs/decisions/0004, 0007)")
    au_sub = au.add_subparsers(dest="audit_command", required=True)
    verify = au_sub.add_parser("verify", help="check the hash chain from the latest trusted checkpoint")
    verify.add_argument("--full", action="store_true", help="from the first entry kept, not the checkpoint")
    verify.add_argument("--checkpoint", type=Path, help="trust the last checkpoint published in FILE")
    checkpoint = au_sub.add_parser("checkpoint", help="verify, then sign and store the head")
    checkpoint.add_argument("--publish", type=Path, metavar="FILE", help="also append it to FILE")
    retain = au_sub.add_parser("retain", help="drop months past the retention that a checkpoint covers")
    retain.add_argument("--dry-run", action="store_true", help="say what would be dropped")
    pii = sub.add_parser("pii", help="personal data at rest (docs/decisions/0002, 0006)")
    reenc = pii.add_subparsers(dest="pii_command", required=True).add_parser(
        "reencrypt", help="seal every encrypted column with the current key (resumable)"
    )
    reenc.add_argument("--batch-size", type=int, default=500)
    cr = sub.add_parser("crypto", help="the database's cryptography profile (docs/decisions/0006)")
    switch = cr.add_subparsers(dest="crypto_command", required=True).add_parser(
        "switch-profile", help="re-encrypt, recompute blind indexes, move the access log's hash"
    )
    switch.add_argument("profile", choices=["international", "national"])
    switch.add_argument("--batch-size", type=int, default=500)
    ck = sub.add_parser("certificate-keys", help="the certificate signing keys (docs/certificates.md)")
    ck_sub = ck.add_subparsers(dest="keys_command", required=True)
    ck_sub.add_parser("rotate", help="make a new current key; older ones keep verifying (restart after)")
    ck_sub.add_parser("list", help="print the published JWK Set")
    args = parser.parse_args(argv)

    overrides: dict[str, Any] = {}
    if args.command == "serve" and args.demo:
        overrides.update(load_demo_data=True)
        if "ESTATE_SIMULATOR_BASE_PORT" not in os.environ:
            overrides["simulator_base_port"] = 8810
    if args.command in ("worker", "outbox", "idempotency") and args.database_url:
        overrides["database_url"] = args.database_url
    if args.command == "seed":
        overrides.update({k: v for k, v in (("demo_persons", args.persons), ("demo_units", args.units)) if v})
    settings = with_install_secrets(load_settings(**overrides))
    configure_logging(settings.log_level, json_logs=settings.log_json)

    if args.command == "serve":
        _serve(settings, demo=args.demo)
    elif args.command == "migrate":
        asyncio.run(_migrate(settings))
    elif args.command == "seed":
        asyncio.run(_seed(settings))
    elif args.command == "seed-city":
        sys.exit(asyncio.run(_seed_city(settings, args)))
    elif args.command == "worker":
        asyncio.run(_worker(settings, args))
    elif args.command == "outbox":
        asyncio.run(_outbox(settings, args))
    elif args.command == "idempotency":
        asyncio.run(_idempotency_purge(settings))
    elif args.command == "audit":
        sys.exit(asyncio.run(_audit(settings, args)))
    elif args.command in ("pii", "crypto"):
        sys.exit(asyncio.run(_crypto(settings, args)))
    elif args.command == "certificate-keys":
        sys.exit(_certificate_keys(settings, args.keys_command))
    else:  # pragma: no cover - argparse rejects unknown commands
        parser.error(f"unknown command {args.command}")
    sys.exit(0)


if __name__ == "__main__":
    main()
