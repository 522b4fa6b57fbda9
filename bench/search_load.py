"""Catalogue search through the gateway of a running platform, over the real 1,135-item list.

    python -m bench.search_load [--rate 200] [--seconds 30] [--gateway-cache-s 5] [--json PATH]

All six services run as processes (``python -m wangban serve <name>``, as a container runs
them) on real PostgreSQL and a real Kafka-protocol broker (embedded ones unless
``WANGBAN_DATABASE_URL`` / ``WANGBAN_KAFKA_BOOTSTRAP`` are set), migrated and seeded as
``wangban up`` does (the demo catalogue of 68 items). Before the services start, the real
Sichuan (Guang'an) list is imported with the catalogue's own importer, every row completed as
its department would (time limits, basis, channels) and published: 1,135 + 68 items in the
citizens' search index.

Then one phase, open loop (each request at its scheduled time, ``--rate`` per second for
``--seconds``, after ``--warmup-seconds`` at the same rate that are not counted), from a load
generator in its own process (``--role load``: the lean keep-alive HTTP/1.1 client of
``bench.platform_load``): ``GET /api/v1/items?q=…`` with a realistic mix of what citizens type
(:func:`query_mix`): everyday Chinese words, pinyin initials and full pinyin, words the synonym
table maps, typos, and a long tail of fragments of real item names (so the gateway's 5-second
cache of public answers, ``WANGBAN_GATEWAY_PUBLIC_CACHE_S``, does not hide the search itself;
``--gateway-cache-s 0`` turns that cache off so that every request reaches the catalog).

Latency is measured from each request's *scheduled* start to its answer, so a generator or a
server that falls behind shows up in the figures instead of silently sending less. Reported:
p50/p95/p99/max, errors by kind, the rate achieved, how far the generator fell behind, and the
CPU of every process over the phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from bench.auto_approval import prepare
from bench.common import (
    REPO_ROOT,
    Infrastructure,
    infrastructure,
    kit_revision,
    machine_facts,
    platform_setup,
)
from bench.common import summarize as latency_summary
from bench.platform_load import LeanClient
from wangban.processes import ServiceProcesses
from wangban.settings import SERVICE_NAMES, Settings

GUANGAN_CSV = REPO_ROOT / "tests" / "catalog" / "data" / "sichuan_guangan_items.csv"
TARGET_P99_MS = 30.0

# What citizens type, by kind. Words from the seeds' examples and the item names' own
# vocabulary; pinyin as phone keyboards produce it; typos of the kinds search corrects.
CHINESE = [
    "公积金", "公积金提取", "社保", "社保卡", "社会保障卡申领", "身份证", "居民身份证换领",
    "营业执照", "个体工商户", "企业设立", "养老", "养老保险", "医保", "医疗保险", "户口",
    "户口迁移", "结婚登记", "离婚", "出生证明", "驾驶证", "食品经营许可", "失业金",
    "失业保险金申领", "退休", "残疾人证", "不动产登记", "高龄津贴", "临时救助", "学籍",
    "入学", "健康证", "卫生许可", "建筑垃圾", "道路运输", "税务登记", "公章刻制",
    "无犯罪记录证明", "居住证", "优待证", "抚恤金",
]  # fmt: skip
PINYIN = [
    "gjj", "sbk", "sfz", "yyzz", "ylbx", "yb", "hk", "jhdj", "sydj", "gongjijin", "shebao",
    "hukou", "yanglao", "jiashizheng", "canjiren", "budongchan", "zfgjj", "shiye",
]  # fmt: skip
SYNONYMS = ["社会保险", "住房公积金", "第二代身份证", "开饭店", "办健康证", "生孩子报销", "开公司"]
TYPOS = ["gongjijn", "shebaa", "社保卡申令", "离婚登计", "分户帐", "yanlgao", "身分证"]
KINDS = {"chinese": CHINESE, "pinyin": PINYIN, "synonym": SYNONYMS, "typo": TYPOS}
MIX = {"chinese": 0.35, "pinyin": 0.15, "synonym": 0.05, "typo": 0.05, "fragment": 0.40}
"""Share of requests of each kind; ``fragment``: two to four characters cut from a random real
item name (the long tail, mostly distinct queries)."""


def real_names() -> list[str]:
    with GUANGAN_CSV.open(encoding="utf-8-sig", newline="") as handle:
        return [row["name"] for row in csv.DictReader(handle)]


def query_mix(count: int, *, seed: int = 20261207) -> list[tuple[str, str]]:
    """``count`` (kind, query) pairs in a fixed pseudo-random order: the same run every time."""
    rng = random.Random(seed)
    names = real_names()
    kinds = list(MIX)
    weights = [MIX[kind] for kind in kinds]
    queries: list[tuple[str, str]] = []
    for _ in range(count):
        kind = rng.choices(kinds, weights)[0]
        if kind == "fragment":
            name = rng.choice(names).split("（")[0]
            length = min(len(name), rng.randint(2, 4))
            start = rng.randint(0, len(name) - length)
            queries.append((kind, name[start : start + length]))
        else:
            queries.append((kind, rng.choice(KINDS[kind])))
    return queries


# --- the data --------------------------------------------------------------------------------


async def publish_real_list(settings: Settings) -> dict[str, int]:
    """Import the real list with every row completed as its department would, publishing it."""
    from catalog_service import importer
    from wangban.db import Database

    with GUANGAN_CSV.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    completion = {
        "legal_basis": "《四川省政务服务事项实施清单》",
        "legal_days": "20",
        "committed_days": "5",
        "conditions": "符合条件的申请人",
        "channels": "网上;窗口",
        "online_depth": "2",
        "visits": "1",
    }
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*rows[0], *completion])
    writer.writeheader()
    writer.writerows({**row, **completion} for row in rows)
    database = Database.from_settings(settings)
    try:
        async with database.sessionmaker() as session, session.begin():
            report = await importer.import_items(
                session,
                data=buffer.getvalue(),
                fmt="csv",
                mapping=importer.GUANGAN_MAPPING,
                publish_complete=True,
                max_rows=len(rows),
            )
    finally:
        await database.dispose()
    return {"rows": len(rows), "published": report.published}


# --- the load generator (its own process) ------------------------------------------------------


async def run_load(spec: dict[str, Any]) -> dict[str, Any]:
    rate, seconds, warmup = spec["rate"], spec["seconds"], spec["warmup_seconds"]
    total = int(rate * (seconds + warmup))
    queries = query_mix(total)
    results: list[dict[str, Any] | None] = [None] * total
    process = psutil.Process()
    async with LeanClient(spec["base_url"], timeout_s=10.0, max_connections=500) as client:

        async def one(index: int, scheduled: float) -> None:
            kind, query = queries[index]
            started = time.perf_counter()
            error = None
            try:
                response = await client.request("GET", "/api/v1/items", params={"q": query})
                if response.status_code != 200:
                    error = f"HTTP {response.status_code}"
                else:
                    response.json()
            except TimeoutError:
                error = "timeout"
            except Exception as exc:  # every failure counts, by kind
                error = type(exc).__name__
            done = time.perf_counter()
            results[index] = {
                "kind": kind,
                "query": query,
                "ms": (done - scheduled) * 1000,
                "behind_ms": (started - scheduled) * 1000,
                "error": error,
                "measured": index >= int(rate * warmup),
            }

        tasks = []
        cpu_before = process.cpu_times()
        t0 = time.perf_counter() + 0.2
        for index in range(total):
            scheduled = t0 + index / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(index, scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
        cpu_after = process.cpu_times()
    return {
        "results": results,
        "elapsed_s": elapsed,
        "cpu_s": (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system),
    }


def load_main(spec_path: Path, out_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    out_path.write_text(json.dumps(asyncio.run(run_load(spec))))
    return 0


# --- the run ---------------------------------------------------------------------------------


def _cpu_seconds(pid: int | None) -> float:
    """CPU time of a process and its children (PostgreSQL's backends), 0 when it is gone."""
    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total
    except psutil.Error:
        return 0.0


def analyse(raw: dict[str, Any], *, rate: float, seconds: float) -> dict[str, Any]:
    measured = [r for r in raw["results"] if r is not None and r["measured"]]
    ok = [r["ms"] for r in measured if r["error"] is None]
    errors = Counter(r["error"] for r in measured if r["error"] is not None)
    by_kind: dict[str, Any] = {}
    for kind in MIX:
        values = [r["ms"] for r in measured if r["kind"] == kind and r["error"] is None]
        by_kind[kind] = {"requests": len(values), **latency_summary(values)}
    behind = sorted(r["behind_ms"] for r in measured)
    # Per second of the schedule: the slowest answer, to tell a steady tail from a stall.
    per_second: dict[int, float] = {}
    for index, r in enumerate(measured):
        second = int(index / rate)
        per_second[second] = max(per_second.get(second, 0.0), r["ms"])
    return {
        "rate": rate,
        "seconds": seconds,
        "requests": len(measured),
        "achieved_per_s": len(measured) / seconds if seconds else 0.0,
        "distinct_queries": len({r["query"] for r in measured}),
        "latency_ms": latency_summary(ok),
        "by_kind": by_kind,
        "errors": dict(errors),
        "generator_behind_p99_ms": behind[int(0.99 * (len(behind) - 1))] if behind else None,
        "generator_cpu_s": raw["cpu_s"],
        "slowest_per_second_ms": [round(per_second[k], 1) for k in sorted(per_second)],
    }


def run_benchmark(args: argparse.Namespace, infra: Infrastructure) -> dict[str, Any]:
    setup = platform_setup(infra, WANGBAN_GATEWAY_PUBLIC_CACHE_S=str(args.gateway_cache_s))
    settings, env = setup.settings, setup.env
    asyncio.run(prepare(settings))
    started = time.monotonic()
    imported = asyncio.run(publish_real_list(settings))
    print(
        f"real list: {imported['published']} of {imported['rows']} rows published in "
        f"{time.monotonic() - started:.0f} s",
        flush=True,
    )
    services = ServiceProcesses(
        env,
        infra.data_dir / "logs",
        setup.urls(SERVICE_NAMES),
    )
    spec_dir = infra.data_dir / "loadgen"
    spec_dir.mkdir(parents=True, exist_ok=True)
    try:
        services.start(SERVICE_NAMES)
        asyncio.run(services.wait_ready(timeout_s=180))
        time.sleep(args.settle_seconds)
        spec_path, out_path = spec_dir / "spec.json", spec_dir / "out.json"
        spec_path.write_text(
            json.dumps(
                {
                    "base_url": services.urls["gateway"],
                    "rate": args.rate,
                    "seconds": args.seconds,
                    "warmup_seconds": args.warmup_seconds,
                }
            )
        )
        roots: dict[str, int | None] = {name: services.pid(name) for name in SERVICE_NAMES}
        roots["postgres"] = infra.postgres_pid
        roots["broker"] = infra.broker_pid
        load_average_before = os.getloadavg()
        cpu_before = {name: _cpu_seconds(pid) for name, pid in roots.items()}
        wall_before = time.monotonic()
        generator = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.search_load",
                "--role",
                "load",
                str(spec_path),
                str(out_path),
            ],
            cwd=REPO_ROOT,
            timeout=args.seconds + args.warmup_seconds + 120,
            check=False,
        )
        wall = time.monotonic() - wall_before
        cpu = {
            name: round((_cpu_seconds(pid) - cpu_before[name]) / wall, 3)
            for name, pid in roots.items()
        }
        if generator.returncode != 0:
            raise RuntimeError(f"the load generator failed ({generator.returncode})")
        raw = json.loads(out_path.read_text())
        search = analyse(raw, rate=args.rate, seconds=args.seconds)
        search["cores_used_during_run"] = cpu
        search["load_average_before"] = [round(x, 2) for x in load_average_before]
    finally:
        services.stop()
    return {
        "benchmark": "search_load",
        "command": " ".join(["python -m bench.search_load", *sys.argv[1:]]),
        "machine": machine_facts(),
        "kit": kit_revision(),
        "postgres": infra.postgres,
        "broker": infra.broker,
        "catalogue": {"real_list_published": imported["published"], "demo_items": 68},
        "gateway_public_cache_s": args.gateway_cache_s,
        "mix": MIX,
        "search": search,
        "target_p99_ms": TARGET_P99_MS,
        "met": (
            search["latency_ms"]["p99"] <= TARGET_P99_MS
            and not search["errors"]
            and search["achieved_per_s"] >= 0.95 * args.rate
        ),
    }


