"""Catalogue search under load, against a bare FastAPI endpoint on the same machine.

    python -m bench.catalog_search [--items 2500] [--rate 200] [--seconds 10] [--json PATH]

Generates a catalogue of ``--items`` published items, starts the catalog service exactly as a
container runs it (``wangban serve catalog``) and a bare FastAPI app under the same uvicorn,
then drives both with the same load generator: paced at ``--rate`` requests/s (latency at a
steady load: the target), then closed loops at 1, 2, 4, … ``--concurrency`` connections (the
latency/throughput curve up to saturation).

The load generator is wrk when it is installed (``apt install wrk``): written in C, it leaves
the two cores to the service and PostgreSQL. Without it a Python generator (httpx) stands in,
which itself needs most of a core at a few hundred requests/s; the report says which was used.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.common import infrastructure, kit_revision, machine_facts, summarize
from wangban.embedded import free_port

# What citizens type: words, fragments, pinyin initials, synonyms.
QUERIES = [
    "公积金",
    "gjj",
    "身份证",
    "社保",
    "营业执照",
    "出生",
    "养老",
    "yl",
    "残疾",
    "医疗机构",
]
REPO_ROOT = Path(__file__).resolve().parent.parent
GUANGAN_CSV = REPO_ROOT / "tests" / "catalog" / "data" / "sichuan_guangan_items.csv"
DEMO_ITEMS = REPO_ROOT / "catalog_service" / "demo" / "items.json"
QUALIFIERS = ["（东城街道）", "（南城街道）", "（虎门镇）", "（长安镇）", "（塘厦镇）"]


def real_names() -> list[str]:
    """Real item names: the published Guang'an list (1135) and our demo catalogue (68).

    A benchmark over a handful of invented words would make every query match a fifth of the
    catalogue; real names give the vocabulary, and so the selectivity, that citizens meet.
    """
    with GUANGAN_CSV.open(encoding="utf-8-sig", newline="") as handle:
        names = [row["name"] for row in csv.DictReader(handle)]
    demo = json.loads(DEMO_ITEMS.read_text(encoding="utf-8"))
    return names + [item["name"] for item in demo]


def generated_items(count: int) -> list[dict[str, Any]]:
    rng = random.Random(20261123)  # same catalogue every run
    names = real_names()
    items = []
    for n in range(count):
        # Beyond the real list, the same names again as other districts' implementations.
        name = names[n % len(names)] + ("" if n < len(names) else rng.choice(QUALIFIERS))
        committed = rng.choice([0, 0, 0, 1, 3, 5])
        items.append(
            {
                "catalog_code": f"{n:012d}",
                "implementing_code": f"BENCH-{n:06d}",
                "name": name[:200],
                "item_type": rng.choice(["行政许可", "行政确认", "行政给付", "公共服务"]),
                "department": f"第{n % 40}局",
                "region_code": "441900",
                "legal_basis": "《示例条例》",
                "legal_days": 20,
                "committed_days": committed,
                "conditions": "符合相关规定",
                "channels": ["网上", "窗口"],
                "online_depth": 2,
                "visits": 1,
                "scope": rng.choice(["district", "city"]),
            }
        )
    return items


async def load_catalogue(database_url: str, count: int) -> float:
    """Insert and publish the generated items; returns seconds taken."""
    from catalog_service import service
    from catalog_service.schemas import ItemContent
    from wangban.cli import migrate_services
    from wangban.db import Database
    from wangban.settings import Settings

    settings = Settings(database_url=database_url, kafka_bootstrap="unused:0")
    await migrate_services(settings, ["catalog"])
    database = Database.from_settings(settings)
    started = time.perf_counter()
    try:
        items = generated_items(count)
        for offset in range(0, len(items), 250):
            async with database.sessionmaker() as session, session.begin():
                for raw in items[offset : offset + 250]:
                    draft = await service.create_item_draft(
                        session, content=ItemContent.model_validate(raw)
                    )
                    await service.publish_version(session, version_id=draft.id)
    finally:
        await database.dispose()
    return time.perf_counter() - started


def bare_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items")
    async def items(q: str | None = None) -> dict[str, Any]:
        return {"items": [], "total": 0, "page": 1, "page_size": 20}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def start_server(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            try:
                if client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    return process
            except httpx.HTTPError:
                time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server {args} did not start")


async def open_loop(base: str, *, rate: float, seconds: float) -> dict[str, Any]:
    """Requests at a fixed rate, each on its own task: latency at a steady load."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:

        async def one(query: str) -> None:
            nonlocal errors
            started = time.perf_counter()
            try:
                response = await client.get("/items", params={"q": query})
                if response.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append((time.perf_counter() - started) * 1000)

        tasks = []
        start = time.perf_counter()
        total = int(rate * seconds)
        for n in range(total):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(QUERIES[n % len(QUERIES)])))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {"requests": total, "errors": errors, "rps": total / elapsed, **summarize(latencies)}


