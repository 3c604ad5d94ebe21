"""`python -m bench run --scenario signin-me [--base-url URL] [--connections 64] [--duration 20] [--out FILE]`
`python -m bench cpu --scenario certificates [--iterations 300] [--duration 3] [--out FILE]`
`python -m bench compare --small S.json [...] --city C.json [...] [--out FILE]` (docs/scale.md)

Runs a named scenario against a server that is already running (`python3 dev.py demo`), and by
default the framework ceiling (`ceiling`) in the same run, then writes one JSON file with
throughput, latency percentiles, errors, and the server's memory and CPU, plus the ratio of the
scenario's throughput to the ceiling's. `cpu` measures code in this process, no server
(bench/cpu.py), and writes bench/results/<scenario>-cpu-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.cpu import CPU_SCENARIOS, CpuOptions
from bench.load import require_loopback
from bench.scenarios import ROOT, SCENARIOS, Options

DEFAULT_DATABASE_URL = "sqlite://var/estate.sqlite3"  # the embedded default (config/settings.py)
DEMO_SMS_URL = "http://127.0.0.1:8816"  # demo simulators: base port 8810, SMS gateway = base + 6


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the scenarios")
    run = sub.add_parser("run", help="run a scenario against a running server")
    run.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    run.add_argument("--base-url", default="http://127.0.0.1:8000")
    run.add_argument("--connections", type=int, default=64)
    run.add_argument("--duration", type=float, default=20.0, help="seconds measured per endpoint")
    run.add_argument("--warmup", type=float, default=2.0, help="seconds before each measurement, not counted")
    run.add_argument("--max-requests", type=int, default=2_000_000, help="upper bound per endpoint")
    run.add_argument("--users", type=int, default=16, help="citizens signed in (signin-me)")
    run.add_argument("--phones-file", type=Path, help="phones to sign in: one per line, or a JSON list")
    run.add_argument("--sms-url", default=DEMO_SMS_URL, help="SMS simulator (its /messages inbox)")
    run.add_argument("--server-pid", type=int, help="the server's pid (default: found by its port)")
    run.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
        help="the API's database: demo phones, and the ceiling app's SELECT",
    )
    run.add_argument("--no-ceiling", action="store_true", help="skip the framework ceiling")
    run.add_argument("--ceiling-port", type=int, default=0)
    run.add_argument("--out", type=Path, help="default: bench/results/<scenario>-<date>.json")
    cmp = sub.add_parser("compare", help="register-reads on the small against the city register")
    cmp.add_argument("--small", type=Path, nargs="+", required=True, help="runs on the small register")
    cmp.add_argument("--city", type=Path, nargs="+", required=True, help="runs on the city register")
    cmp.add_argument("--out", type=Path, help="default: bench/results/register-scale-comparison-<date>.json")
    cpu = sub.add_parser("cpu", help="measure CPU time in this process (no server)")
    cpu.add_argument("--scenario", required=True, choices=sorted(CPU_SCENARIOS))
    cpu.add_argument("--iterations", type=int, default=300, help="operations timed per measurement")
    cpu.add_argument("--warmup", type=int, default=30, help="operations before each measurement")
    cpu.add_argument("--duration", type=float, default=3.0, help="CPU seconds per throughput loop")
    cpu.add_argument("--out", type=Path, help="default: bench/results/<scenario>-cpu-<date>.json")
    return parser.parse_args(argv)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _throughput(section: dict[str, Any], key: str) -> float | None:
    run = section.get("runs", {}).get(key)
    return run["throughput_rps"] if run else None


def _ratios(report: dict[str, Any]) -> dict[str, float]:
    ceiling = report.get("ceiling")
    if not ceiling:
        return {}
    ratios = {}
    for name, run in report["scenario_result"]["runs"].items():
        for key in ("GET /ceiling/json", "GET /ceiling/db"):
            top = _throughput(ceiling, key)
            if top:
                ratios[f"{name} / {key}"] = round(run["throughput_rps"] / top, 3)
    return ratios


def _print_table(report: dict[str, Any]) -> None:
    sections = [report["scenario_result"]] + ([report["ceiling"]] if report.get("ceiling") else [])
    print(
        f"\n{'endpoint':<24}{'req/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}{'RSS MiB':>9}"
    )
    for section in sections:
        for name, run in section["runs"].items():
            lat, server = run["latency_ms"], run["server"]
            print(
                f"{name:<24}{run['throughput_rps']:>10}{lat['p50']:>9}{lat['p95']:>9}{lat['p99']:>9}"
                f"{run['errors']:>8}{server.get('rss_mib_peak', '-'):>9}"
            )
    for name, ratio in report.get("ratios", {}).items():
        print(f"ratio {name}: {ratio}")
    timing = report["scenario_result"].get("timing")
    if timing:
        for kind in ("registered", "unregistered"):
            t = timing[kind]
            print(f"{kind:<14} n={t['n']} median {t['median_ms']} ms, p10 {t['p10_ms']}, p90 {t['p90_ms']}")
        print(f"median ratio {timing['median_ratio']} (target <= {timing['target_ratio_at_most']}): "
              f"{'met' if timing['met'] else 'NOT met'}")


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    base_url = args.base_url.rstrip("/")
    require_loopback(base_url)
    require_loopback(args.sms_url)
    opts = Options(
        base_url=base_url,
        connections=args.connections,
        duration_s=args.duration,
        warmup_s=args.warmup,
        max_requests=args.max_requests,
        users=args.users,
        phones_file=args.phones_file,
        sms_url=args.sms_url.rstrip("/"),
        server_pid=args.server_pid,
        database_url=args.database_url,
        ceiling_port=args.ceiling_port,
    )
    started = dt.datetime.now(dt.UTC)
    report: dict[str, Any] = {
        "scenario": args.scenario,
        "started_at": started.isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "note": "client and servers share this machine's CPUs; other load shows in loadavg",
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "parameters": {
            "base_url": base_url,
            "connections": opts.connections,
            "duration_s": opts.duration_s,
            "warmup_s": opts.warmup_s,
            "max_requests": opts.max_requests,
            "database_url": opts.database_url,
        },
    }
    report["scenario_result"] = await SCENARIOS[args.scenario](opts)
    if args.scenario != "ceiling" and not args.no_ceiling:
        report["ceiling"] = await SCENARIOS["ceiling"](opts)
    report["ratios"] = _ratios(report)
    report["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    report["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


def _write(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(out)


def _cpu(args: argparse.Namespace) -> int:
    started = dt.datetime.now(dt.UTC)
    opts = CpuOptions(iterations=args.iterations, duration_s=args.duration, warmup=args.warmup)
    report: dict[str, Any] = {
        "scenario": args.scenario,
        "kind": "cpu",
        "started_at": started.isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "note": "time.process_time of this process on one core; other load shows in loadavg",
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "parameters": vars(opts),
    }
    report["scenario_result"] = CPU_SCENARIOS[args.scenario](opts)
    report["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    report["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    name = f"{args.scenario}-cpu-{dt.date.today().isoformat()}.json"
    out: Path = args.out or ROOT / "bench" / "results" / name
    _write(report, out)
    print(json.dumps(report["scenario_result"], indent=2, ensure_ascii=False))
    print(f"\n[bench] results written to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    if args.command == "list":
        for name, scenario in sorted(SCENARIOS.items()):
            print(f"{name:<12} {(scenario.__doc__ or '').strip().splitlines()[0]}")
        for name, cpu_scenario in sorted(CPU_SCENARIOS.items()):
            print(f"{name:<12} (cpu) {(cpu_scenario.__doc__ or '').strip().splitlines()[0]}")
        return 0
    if args.command == "cpu":
        return _cpu(args)
    if args.command == "compare":
        from bench.compare import run as compare

        return compare(args.small, args.city, args.out)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    report = asyncio.run(_run(args))
    out: Path = args.out or ROOT / "bench" / "results" / f"{args.scenario}-{dt.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(out)
    _print_table(report)
    print(f"\n[bench] results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