def render(report: dict[str, Any]) -> str:
    s = report["search"]
    latency = s["latency_ms"]
    lines = [
        f"search through the gateway at {s['rate']:.0f}/s for {s['seconds']:.0f} s "
        f"({s['requests']} requests, {s['distinct_queries']} distinct queries, gateway cache "
        f"{report['gateway_public_cache_s']} s), load average before "
        f"{s['load_average_before']}",
        f"  p50 {latency['p50']:.1f}  p95 {latency['p95']:.1f}  p99 {latency['p99']:.1f}  "
        f"max {latency['max']:.1f} ms; errors {s['errors'] or 0}; generator behind p99 "
        f"{s['generator_behind_p99_ms']:.1f} ms",
    ]
    for kind, figures in s["by_kind"].items():
        if figures["requests"]:
            lines.append(
                f"  {kind:<9} {figures['requests']:>5}  p50 {figures['p50']:.1f}  "
                f"p99 {figures['p99']:.1f} ms"
            )
    lines.append(
        "  cores used: "
        + ", ".join(f"{name} {value:.2f}" for name, value in s["cores_used_during_run"].items())
    )
    lines.append(
        "  slowest per second (ms): "
        + " ".join(f"{value:.0f}" for value in s["slowest_per_second_ms"])
    )
    verdict = "met" if report["met"] else "MISSED"
    lines.append(f"target p99 ≤ {TARGET_P99_MS:.0f} ms at {s['rate']:.0f}/s: {verdict}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=["run", "load"], default="run", help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup-seconds", type=float, default=5.0)
    parser.add_argument("--settle-seconds", type=float, default=5.0)
    parser.add_argument(
        "--gateway-cache-s",
        type=float,
        default=5.0,
        help="WANGBAN_GATEWAY_PUBLIC_CACHE_S for the run (0: every search reaches the catalog)",
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "load":
        return load_main(Path(args.paths[0]), Path(args.paths[1]))
    with infrastructure(args.data_dir) as infra:
        report = run_benchmark(args, infra)
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2))
    return 0 if report["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
