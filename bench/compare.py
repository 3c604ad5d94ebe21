"""Small register against city-sized register:
`python -m bench compare --small S1.json [S2.json ...] --city C1.json [C2.json ...] [--out FILE]`.

The files are `register-reads` results (bench/register_reads.py), each with its own ceiling run.
With several runs per side (run them alternately, small and city, so a slow minute of the shared
machine does not fall on one side only), each figure is the median of the side's runs.
Targets (issue 15, docs/scale.md): on one worker, throughput at city scale at least 0.9 of the small
register's and p99 at most 1.2 times, per endpoint; the API worker's peak RSS under 150 MiB. The
throughput is compared both raw and as a share of each run's own framework ceiling (the same
machine may be slower or faster from one run to the next; the ceiling shows by how much).
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from pathlib import Path
from typing import Any

THROUGHPUT_AT_LEAST = 0.9
P99_AT_MOST = 1.2
RSS_MIB_UNDER = 150.0
CEILING = "GET /ceiling/db"


def _side(reports: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The median figures of one endpoint over one side's runs (None when a run lacks it)."""
    runs = [(r, r["scenario_result"]["runs"].get(name)) for r in reports]
    if any(run is None for _, run in runs):
        return None
    tops = [r.get("ceiling", {}).get("runs", {}).get(CEILING, {}).get("throughput_rps") for r, _ in runs]
    shares = [run["throughput_rps"] / top for (_, run), top in zip(runs, tops, strict=True) if run and top]
    return {
        "runs": len(runs),
        "rps": round(statistics.median(run["throughput_rps"] for _, run in runs if run), 1),
        "p99_ms": round(statistics.median(run["latency_ms"]["p99"] for _, run in runs if run), 3),
        "ceiling_share": round(statistics.median(shares), 3) if len(shares) == len(runs) else None,
        "errors": sum(run["errors"] for _, run in runs if run),
        "rss_mib_peak": max(run["server"].get("rss_mib_peak") or 0 for _, run in runs if run),
    }


def compare(small: list[dict[str, Any]], city: list[dict[str, Any]]) -> dict[str, Any]:
    endpoints: dict[str, Any] = {}
    for name in small[0]["scenario_result"]["runs"]:
        s, c = _side(small, name), _side(city, name)
        if s is None or c is None:
            continue
        throughput = round(c["rps"] / s["rps"], 3)
        p99 = round(c["p99_ms"] / s["p99_ms"], 3)
        endpoints[name] = {
            "small": s,
            "city": c,
            "throughput_ratio": throughput,
            "throughput_ratio_of_ceiling_shares": round(c["ceiling_share"] / s["ceiling_share"], 3)
            if s["ceiling_share"] and c["ceiling_share"]
            else None,
            "p99_ratio": p99,
            "met": {
                "throughput": throughput >= THROUGHPUT_AT_LEAST,
                "p99": p99 <= P99_AT_MOST,
                "rss": max(s["rss_mib_peak"], c["rss_mib_peak"]) < RSS_MIB_UNDER,
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
            "small": small[0]["scenario_result"]["setup"]["persons_in_register"],
            "city": city[0]["scenario_result"]["setup"]["persons_in_register"],
        },
        "users": {
            "small": [r["scenario_result"]["setup"]["users"] for r in small],
            "city": [r["scenario_result"]["setup"]["users"] for r in city],
        },
        "endpoints": endpoints,
        "all_met": all(all(e["met"].values()) for e in endpoints.values()) and bool(endpoints),
    }


def run(small_paths: list[Path], city_paths: list[Path], out: Path | None) -> int:
    small = [json.loads(p.read_text(encoding="utf-8")) for p in small_paths]
    city = [json.loads(p.read_text(encoding="utf-8")) for p in city_paths]
    result = {
        "small_files": [str(p) for p in small_paths],
        "city_files": [str(p) for p in city_paths],
        **compare(small, city),
    }
    target = out or small_paths[0].parent / f"register-scale-comparison-{dt.date.today().isoformat()}.json"
    target.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"registers: {result['registers']['small']:,} persons vs {result['registers']['city']:,}")
    for name, e in result["endpoints"].items():
        print(
            f"{name}: {e['small']['rps']} -> {e['city']['rps']} req/s (x{e['throughput_ratio']}), "
            f"p99 {e['small']['p99_ms']} -> {e['city']['p99_ms']} ms (x{e['p99_ratio']}), "
            f"of ceiling x{e['throughput_ratio_of_ceiling_shares']}, RSS {e['city']['rss_mib_peak']} MiB, "
            f"met: {e['met']}"
        )
    print(f"all targets met: {result['all_met']}\n[bench] comparison written to {target}")
    return 0 if result["all_met"] else 1