async def closed_loop(base: str, *, concurrency: int, seconds: float) -> dict[str, Any]:
    """``concurrency`` workers back to back: the highest throughput."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:

        async def worker(offset: int) -> None:
            nonlocal errors
            n = offset
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.get("/items", params={"q": QUERIES[n % len(QUERIES)]})
                if response.status_code != 200:
                    errors += 1
                latencies.append((time.perf_counter() - started) * 1000)
                n += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        **summarize(latencies),
    }


WRK_SCRIPT = """
local paths = {%(paths)s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n %% #paths) + 1])
end
%(delay)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %%d, "duration_us": %%d, "errors": %%d, "non_2xx": %%d, '
    .. '"p50": %%.3f, "p90": %%.3f, "p99": %%.3f, "max": %%.3f, "mean": %%.3f}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, latency.mean / 1000))
end
"""


def _wrk(
    base: str, *, connections: int, seconds: float, rate: float | None, service_ms: float = 0.0
) -> dict[str, Any]:
    """One wrk run over the typical queries in turn. With ``rate``, every connection waits on
    average ``connections / rate`` seconds between requests (wrk's ``delay()``), so the offered
    load is close to ``rate`` when ``service_ms`` (the mean response time, taken off each gap) is
    right; the achieved rate is what is reported."""
    paths = ", ".join('"' + "/items?q=" + urllib.parse.quote(query) + '"' for query in QUERIES)
    delay = ""
    if rate:
        # Exponential gaps (Poisson arrivals) rather than a fixed one, so that the connections
        # do not march in step and hit the server in bursts of ``connections`` at a time.
        mean_gap_ms = max(connections * 1000 / rate - service_ms, 0.0)
        delay = (
            "math.randomseed(os.time())\n"
            f"delay = function() return -math.log(1 - math.random()) * {mean_gap_ms:.3f} end"
        )
    script = WRK_SCRIPT % {"paths": paths, "delay": delay}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        completed = subprocess.run(
            [
                "wrk",
                "--threads",
                "1",
                "--connections",
                str(connections),
                "--duration",
                f"{seconds:.0f}s",
                "--timeout",
                "10s",
                "--script",
                handle.name,
                base,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(handle.name)
    line = next(x for x in completed.stdout.splitlines() if x.startswith("WRK_RESULT "))
    raw = json.loads(line.removeprefix("WRK_RESULT "))
    elapsed = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "errors": raw["errors"] + raw["non_2xx"],
        "rps": raw["requests"] / elapsed,
        "p50": raw["p50"],
        "p90": raw["p90"],
        "p99": raw["p99"],
        "max": raw["max"],
        "mean": raw["mean"],
    }


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def concurrency_steps(limit: int) -> list[int]:
    steps, n = [], 1
    while n < limit:
        steps.append(n)
        n *= 2
    return [*steps, limit]


def measure(base: str, args: argparse.Namespace, generator: str) -> dict[str, Any]:
    """Paced run at ``--rate``, then the closed-loop curve; CPU used by the generator."""
    if generator == "wrk":
        _wrk(base, connections=4, seconds=2, rate=None)  # warm up connections and caches
        cpu0 = _children_cpu_s()
        curve = {
            str(c): _wrk(base, connections=c, seconds=args.seconds, rate=None)
            for c in concurrency_steps(args.concurrency)
        }
        # A connection's pause starts when its response arrives, so each request's service
        # time adds to its gap; the single-connection mean latency, measured just before, is
        # taken off the gap so that the achieved rate comes out close to --rate.
        steady = _wrk(
            base,
            connections=args.paced_connections,
            seconds=args.seconds,
            rate=args.rate,
            service_ms=curve["1"]["mean"],
        )
        used = _children_cpu_s() - cpu0
    else:
        me = psutil.Process()

        async def run() -> tuple[dict[str, Any], dict[str, Any]]:
            await closed_loop(base, concurrency=4, seconds=1)
            steady = await open_loop(base, rate=args.rate, seconds=args.seconds)
            curve = {
                str(c): await closed_loop(base, concurrency=c, seconds=args.seconds)
                for c in concurrency_steps(args.concurrency)
            }
            return steady, curve

        times0 = me.cpu_times()
        steady, curve = asyncio.run(run())
        times1 = me.cpu_times()
        used = (times1.user + times1.system) - (times0.user + times0.system)
    return {"steady": steady, "curve": curve, "load_generator_cpu_s": round(used, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.catalog_search")
    parser.add_argument("--items", type=int, default=2500)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--concurrency", type=int, default=16, help="largest closed-loop connection count"
    )
    parser.add_argument(
        "--paced-connections", type=int, default=8, help="connections of the paced run"
    )
    parser.add_argument(
        "--generator", choices=["auto", "wrk", "httpx"], default="auto", help="load generator"
    )
    parser.add_argument("--workers", type=int, default=1, help="catalog uvicorn workers")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--role", choices=["bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "bare":
        import uvicorn

        uvicorn.run(bare_app(), host="127.0.0.1", port=args.port, log_level="warning")
        return 0

    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "httpx"
    if generator == "httpx":
        print("note: wrk not found; the Python load generator competes for the CPU", flush=True)
    with infrastructure(None) as infra:
        load_s = asyncio.run(load_catalogue(infra.database_url, args.items))
        env = {k: v for k, v in os.environ.items() if not k.startswith("WANGBAN_")}
        catalog_port, bare_port = free_port(), free_port()
        env.update(
            WANGBAN_DATABASE_URL=infra.database_url,
            WANGBAN_KAFKA_BOOTSTRAP=infra.kafka_bootstrap,
            WANGBAN_CATALOG_PORT=str(catalog_port),
            WANGBAN_LOG_LEVEL="WARNING",
            WANGBAN_WEB_WORKERS=str(args.workers),
        )
        servers = [
            start_server(
                ["bench.catalog_search", "--role", "bare", "--port", str(bare_port)], env, bare_port
            ),
            start_server(["wangban", "serve", "catalog"], env, catalog_port),
        ]
        try:
            results = {
                "bare FastAPI": measure(f"http://127.0.0.1:{bare_port}", args, generator),
                "catalog search": measure(f"http://127.0.0.1:{catalog_port}", args, generator),
            }
        finally:
            for server in servers:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=20)
    report = {
        "items": args.items,
        "load_seconds": round(load_s, 1),
        "rate": args.rate,
        "seconds": args.seconds,
        "paced_connections": args.paced_connections,
        "catalog_workers": args.workers,
        "generator": generator,
        "results": results,
        "machine": machine_facts(),
        "kit": kit_revision(),
        "postgres": infra.postgres,
    }
    print(f"catalogue: {args.items} items loaded in {load_s:.1f} s; load generator: {generator}")
    print(
        f"{'endpoint':<16} {'load':<24} {'req/s':>7} {'p50 ms':>7} {'p90 ms':>7} "
        f"{'p99 ms':>7} {'errors':>6}"
    )
    for endpoint, result in results.items():
        rows = [(f"paced {args.rate:.0f}/s", result["steady"])]
        rows += [(f"closed loop, {c} conn", r) for c, r in result["curve"].items()]
        for label, r in rows:
            print(
                f"{endpoint:<16} {label:<24} {r['rps']:>7.0f} {r['p50']:>7.1f} "
                f"{r.get('p90', float('nan')):>7.1f} {r['p99']:>7.1f} {r['errors']:>6}"
            )
        print(f"{endpoint:<16} load generator CPU: {result['load_generator_cpu_s']} s")
    search_p99 = results["catalog search"]["steady"]["p99"]
    verdict = "met" if search_p99 < 30 else "missed"
    print(f"target p99 < 30 ms at {args.rate:.0f}/s: {verdict} ({search_p99:.1f} ms)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
