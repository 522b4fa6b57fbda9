"""A picture of the Grafana dashboard (deploy/grafana/wangban.json) drawn from real data, where
Grafana is not installed: docs/screenshots/operations/dashboard.png.

    python -m bench.dashboard_picture [--out PATH] [--rates 5,10] [--seconds 20]

All six services run as processes on the embedded PostgreSQL and broker, as
``bench.platform_load`` runs them, and Prometheus (Debian's ``prometheus`` package, the server
beside promtool) scrapes each one's ``/metrics`` every 2 s on 127.0.0.1, each under its service's
name as ``job`` as the ServiceMonitor labels them. A short ``bench.platform_load`` run (catalogue
searches, home screens, applications at ``--rates``; no ceiling phase) is the traffic. Then every
panel's own queries, as the dashboard holds them, are asked of that Prometheus over the run
(``query_range``), with the windows shortened for a run of minutes (``[5m]`` → ``[30s]``,
``[15m]`` → ``[2m]``, ``[1h]`` → ``[5m]``) and ``$job`` as all services. The series are drawn
with ECharts (console/node_modules, offline) in a page that Debian's Chromium screenshots
through Playwright. Only addresses on this machine are used; the run stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench import platform_load
from bench.auto_approval import prepare
from bench.common import infrastructure, platform_setup
from wangban.embedded import free_port
from wangban.processes import ServiceProcesses
from wangban.settings import SERVICE_NAMES

REPO_ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "wangban.json"
ECHARTS = REPO_ROOT / "console" / "node_modules" / "echarts" / "dist" / "echarts.min.js"
OUT = REPO_ROOT / "docs" / "screenshots" / "operations" / "dashboard.png"
CHROMIUM = "/usr/bin/chromium"
SCRAPE_INTERVAL_S = 2
STEP_S = 5
_WINDOWS = {"[5m]": "[30s]", "[15m]": "[2m]", "[1h]": "[5m]"}


def short_run_query(expr: str) -> str:
    """A panel's query as asked of a run of minutes: shorter windows, every service."""
    for long, short in _WINDOWS.items():
        expr = expr.replace(long, short)
    return expr.replace("$job", ".*")


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), template) or "value"


