"""Small register against city-sized register: `python -m bench compare SMALL.json CITY.json [--out FILE]`.

Both files are `register-reads` results (bench/register_reads.py), each with its own ceiling run.
Targets (issue 15, docs/scale.md): on one worker, throughput at city scale at least 0.9 of the small
register's and p99 at most 1.2 times, per endpoint; the API worker's peak RSS under 150 MiB. The
throughput is compared both raw and as a share of each run's own framework ceiling (the same
machine may be slower or faster from one run to the next; the ceiling shows by how much).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

THROUGHPUT_AT_LEAST = 0.9
P99_AT_MOST = 1.2
RSS_MIB_UNDER = 150.0
CEILING = "GET /ceiling/db"


def _ceiling_share(report: dict[str, Any], run: dict[str, Any]) -> float | None:
    top = report.get("ceiling", {}).get("runs", {}).get(CEILING, {}).get("throughput_rps")
    return round(run["throughput_rps"] / top, 3) if top else None


def _figures(run: dict[str, Any], ceiling_share: float | None) -> dict[str, Any]:
    return {"rps": run["throughput_rps"], "p99_ms": run["latency_ms"]["p99"], "ceiling_share": ceiling_share}


def compare(small: dict[str, Any], city: dict[str, Any]) -> dict[str, Any]:
    endpoints: dict[str, Any] = {}
    for name, s in small["scenario_result"]["runs"].items():
        c = city["scenario_result"]["runs"].get(name)
        if c is None:
            continue
        throughput = round(c["throughput_rps"] / s["throughput_rps"], 3)
        p99 = round(c["latency_ms"]["p99"] / s["latency_ms"]["p99"], 3)
        share_small, share_city = _ceiling_share(small, s), _ceiling_share(city, c)
        endpoints[name] = {
            "small": _figures(s, share_small),
            "city": _figures(c, share_city),
            "throughput_ratio": throughput,
            "throughput_ratio_of_ceiling_shares": round(share_city / share_small, 3)
            if share_small and share_city
            else None,
            "p99_ratio": p99,
            "errors": {"small": s["errors"], "city": c["errors"]},
            "rss_mib_peak_city": c["server"].get("rss_mib_peak"),
            "met": {
                "throughput": throughput >= THROUGHPUT_AT_LEAST,
                "p99": p99 <= P99_AT_MOST,
                "rss": (c["server"].get("rss_mib_peak") or 0) < RSS_MIB_UNDER,
                "no_errors": s["errors"] == 0 and c["errors"] == 0,
            },
        }
    return {
        "kind": "register-scale-comparison",
        "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "targets": {
            "throughput_ratio_at_least": THROUGHPUT_AT_LEAST,
            "p99_ratio_at_most": P99_AT_MOST,
            "rss_mib_under": RSS_MIB_UNDER,
        },
        "registers": {
            "small": small["scenario_result"]["setup"]["persons_in_register"],
            "city": city["scenario_result"]["setup"]["persons_in_register"],
        },
        "endpoints": endpoints,
        "all_met": all(all(e["met"].values()) for e in endpoints.values()) and bool(endpoints),
    }


def run(small_path: Path, city_path: Path, out: Path | None) -> int:
    small = json.loads(small_path.read_text(encoding="utf-8"))
    city = json.loads(city_path.read_text(encoding="utf-8"))
    result = {"small_file": str(small_path), "city_file": str(city_path), **compare(small, city)}
    target = out or small_path.parent / f"register-scale-comparison-{dt.date.today().isoformat()}.json"
    target.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"registers: {result['registers']['small']:,} persons vs {result['registers']['city']:,}")
    for name, e in result["endpoints"].items():
        print(
            f"{name}: {e['small']['rps']} -> {e['city']['rps']} req/s (x{e['throughput_ratio']}), "
            f"p99 {e['small']['p99_ms']} -> {e['city']['p99_ms']} ms (x{e['p99_ratio']}), "
            f"RSS {e['rss_mib_peak_city']} MiB, met: {e['met']}"
        )
    print(f"all targets met: {result['all_met']}\n[bench] comparison written to {target}")
    return 0 if result["all_met"] else 1