def start_prometheus(urls: dict[str, str], workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise SystemExit("prometheus is missing: apt-get install prometheus (Debian)")
    config = {
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "scrape_timeout": "2s"},
        "scrape_configs": [
            {
                "job_name": name,
                "metrics_path": "/metrics",
                "static_configs": [
                    {"targets": [url.removeprefix("http://")], "labels": {"pod": f"{name}-0"}}
                ],
            }
            for name, url in urls.items()
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(workdir / "prometheus.log", "wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return process, f"http://127.0.0.1:{port}"


async def wait_prometheus(url: str, *, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/-/ready")).status_code == 200:
                    return
            await asyncio.sleep(0.5)
    raise RuntimeError("Prometheus did not get ready")


async def query_panels(prometheus: str, start: float, end: float) -> list[dict[str, Any]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = []
    async with httpx.AsyncClient(base_url=prometheus, timeout=30) as client:
        for panel in dashboard["panels"]:
            series = []
            for target in panel["targets"]:
                answer = await client.get(
                    "/api/v1/query_range",
                    params={
                        "query": short_run_query(target["expr"]),
                        "start": start,
                        "end": end,
                        "step": STEP_S,
                    },
                )
                answer.raise_for_status()
                for result in answer.json()["data"]["result"]:
                    points = [
                        [round((float(t) - start) / 60, 3), float(v)]
                        for t, v in result["values"]
                        if v not in ("NaN", "+Inf", "-Inf")
                    ]
                    series.append(
                        {"name": legend(target["legendFormat"], result["metric"]), "data": points}
                    )
            panels.append(
                {
                    "title": panel["title"],
                    "unit": panel["fieldConfig"]["defaults"].get("unit", "short"),
                    "series": series,
                }
            )
    return panels


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Wangban</title>
<style>
body { margin: 0; background: #111217; color: #ccccdc; font: 13px sans-serif; }
h1 { font-size: 18px; font-weight: 500; margin: 12px 16px 4px; }
p { margin: 0 16px 8px; color: #8e8e9a; }
.grid { display: grid; grid-template-columns: repeat(3, 1fr); gap: 8px; padding: 8px 16px; }
.panel { background: #181b1f; border: 1px solid #2c3235; border-radius: 2px; height: 250px; }
</style><script>ECHARTS</script></head><body>
<h1>Wangban</h1><p>SUBTITLE</p><div class="grid" id="grid"></div>
<script>
const panels = PANELS;
const units = {s: v => v < 1 ? (v * 1000).toFixed(v < 0.01 ? 2 : 0) + ' ms' : v.toFixed(2) + ' s',
  bytes: v => (v / 1048576).toFixed(0) + ' MiB', percentunit: v => (v * 100).toFixed(1) + ' %',
  reqps: v => v.toFixed(1) + '/s', ops: v => v.toFixed(1) + '/s'};
for (const panel of panels) {
  const div = document.createElement('div'); div.className = 'panel';
  document.getElementById('grid').appendChild(div);
  const chart = echarts.init(div, 'dark', {renderer: 'canvas'});
  const fmt = units[panel.unit] || (v => Math.abs(v) >= 1000 ? v.toFixed(0) : +v.toFixed(2));
  chart.setOption({
    backgroundColor: '#181b1f', animation: false,
    title: {text: panel.title, left: 8, top: 6, textStyle: {fontSize: 13, color: '#ccccdc'}},
    grid: {left: 64, right: 12, top: 34, bottom: 58},
    legend: {bottom: 2, left: 8, type: 'scroll', textStyle: {fontSize: 10, color: '#8e8e9a'},
             itemWidth: 12, itemHeight: 6},
    xAxis: {type: 'value', min: 0, name: 'min', nameGap: 4, axisLabel: {color: '#8e8e9a'},
            splitLine: {lineStyle: {color: '#2c3235'}}},
    yAxis: {type: 'value', axisLabel: {formatter: fmt, color: '#8e8e9a'},
            splitLine: {lineStyle: {color: '#2c3235'}}},
    series: panel.series.map(s => ({name: s.name, type: 'line', showSymbol: false,
                                     lineStyle: {width: 1.5}, data: s.data})),
  });
}
</script></body></html>"""


async def screenshot(html: Path, out: Path) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1500, "height": 900})
            await page.goto(html.as_uri())
            await page.wait_for_timeout(500)
            out.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(out), full_page=True)
        finally:
            await browser.close()


def render(panels: list[dict[str, Any]], subtitle: str, workdir: Path) -> Path:
    page = (
        _PAGE.replace("ECHARTS", ECHARTS.read_text(encoding="utf-8"))
        .replace("SUBTITLE", subtitle)
        .replace("PANELS", json.dumps(panels, ensure_ascii=False))
    )
    html = workdir / "dashboard.html"
    html.write_text(page, encoding="utf-8")
    return html


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_picture")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--rates", default="5,10", help="applications/s, as platform_load's")
    parser.add_argument("--seconds", default="20", help="length of each load phase")
    args = parser.parse_args()
    if not ECHARTS.exists():
        raise SystemExit(f"{ECHARTS} is missing: npm ci in console/")
    load_args = platform_load.parse_args(
        [
            *("--rates", args.rates, "--seconds", args.seconds, "--search-rate", "40"),
            *("--home-rate", "10", "--citizens", "100", "--skip", "ceiling"),
            *("--idle-seconds", "5"),
        ]
    )
    signal.signal(signal.SIGTERM, platform_load._stop_on_sigterm)
    with (
        tempfile.TemporaryDirectory(prefix="wangban-dashboard-") as tmp,
        infrastructure(None) as infra,
    ):
        workdir = Path(tmp)
        setup = platform_setup(infra, WANGBAN_TRUSTED_PROXIES='["127.0.0.1"]')
        settings, env = setup.settings, setup.env
        asyncio.run(prepare(settings))
        urls = setup.urls(SERVICE_NAMES)
        services = ServiceProcesses(env, infra.data_dir / "logs", urls)
        children = platform_load.Children(services=services)
        spec_dir = infra.data_dir / "loadgen"
        spec_dir.mkdir(parents=True, exist_ok=True)
        generator_log = open(spec_dir / "loadgen.log", "ab")
        children.logs.append(generator_log)
        prometheus: subprocess.Popen[bytes] | None = None
        try:
            services.start(SERVICE_NAMES)
            prometheus, prometheus_url = start_prometheus(urls, workdir)
            asyncio.run(wait_prometheus(prometheus_url))
            memory = platform_load.MemoryWatch()
            memory.pids = {name: services.pid(name) for name in SERVICE_NAMES}
            run = platform_load.Run(
                args=load_args,
                infra=infra,
                settings=settings,
                children=children,
                memory=memory,
                cpu_roots={
                    **{name: services.pid(name) for name in SERVICE_NAMES},
                    "postgres": infra.postgres_pid,
                    "broker": infra.broker_pid,
                },
                spec_dir=spec_dir,
                generator_log=generator_log,
            )
            started = time.time()
            asyncio.run(platform_load.measure(run))
            time.sleep(3 * SCRAPE_INTERVAL_S)  # the last scrapes after the load
            ended = time.time()
            panels = asyncio.run(query_panels(prometheus_url, started, ended))
        finally:
            if prometheus is not None:
                prometheus.terminate()
                prometheus.wait(30)
            children.stop_all()
        subtitle = (
            f"Panels of deploy/grafana/wangban.json over a {(ended - started) / 60:.1f}-minute "
            f"bench.platform_load run (searches, home screens, applications at {args.rates}/s) "
            "on this machine, scraped by Prometheus every 2 s; windows shortened for the run"
        )
        asyncio.run(screenshot(render(panels, subtitle, workdir), args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
