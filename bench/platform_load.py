"""The whole platform through the gateway, at escalating rates, against the machine's ceiling.

    python -m bench.platform_load [--rates 10,25,50,100] [--seconds 20] [--search-rate 200]
                                  [--home-rate 50] [--citizens 500] [--json PATH]

All six services run as processes (``python -m wangban serve <name>``, as a container runs
them) on real PostgreSQL and a real Kafka-protocol broker (embedded ones unless
``WANGBAN_DATABASE_URL`` / ``WANGBAN_KAFKA_BOOTSTRAP`` are set). Many citizens are logged in
already: ``--citizens`` gateway accounts (distinct subjects, made with the gateway's own account
code) and an access token for each, minted with the gateway's key as its login would. Every
account holds the verified person of the one sandbox persona who passes 高龄老人津贴申领 (only
that person passes the item's rules), so all their certificates land in one wallet.

Phases, each open loop (one task per request at its scheduled time) for ``--seconds``, from a
load generator in its own process (``--role load``, internal: a lean keep-alive HTTP/1.1 client
on asyncio, or httpx with ``--client httpx``; it measures its own CPU, its Kafka reader's
included, and how far it fell behind its schedule):

1. ``search``: ``GET /api/v1/items?q=…`` (public) at ``--search-rate``, rotating typical
   queries; ``home``: ``GET /api/v1/home`` as the citizens at ``--home-rate``. Both run before
   the applications, while the wallet is small (the home screen reads the whole wallet).
2. ``apply`` at each of ``--rates`` in turn: ``POST /api/v1/applications`` (``Idempotency-Key``,
   each citizen from its own address via ``X-Forwarded-For`` as behind the ingress), then the
   load generator's plain Kafka reader waits for the application's ``certificate.issued`` and
   the citizen reads that certificate once through ``GET /api/v1/certificates/{id}`` (again
   every ``--poll-ms`` while it answers 404). Latency: submit request start → end of the first
   successful wallet read. Escalation stops at the first rate that fails (errors, applications
   not completed, rate not achieved, or latency growing: last quarter's p50 over 1.5× and
   50 ms above the first quarter's).
3. The platform is stopped and ``bench.ceiling`` (a bare FastAPI app: one INSERT, one Kafka send
   with acks=all) is driven by the same generator at the same rates, escalating the same way.

Also: peak resident memory of each service process (with its children), sampled every 200 ms,
idle and per phase, against 200 MB; CPU of every process per phase. Ctrl-C or SIGTERM stop every
process the run started.

The idle platform (no traffic) is measured for ``--idle-seconds`` once the services are ready and
have settled: CPU of each process (the six services, PostgreSQL with its backends, the broker),
reported per process and in total. ``--idle-only`` measures that and stops (no citizens, no
phases): what the platform costs a machine while nobody uses it, per broker
(``WANGBAN_EMBEDDED_BROKER``) and fetch wait (``WANGBAN_KAFKA_FETCH_MAX_WAIT_MS``). ``--skip``
leaves phases out (e.g. ``--skip search,home,ceiling`` for the applications alone).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any, Protocol, cast
from urllib.parse import urlencode, urlsplit

import httpx
import psutil

from bench.auto_approval import (
    Applicant,
    CpuWatch,
    Observations,
    item_version_everywhere,
    metrics_delta,
    prepare,
    read_events,
    scrape_http_metrics,
)
from bench.common import (
    REPO_ROOT,
    Infrastructure,
    infrastructure,
    kit_revision,
    machine_facts,
    platform_setup,
    summarize,
)
from sandbox import ELDERLY_ALLOWANCE
from wangban.embedded import free_port
from wangban.processes import ServiceProcesses, kill_tree
from wangban.settings import SERVICE_NAMES, Settings

SEARCH_QUERIES = (
    "公积金",
    "社保",
    "身份证",
    "营业执照",
    "养老",
    "医保",
    "户口",
    "退休",
    "出生",
    "驾驶证",
)
MEMORY_TARGET_MB = 200.0
LAG_FACTOR = 1.5
LAG_FLOOR_MS = 50.0
MIN_ACHIEVED = 0.95
BEHIND_P99_MS = 50.0
"""The load generator is behind its schedule when its p99 start delay exceeds this."""


# --- verdicts (pure) ---------------------------------------------------------------------------


def latency_trend(points: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """Did latency grow over the phase? ``points`` are (scheduled second, latency ms). Compares
    the p50 of the first quarter of the requests (by schedule) with that of the last quarter."""
    ordered = [ms for _, ms in sorted(points)]
    quarter = len(ordered) // 4
    if quarter < 1:
        return {"first_quarter_p50": math.nan, "last_quarter_p50": math.nan, "grew": False}
    first = summarize(ordered[:quarter])["p50"]
    last = summarize(ordered[-quarter:])["p50"]
    grew = last > LAG_FACTOR * first and last - first > LAG_FLOOR_MS
    return {"first_quarter_p50": first, "last_quarter_p50": last, "grew": grew}


def phase_problems(result: dict[str, Any]) -> list[str]:
    """Why a phase does not count as held (empty: held)."""
    problems = []
    if result["errors"]:
        problems.append(f"{result['errors']} errors")
    if result.get("not_completed"):
        problems.append(f"{result['not_completed']} not completed")
    achieved = result["rate_achieved"]
    if not math.isnan(achieved) and achieved < MIN_ACHIEVED * result["rate_asked"]:
        problems.append(f"achieved {achieved:.1f}/s")
    if result["trend"]["grew"]:
        trend = result["trend"]
        problems.append(
            f"latency grew ({trend['first_quarter_p50']:.0f} → {trend['last_quarter_p50']:.0f} ms)"
        )
    return problems


def highest_held(phases: Sequence[dict[str, Any]]) -> float | None:
    """The highest rate held, counting only the unbroken run of held rates from the lowest."""
    held = None
    for phase in sorted(phases, key=lambda p: p["rate_asked"]):
        if phase["problems"]:
            break
        held = phase["rate_asked"]
    return held


CPU_COUNTED = ("postgres", "ceiling", *SERVICE_NAMES)
"""Whose CPU makes the cost of a request. Not the broker: with the platform's consumers
long-polling it, the embedded broker burns more CPU idle than under load (see auto_approval)."""


def cpu_per_request(
    loaded: dict[str, Any], idle: dict[str, Any] | None, requests: int
) -> dict[str, float]:
    """CPU milliseconds per request of each process over the phase, above its idle rate when
    that is known; ``total`` sums :data:`CPU_COUNTED`."""
    idle_percent = idle["process_percent_of_one_core"] if idle else {}
    per: dict[str, float] = {}
    for name, percent in loaded["process_percent_of_one_core"].items():
        extra = percent - idle_percent.get(name, 0.0)
        per[name] = round(10 * extra * loaded["window_s"] / max(requests, 1), 2)
    per["total"] = round(sum(v for k, v in per.items() if k in CPU_COUNTED), 2)
    return per


def ratio(ours: float, ceiling: float) -> float:
    if math.isnan(ours) or math.isnan(ceiling) or ceiling <= 0:
        return math.nan
    return round(ours / ceiling, 2)


def error_kinds(errors: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for error in errors:
        counts[error] = counts.get(error, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


# --- a lean HTTP/1.1 client --------------------------------------------------------------------


class LeanProtocolError(Exception):
    """The server's answer was not HTTP/1.1 as expected."""


class LeanResponse:
    def __init__(self, status_code: int, content: bytes):
        self.status_code = status_code
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class LeanClient:
    """Keep-alive HTTP/1.1 on asyncio streams, for plain ``http://`` services: a fraction of
    httpx's CPU per request (httpx spends milliseconds of CPU on each, which at a few hundred
    requests/s is a core the platform under test would then lack). Content-Length and chunked
    bodies; a request on a kept-alive connection the server closed meanwhile is sent once more
    on a new one (as httpx does)."""

    def __init__(self, base_url: str, *, timeout_s: float, max_connections: int):
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None:
            raise ValueError(f"LeanClient speaks plain http only, not {base_url}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout_s = timeout_s
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def __aenter__(self) -> LeanClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> LeanResponse:
        target = url + ("?" + urlencode(params) if params else "")
        body = b"" if json is None else _json_dumps(json).encode()
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if json is not None:
            lines.append("Content-Type: application/json")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        lines.extend(f"{k}: {v}" for k, v in (headers or {}).items())
        message = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        async with self._slots, asyncio.timeout(self.timeout_s):
            while self._idle:
                reader, writer = self._idle.pop()
                try:
                    return await self._exchange(reader, writer, message)
                except (ConnectionError, asyncio.IncompleteReadError) as exc:
                    writer.close()
                    if getattr(exc, "partial", b"") or isinstance(exc, ConnectionRefusedError):
                        raise
                    # closed by the server while idle: try the next (or a new) connection
            reader, writer = await asyncio.open_connection(self.host, self.port)
            return await self._exchange(reader, writer, message)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, message: bytes
    ) -> LeanResponse:
        reusable = False
        try:
            writer.write(message)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            try:
                status = int(status_line.split(" ", 2)[1])
            except (IndexError, ValueError):
                raise LeanProtocolError(status_line[:80]) from None
            found = {}
            for line in header_lines:
                if ":" in line:
                    name, value = line.split(":", 1)
                    found[name.strip().lower()] = value.strip()
            if found.get("transfer-encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    if size == 0:
                        await reader.readuntil(b"\r\n")  # no trailers from our servers
                        break
                    chunks.append(await reader.readexactly(size))
                    await reader.readexactly(2)
                content = b"".join(chunks)
            else:
                content = await reader.readexactly(int(found.get("content-length", "0")))
            reusable = found.get("connection", "").lower() != "close"
            return LeanResponse(status, content)
        finally:
            if reusable:
                self._idle.append((reader, writer))
            else:
                writer.close()


def _json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class HttpClient(Protocol):
    async def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any: ...


def make_client(kind: str, base_url: str, *, timeout_s: float) -> Any:
    if kind == "httpx":
        limits = httpx.Limits(max_connections=2000, max_keepalive_connections=500)
        return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout_s)
    return LeanClient(base_url, timeout_s=timeout_s, max_connections=2000)


# --- the load generator (its own process) ------------------------------------------------------


@dataclass
class Sample:
    """One request (and for ``apply``, the application's way to the wallet)."""

    scheduled: float  # seconds after the phase started
    started: float = math.nan  # time.time() when the request was sent
    start_delay_ms: float = math.nan  # sent this late after its scheduled time
    http_ms: float = math.nan
    status_code: int | None = None
    error: str | None = None
    detail: str | None = None
    application_id: str | None = None
    certificate_id: str | None = None
    submitted_event: float | None = None  # envelope times (epoch s)
    issued_event: float | None = None
    issued_seen: float | None = None  # when the generator's reader had it
    read_done: float | None = None  # time.time() when the wallet read answered 200
    wallet_reads: int = 0


def _fail(sample: Sample, kind: str, detail: str | None = None) -> None:
    sample.error = kind
    sample.detail = detail[:300] if detail else None


class Certificates:
    """Futures of applications waiting for their ``certificate.issued``, resolved by one task
    that looks at what the reader saw every 10 ms (cheaper than a timer per application)."""

    def __init__(self, observations: Observations):
        self.observations = observations
        self.waiting: dict[str, asyncio.Future[None]] = {}

    def wait(self, application_id: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting[application_id] = future
        return future

    async def run(self) -> None:
        while True:
            trails = self.observations.trails
            for application_id in list(self.waiting):
                trail = trails.get(application_id)
                if trail is not None and trail.certificate_id is not None:
                    future = self.waiting.pop(application_id)
                    if not future.done():
                        future.set_result(None)
            await asyncio.sleep(0.01)


async def _request(
    client: HttpClient,
    sample: Sample,
    stage: str,
    method: str,
    url: str,
    *,
    expect: int,
    **kwargs: Any,
) -> httpx.Response | None:
    began = time.perf_counter()
    try:
        response = await client.request(method, url, **kwargs)
    except (httpx.TimeoutException, TimeoutError):
        _fail(sample, f"timeout ({stage})")
        return None
    except (
        httpx.HTTPError,
        OSError,
        asyncio.IncompleteReadError,
        asyncio.LimitOverrunError,
        LeanProtocolError,
    ) as exc:
        _fail(sample, f"{type(exc).__name__} ({stage})", str(exc))
        return None
    finally:
        if stage in ("submit", "get", "post"):
            sample.http_ms = (time.perf_counter() - began) * 1000
    if stage in ("submit", "get", "post"):
        sample.status_code = response.status_code
    if response.status_code != expect and not (
        (stage == "wallet" and response.status_code == 404)
        # 200: the gateway's call to intake was retried (the kit retries a failed transport
        # with the same Idempotency-Key) and intake answered the replay: the same application.
        or (stage == "submit" and response.status_code == 200)
    ):
        _fail(sample, f"HTTP {response.status_code} ({stage})", response.text)
        return None
    return response


async def _apply(
    client: HttpClient,
    spec: dict[str, Any],
    sample: Sample,
    citizen: dict[str, str],
    certificates: Certificates,
) -> None:
    auth = {"Authorization": f"Bearer {citizen['token']}", "X-Forwarded-For": citizen["ip"]}
    headers = {**auth, "Idempotency-Key": str(uuid.uuid4())}
    response = await _request(
        client,
        sample,
        "submit",
        "POST",
        "/api/v1/applications",
        expect=201,
        json=spec["body"],
        headers=headers,
    )
    if response is None:
        return
    body = response.json()
    sample.application_id = str(body["id"])
    if body.get("status") != "accepted":
        _fail(sample, f"not accepted at once ({body.get('status')})")
        return
    deadline = sample.started + spec["drain_timeout_s"]
    try:
        await asyncio.wait_for(
            certificates.wait(sample.application_id), max(deadline - time.time(), 0.01)
        )
    except TimeoutError:
        certificates.waiting.pop(sample.application_id, None)
        _fail(sample, f"no certificate.issued within {spec['drain_timeout_s']:.0f} s")
        return
    trail = certificates.observations.trails[sample.application_id]
    sample.certificate_id = trail.certificate_id
    sample.submitted_event, sample.issued_event = trail.submitted, trail.issued
    sample.issued_seen = trail.issued_seen
    while True:
        sample.wallet_reads += 1
        read = await _request(
            client, sample, "wallet", "GET", f"/api/v1/certificates/{trail.certificate_id}",
            expect=200, headers=auth,
        )  # fmt: skip
        if read is None:
            return
        if read.status_code == 200:
            sample.read_done = time.time()
            return
        if time.time() > deadline:
            _fail(sample, "certificate not in the wallet in time (404)")
            return
        await asyncio.sleep(spec["poll_s"])


async def _one(
    client: HttpClient,
    spec: dict[str, Any],
    sample: Sample,
    n: int,
    certificates: Certificates | None,
) -> None:
    citizens = spec["citizens"]
    citizen = citizens[(spec["citizen_offset"] + n) % len(citizens)]
    sample.started = time.time()
    kind = spec["kind"]
    if kind == "apply":
        assert certificates is not None
        await _apply(client, spec, sample, citizen, certificates)
    elif kind == "search":
        query = SEARCH_QUERIES[n % len(SEARCH_QUERIES)]
        await _request(
            client, sample, "get", "GET", "/api/v1/items", expect=200, params={"q": query},
            headers={"X-Forwarded-For": citizen["ip"]},
        )  # fmt: skip
    elif kind == "home":
        await _request(
            client, sample, "get", "GET", "/api/v1/home", expect=200,
            headers={"Authorization": f"Bearer {citizen['token']}",
                     "X-Forwarded-For": citizen["ip"]},
        )  # fmt: skip
    elif kind == "ceiling":
        await _request(client, sample, "post", "POST", "/work", expect=201, json=spec["body"])
    else:
        raise ValueError(f"unknown phase kind {kind!r}")


async def run_load(spec: dict[str, Any]) -> dict[str, Any]:
    """One phase: ``rate`` × ``seconds`` requests, open loop; returns the samples and the
    generator's own figures (CPU, start delays, rate achieved)."""
    rate, seconds = float(spec["rate"]), float(spec["seconds"])
    count = max(int(rate * seconds), 1)
    samples = [Sample(scheduled=n / rate) for n in range(count)]
    certificates: Certificates | None = None
    helpers: list[asyncio.Task[None]] = []
    if spec["kind"] == "apply":
        settings = Settings(
            database_url=spec["database_url"], kafka_bootstrap=spec["kafka_bootstrap"]
        )
        observations = Observations()
        ready = asyncio.Event()
        helpers.append(
            asyncio.create_task(
                read_events(
                    settings,
                    observations,
                    ready,
                    fetch_wait_ms=spec["reader_fetch_wait_ms"],
                    from_latest=True,
                )
            )
        )
        certificates = Certificates(observations)
        helpers.append(asyncio.create_task(certificates.run()))
        await asyncio.wait_for(ready.wait(), 60)
        await asyncio.sleep(1.0)  # partitions assigned and positioned at their ends
    try:
        async with make_client(
            spec["client"], spec["base_url"], timeout_s=spec["http_timeout_s"]
        ) as client:
            tasks = []
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for n, sample in enumerate(samples):
                delay = wall0 + sample.scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sample.start_delay_ms = max((time.perf_counter() - wall0 - sample.scheduled), 0.0)
                sample.start_delay_ms *= 1000
                tasks.append(asyncio.create_task(_one(client, spec, sample, n, certificates)))
            sent_s = time.perf_counter() - wall0
            cpu_sent = time.process_time() - cpu0
            # The HTTP answers of the last requests (and, for apply, the certificates) come in.
            await asyncio.gather(*tasks)
            total_s = time.perf_counter() - wall0
            cpu_total = time.process_time() - cpu0
    finally:
        for helper in helpers:
            helper.cancel()
        for helper in helpers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await helper
    return {
        "samples": [asdict(s) for s in samples],
        "rate_achieved": (count - 1) / sent_s if count > 1 and sent_s > 0 else math.nan,
        "generator": {
            "cpu_percent_of_one_core_while_sending": round(100 * cpu_sent / max(sent_s, 1e-9), 1),
            "cpu_percent_of_one_core_whole_phase": round(100 * cpu_total / max(total_s, 1e-9), 1),
            "send_window_s": round(sent_s, 2),
            "phase_s": round(total_s, 2),
            "start_delay_ms": summarize([s.start_delay_ms for s in samples]),
        },
    }


def load_main(spec_path: Path, out_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    result = asyncio.run(run_load(spec))
    out_path.write_text(json.dumps(result))
    return 0


# --- analysis ----------------------------------------------------------------------------------


def _ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or math.isnan(a) or math.isnan(b) else (b - a) * 1000


def _present(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and not math.isnan(v)]


def analyse(kind: str, rate: float, raw: dict[str, Any]) -> dict[str, Any]:
    samples = [Sample(**s) for s in raw["samples"]]
    failed = [s for s in samples if s.error]
    result: dict[str, Any] = {
        "kind": kind,
        "rate_asked": rate,
        "rate_achieved": round(raw["rate_achieved"], 1),
        "requests": len(samples),
        "errors": len(failed),
        "errors_by_kind": error_kinds([s.error for s in failed if s.error]),
        "error_examples": sorted({f"{s.error}: {s.detail}" for s in failed if s.detail})[:3],
        "generator": raw["generator"],
    }
    if kind == "apply":
        done = [s for s in samples if s.read_done is not None]
        latency = [(s.scheduled, (s.read_done - s.started) * 1000) for s in done if s.read_done]
        result.update(
            completed=len(done),
            # Failed submissions count as errors only; an application accepted whose
            # certificate never became readable counts here too.
            not_completed=sum(1 for s in samples if s.application_id and s.read_done is None),
            latency_ms=summarize([ms for _, ms in latency]),
            stages_ms={
                "POST /api/v1/applications (HTTP)": summarize(
                    _present([s.http_ms for s in samples if s.status_code])
                ),
                "submitted → certificate.issued (events)": summarize(
                    _present([_ms(s.submitted_event, s.issued_event) for s in done])
                ),
                "certificate.issued → seen by reader": summarize(
                    _present([_ms(s.issued_event, s.issued_seen) for s in done])
                ),
                "seen → wallet read answered": summarize(
                    _present([_ms(s.issued_seen, s.read_done) for s in done])
                ),
            },
            submit_replays=sum(1 for s in samples if s.status_code == 200),
            wallet_reads_per_application=round(
                sum(s.wallet_reads for s in done) / max(len(done), 1), 2
            ),
        )
    else:
        latency = [(s.scheduled, s.http_ms) for s in samples if s.error is None]
        result["latency_ms"] = summarize([ms for _, ms in latency])
    result["trend"] = latency_trend(latency)
    result["problems"] = phase_problems(result)
    result["generator_behind_schedule"] = raw["generator"]["start_delay_ms"]["p99"] > BEHIND_P99_MS
    result["samples"] = [
        {
            "scheduled_s": round(s.scheduled, 3),
            "start_delay_ms": round(s.start_delay_ms, 2),
            "http_ms": round(s.http_ms, 2) if not math.isnan(s.http_ms) else None,
            "latency_ms": (
                round((s.read_done - s.started) * 1000, 2)
                if s.read_done is not None
                else (round(s.http_ms, 2) if kind != "apply" and s.error is None else None)
            ),
            "error": s.error,
            "application_id": s.application_id,
        }
        for s in samples
    ]
    return result


# --- memory ------------------------------------------------------------------------------------


def _tree_rss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        total = root.memory_info().rss
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return int(total)
    except psutil.Error:
        return 0


class MemoryWatch:
    """Peak RSS (the process and its children) of each named process, per labelled window,
    sampled every 200 ms."""

    def __init__(self) -> None:
        self.pids: dict[str, int] = {}
        self.window = "setup"
        self.peaks: dict[str, dict[str, float]] = {}

    def sample(self) -> None:
        peaks = self.peaks.setdefault(self.window, {})
        for name, pid in list(self.pids.items()):
            mb = _tree_rss(pid) / 2**20
            if mb > peaks.get(name, 0.0):
                peaks[name] = round(mb, 1)

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.2)


# --- setup -------------------------------------------------------------------------------------


async def create_citizens(settings: Settings, applicant: Applicant, count: int) -> list[str]:
    """``count`` mini-program accounts made by the gateway's own code (its WeChat login, then
    the verified name and ID number as 实名 and 实人 store them), all holding the persona.

    The gateway allows one account per person (``person_ref`` is unique), so these accounts do
    not carry the blind index; the access tokens minted for them do (intake checks the
    applicant against it, the wallet is found by it)."""
    from gateway import accounts
    from gateway.wechat import WeChatSession
    from wangban.auth import AssuranceLevel
    from wangban.crypto import FieldCipher
    from wangban.db import Database

    cipher = FieldCipher.from_settings(settings)
    person = cast(dict[str, str], applicant.body["applicant"])
    tag = uuid.uuid4().hex[:8]
    now = datetime.now(UTC)
    subjects = []
    database = Database.from_settings(settings)
    try:
        async with database.sessionmaker() as session, session.begin():
            for n in range(count):
                account = await accounts.wechat_login(
                    session,
                    wechat=WeChatSession(openid=f"o-bench-{tag}-{n}", unionid=None),
                    now=now,
                )
                account.name_enc = cipher.encrypt(
                    person["name"], context=accounts.ACCOUNT_HOLDER_CONTEXT
                )
                account.id_number_enc = cipher.encrypt(
                    person["id_number"], context=accounts.ACCOUNT_HOLDER_CONTEXT
                )
                account.real_name_at = account.real_person_at = now
                account.assurance = int(AssuranceLevel.REAL_PERSON)
                subjects.append(account.subject)
            await session.flush()
    finally:
        await database.dispose()
    return subjects


def citizen_tokens(
    settings: Settings, subjects: Sequence[str], person_ref: str | None
) -> list[dict[str, str]]:
    """A gateway access token for each account (as its login returns), and an address of its
    own (``X-Forwarded-For``: the gateway trusts 127.0.0.1 as its proxy,
    ``WANGBAN_TRUSTED_PROXIES``)."""
    from gateway.sessions import ISSUER, client_tokens
    from wangban.auth import AssuranceLevel, Identity

    tokens = client_tokens(settings)
    return [
        {
            "token": tokens.issue(
                Identity(
                    subject=subject,
                    kind="citizen",
                    assurance=AssuranceLevel.REAL_PERSON,
                    person_ref=person_ref,
                ),
                issuer=ISSUER,
                # A family of its own, as a login gives: the gateway refuses tokens without.
                family=str(uuid.uuid4()),
            ),
            "ip": f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}",
        }
        for n, subject in enumerate(subjects)
    ]


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Children:
    """Every process the run starts, so that the end of the run can stop each by its id."""

    services: ServiceProcesses | None = None
    ceiling: subprocess.Popen[bytes] | None = None
    generator_pid: int | None = None
    logs: list[Any] = field(default_factory=list)

    def stop_all(self) -> None:
        if self.generator_pid is not None:
            kill_tree(self.generator_pid)
            self.generator_pid = None
        if self.services is not None:
            self.services.stop()
        stop_process(self.ceiling)
        for log in self.logs:
            log.close()
        self.logs.clear()


def stop_process(child: subprocess.Popen[bytes] | None) -> None:
    if child is None or child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=15)
    except subprocess.TimeoutExpired:
        kill_tree(child.pid)
        child.wait(timeout=5)


@dataclass
class Run:
    args: argparse.Namespace
    infra: Infrastructure
    settings: Settings
    children: Children
    memory: MemoryWatch
    cpu_roots: dict[str, int | None]
    citizens: list[str] = field(default_factory=list)
    person_ref: str | None = None
    body: dict[str, Any] = field(default_factory=dict)
    offset: int = 0
    spec_dir: Path = Path()
    generator_log: IO[bytes] | None = None
    metrics_urls: dict[str, str] = field(default_factory=dict)
    """Whose ``/metrics`` to read before and after each phase (per-route HTTP figures)."""
    idle_cpu: dict[str, Any] | None = None

    async def phase(
        self, kind: str, rate: float, base_url: str, *, seconds: float, label: str | None = None
    ) -> dict[str, Any]:
        """One phase by a load generator process; its analysed result."""
        spec = {
            "kind": kind,
            "rate": rate,
            "seconds": seconds,
            "base_url": base_url,
            "body": self.body,
            "citizens": citizen_tokens(self.settings, self.citizens, self.person_ref),
            "citizen_offset": self.offset,
            "database_url": self.infra.database_url,
            "kafka_bootstrap": self.infra.kafka_bootstrap,
            "reader_fetch_wait_ms": self.args.reader_fetch_wait_ms,
            "drain_timeout_s": self.args.drain_timeout,
            "http_timeout_s": self.args.http_timeout,
            "poll_s": self.args.poll_ms / 1000,
            "client": self.args.client,
        }
        self.offset += max(int(rate * seconds), 1)
        label = label or f"{kind} {rate:g}/s"
        stem = self.spec_dir / f"{kind}-{rate:g}-{uuid.uuid4().hex[:6]}"
        spec_path, out_path = stem.with_suffix(".spec.json"), stem.with_suffix(".out.json")
        spec_path.write_text(json.dumps(spec, ensure_ascii=False))
        log = self.generator_log
        cpu = CpuWatch(self.cpu_roots)
        metrics_before = await scrape_http_metrics(self.metrics_urls)
        self.memory.window = label
        cpu.start()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.platform_load", "--role", "load",
            "--spec", str(spec_path), "--out", str(out_path),
            cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.children.generator_pid = process.pid
        code = await process.wait()
        self.children.generator_pid = None
        used = cpu.stop()
        self.memory.window = "between phases"
        metrics_after = await scrape_http_metrics(self.metrics_urls)
        spec_path.unlink(missing_ok=True)  # it holds access tokens
        if code != 0:
            raise RuntimeError(
                f"the load generator failed ({code}); see {self.spec_dir}/loadgen.log"
            )
        result = analyse(kind, rate, json.loads(out_path.read_text()))
        result["label"] = label
        result["cpu"] = used
        result["cpu_ms_per_request"] = cpu_per_request(used, self.idle_cpu, result["requests"])
        result["http_routes"] = metrics_delta(metrics_before, metrics_after)
        print(_row(result), flush=True)
        await asyncio.sleep(self.args.pause)
        return result

    async def escalate(self, kind: str, base_url: str) -> list[dict[str, Any]]:
        results = []
        for rate in self.args.rates:
            result = await self.phase(kind, rate, base_url, seconds=self.args.seconds)
            results.append(result)
            if result["problems"]:
                print(f"  {kind} failed at {rate:g}/s: {'; '.join(result['problems'])}")
                break
        return results


async def measure_idle(run: Run) -> dict[str, Any]:
    """The idle platform alone: ready, settled for ``--settle-seconds``, then ``--idle-seconds``
    of nothing but its own background work (fetch long-polls, heartbeats, the relays' and the
    workers' polls)."""
    args, services = run.args, run.children.services
    assert services is not None
    sampler = asyncio.create_task(run.memory.run())
    try:
        started = time.monotonic()
        await services.wait_ready(timeout_s=180)
        print(f"platform ready in {time.monotonic() - started:.1f} s", flush=True)
        await asyncio.sleep(args.settle_seconds)
        run.memory.window = "idle"
        watch = CpuWatch(run.cpu_roots)
        watch.start()
        await asyncio.sleep(args.idle_seconds)
        idle = watch.stop()
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    return {"idle_cpu": idle}


def idle_summary(idle: dict[str, Any]) -> str:
    per = idle["process_percent_of_one_core"]
    total = sum(per.values())
    return (
        f"idle CPU over {idle['window_s']} s, % of one core: "
        + ", ".join(f"{k} {v}" for k, v in per.items())
        + f"; platform total {total:.1f} ({total / 100:.3f} core); "
        + f"machine {idle['machine_busy_percent']}% busy, "
        + f"everything else {idle['other_percent_of_one_core']}"
    )


async def measure(run: Run) -> dict[str, Any]:
    from wangban.db import Database

    args, settings, services = run.args, run.settings, run.children.services
    assert services is not None
    sampler = asyncio.create_task(run.memory.run())
    try:
        started = time.monotonic()
        await services.wait_ready(timeout_s=180)
        database = Database.from_settings(settings)
        try:
            version = await item_version_everywhere(database, timeout_s=120)
        finally:
            await database.dispose()
        applicant = Applicant(settings, version["content"], version["id"])
        run.person_ref = applicant.identity.person_ref
        run.body = {
            "item_code": ELDERLY_ALLOWANCE,
            "form": applicant.body["form"],
            "materials": applicant.body["materials"],
        }
        run.citizens = await create_citizens(settings, applicant, args.citizens)
        print(
            f"platform ready in {time.monotonic() - started:.1f} s (logs: {services.logs}); "
            f"{len(run.citizens)} citizens as persona {applicant.persona_key}",
            flush=True,
        )
        gateway = services.urls["gateway"]
        await asyncio.sleep(args.settle_seconds)
        run.memory.window = "idle"
        idle_cpu = CpuWatch(run.cpu_roots)
        idle_cpu.start()
        await asyncio.sleep(args.idle_seconds)
        idle = idle_cpu.stop()
        run.idle_cpu = idle
        print(idle_summary(idle), flush=True)
        run.metrics_urls = dict(services.urls)
        warmup = await run.phase(
            "apply", args.rates[0], gateway, seconds=args.warmup_seconds, label="apply warm-up"
        )
        search = home = None
        if "search" not in args.skip:
            search = await run.phase("search", args.search_rate, gateway, seconds=args.seconds)
        if "home" not in args.skip:
            home = await run.phase("home", args.home_rate, gateway, seconds=args.seconds)
        apply = await run.escalate("apply", gateway)
        ceiling: list[dict[str, Any]] = []
        if "ceiling" in args.skip:
            return {
                "item": {"code": ELDERLY_ALLOWANCE, "version_id": version["id"]},
                "persona": applicant.persona_key,
                "citizens": len(run.citizens),
                "idle_cpu": idle,
                "warmup": warmup,
                "search": search,
                "home": home,
                "apply": apply,
                "ceiling": ceiling,
            }
        # The ceiling gets the machine the platform had: the services are stopped first.
        run.memory.window = "stopping"
        services.stop()
        run.memory.pids = {}
        run.metrics_urls = {}
        run.idle_cpu = None  # the ceiling's idle is nothing: its CPU counts whole
        ceiling_port = free_port()
        run.children.ceiling = start_ceiling(run.children, services, ceiling_port)
        ceiling_url = f"http://127.0.0.1:{ceiling_port}"
        await wait_ready(run.children.ceiling, ceiling_url, timeout_s=60)
        run.memory.pids = {"ceiling": run.children.ceiling.pid}
        run.cpu_roots = {
            "ceiling": run.children.ceiling.pid,
            "postgres": run.infra.postgres_pid,
            "broker": run.infra.broker_pid,
        }
        await run.phase(
            "ceiling",
            args.rates[0],
            ceiling_url,
            seconds=args.warmup_seconds,
            label="ceiling warm-up",
        )
        ceiling = await run.escalate("ceiling", ceiling_url)
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    return {
        "item": {"code": ELDERLY_ALLOWANCE, "version_id": version["id"]},
        "persona": applicant.persona_key,
        "citizens": len(run.citizens),
        "idle_cpu": idle,
        "warmup": warmup,
        "search": search,
        "home": home,
        "apply": apply,
        "ceiling": ceiling,
    }


def start_ceiling(
    children: Children, services: ServiceProcesses, port: int
) -> subprocess.Popen[bytes]:
    log = open(services.logs / "ceiling.log", "ab")
    children.logs.append(log)
    return subprocess.Popen(
        [sys.executable, "-m", "bench.ceiling", "--port", str(port)],
        env=services.env,
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def wait_ready(child: subprocess.Popen[bytes], url: str, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            if child.poll() is not None:
                raise RuntimeError(f"{url} exited with {child.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} not ready in time")
            await asyncio.sleep(0.3)


def conclude(measured: dict[str, Any], memory: MemoryWatch) -> dict[str, Any]:
    apply, ceiling = measured["apply"], measured["ceiling"]
    held, ceiling_held = highest_held(apply), highest_held(ceiling)
    by_rate = {c["rate_asked"]: c for c in ceiling}
    comparisons = []
    for phase in apply:
        c = by_rate.get(phase["rate_asked"])
        if c is None:
            continue
        http = phase["stages_ms"]["POST /api/v1/applications (HTTP)"]
        comparisons.append(
            {
                "rate": phase["rate_asked"],
                "to_wallet_over_ceiling": {
                    k: ratio(phase["latency_ms"][k], c["latency_ms"][k])
                    for k in ("p50", "p95", "p99", "max")
                },
                "submit_http_over_ceiling": {
                    k: ratio(http[k], c["latency_ms"][k]) for k in ("p50", "p95", "p99", "max")
                },
                "cpu_ms_per_application": phase["cpu_ms_per_request"]["total"],
                "ceiling_cpu_ms_per_request": c["cpu_ms_per_request"]["total"],
                "cpu_over_ceiling": ratio(
                    phase["cpu_ms_per_request"]["total"], c["cpu_ms_per_request"]["total"]
                ),
            }
        )
    steady = next((p for p in apply if p["rate_asked"] == held), apply[-1] if apply else None)
    steady_window = steady["label"] if steady else None
    idle_peaks = memory.peaks.get("idle", {})
    loaded_peaks = memory.peaks.get(steady_window or "", {})
    services = sorted(set(idle_peaks) | set(loaded_peaks))
    memory_report = {
        "target_mb": MEMORY_TARGET_MB,
        "steady_window": steady_window,
        "services": {
            name: {
                "idle_peak_mb": idle_peaks.get(name),
                "loaded_peak_mb": loaded_peaks.get(name),
                "within_target": max(idle_peaks.get(name, 0.0), loaded_peaks.get(name, 0.0))
                < MEMORY_TARGET_MB,
            }
            for name in services
        },
        "peaks_by_window": memory.peaks,
    }
    return {
        **measured,
        "highest_rate_held": held,
        "ceiling_highest_rate_held": ceiling_held,
        "held_over_ceiling_held": (
            ratio(held, ceiling_held) if held is not None and ceiling_held else None
        ),
        "vs_ceiling": comparisons,
        "memory": memory_report,
    }


def run_benchmark(args: argparse.Namespace, infra: Infrastructure) -> dict[str, Any]:
    # The load generator stands in for the ingress: its X-Forwarded-For (each citizen's own
    # address) is believed only from a trusted proxy, else every citizen is 127.0.0.1 and
    # shares one address's submission limit.
    setup = platform_setup(infra, WANGBAN_TRUSTED_PROXIES='["127.0.0.1"]')
    settings, env = setup.settings, setup.env
    asyncio.run(prepare(settings))
    services = ServiceProcesses(
        env,
        infra.data_dir / "logs",
        setup.urls(SERVICE_NAMES),
    )
    children = Children(services=services)
    memory = MemoryWatch()
    spec_dir = infra.data_dir / "loadgen"
    spec_dir.mkdir(parents=True, exist_ok=True)
    generator_log = open(spec_dir / "loadgen.log", "ab")
    children.logs.append(generator_log)
    try:
        services.start(SERVICE_NAMES)
        memory.pids = {name: services.pid(name) for name in SERVICE_NAMES}
        run = Run(
            args=args,
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
        if args.idle_only:
            return asyncio.run(measure_idle(run))
        measured = asyncio.run(measure(run))
    finally:
        # Not interrupted by a second Ctrl-C or SIGTERM: nothing we started may outlive the run.
        previous = {
            sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            children.stop_all()
            with contextlib.suppress(Exception):
                from bench.ceiling import drop_scratch

                asyncio.run(drop_scratch(settings))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return conclude(measured, memory)


# --- report ------------------------------------------------------------------------------------


def _f(value: float | None, width: int = 7, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{'n/a':>{width}}"
    return f"{value:{width}.{digits}f}"


HEADER = (
    f"{'phase':<24}{'asked':>7}{'got':>7}{'n':>6}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}"
    f"{'err':>5}{'q1→q4 p50':>14}{'gen CPU%':>9}{'late p99':>9}  verdict"
)


def _row(r: dict[str, Any]) -> str:
    lat, trend, gen = r["latency_ms"], r["trend"], r["generator"]
    verdict = "; ".join(r["problems"]) or "held"
    if r["generator_behind_schedule"]:
        verdict += " [generator behind schedule]"
    return (
        f"{r.get('label', r['kind']):<24}{_f(r['rate_asked'], 7, 0)}{_f(r['rate_achieved'])}"
        f"{r['requests']:>6}{_f(lat['p50'], 8)}{_f(lat['p95'], 8)}{_f(lat['p99'], 8)}"
        f"{_f(lat['max'], 8)}{r['errors']:>5}"
        f"{_f(trend['first_quarter_p50'], 7, 0)}→{_f(trend['last_quarter_p50'], 6, 0)}"
        f"{_f(gen['cpu_percent_of_one_core_while_sending'], 9)}"
        f"{_f(gen['start_delay_ms']['p99'], 9)}  {verdict}"
    )


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['platform']}, Python {m['python']}; "
        f"{m.get('cpu_busy_percent_before_start')}% busy before start",
        f"kit: {report['kit']}; postgres: {report['postgres']}; broker: {report['broker']}",
        f"{report['citizens']} citizens (distinct accounts), all the sandbox persona "
        f"{report['persona']} (the one who passes {ELDERLY_ALLOWANCE})",
        "latency ms: search/home/ceiling = HTTP response; apply = submit start → certificate "
        "read through GET /api/v1/certificates/{id}",
        "",
        HEADER,
    ]
    phases = [
        r for r in (report["warmup"], report["search"], report["home"], *report["apply"]) if r
    ]
    lines.extend(_row(r) for r in phases)
    lines.extend(_row(r) for r in report["ceiling"])
    lines.append("")
    for r in report["apply"]:
        lines.append(f"{r['label']}: stages (ms, p50 / p99 / max)")
        for name, s in r["stages_ms"].items():
            lines.append(f"  {name:<42}{_f(s['p50'])} /{_f(s['p99'])} /{_f(s['max'])}")
        lines.append(
            f"  wallet reads per application: {r['wallet_reads_per_application']}; submissions "
            f"answered 200 (the gateway's retry to intake, replayed): {r['submit_replays']}"
        )
    for r in phases + report["ceiling"]:
        if r["errors"]:
            lines.append(f"errors of {r['label']}: {r['errors_by_kind']} {r['error_examples']}")
    lines.append("")

    def held(rate: float | None) -> str:
        return "none" if rate is None else f"{rate:g}/s"

    asked = ", ".join(f"{r:g}" for r in report["options"]["rates"])
    lines.append(
        f"highest 秒批 rate held: {held(report['highest_rate_held'])} (of {asked}/s); "
        f"ceiling: {held(report['ceiling_highest_rate_held'])}; "
        f"ours / ceiling: {report['held_over_ceiling_held']}"
    )
    for c in report["vs_ceiling"]:
        lines.append(
            f"  at {c['rate']:g}/s, ours / ceiling — submit→wallet: "
            + " ".join(f"{k} {v}" for k, v in c["to_wallet_over_ceiling"].items())
            + "; submit HTTP alone: "
            + " ".join(f"{k} {v}" for k, v in c["submit_http_over_ceiling"].items())
            + f"; CPU ms per request {c['cpu_ms_per_application']} vs "
            + f"{c['ceiling_cpu_ms_per_request']} (×{c['cpu_over_ceiling']})"
        )
    mem = report["memory"]
    lines.append("")
    lines.append(
        f"peak RSS (MB, process + children; target {mem['target_mb']:.0f}): idle / "
        f"under {mem['steady_window']}"
    )
    for name, v in mem["services"].items():
        lines.append(
            f"  {name:<10}{_f(v['idle_peak_mb'], 8)} /{_f(v['loaded_peak_mb'], 8)}  "
            + ("ok" if v["within_target"] else "OVER")
        )
    ceiling_peak = max(
        (w.get("ceiling", 0.0) for w in mem["peaks_by_window"].values()), default=0.0
    )
    lines.append(f"  {'ceiling':<10}{_f(ceiling_peak, 8)} (any phase)")
    lines.append("")
    lines.append(idle_summary(report["idle_cpu"]))
    lines.append("CPU % of one core per phase:")
    for r in [r for r in phases[1:] if r] + report["ceiling"]:
        cpu = r["cpu"]
        lines.append(
            f"  {r['label']:<22} machine {cpu['machine_busy_percent']}% busy; "
            + ", ".join(f"{k} {v}" for k, v in cpu["process_percent_of_one_core"].items())
            + f"; load generator {r['generator']['cpu_percent_of_one_core_whole_phase']}"
            + f"; everything else {cpu['other_percent_of_one_core']}"
        )
        lines.append(
            f"    CPU ms per request (above idle; broker not counted): "
            f"{r['cpu_ms_per_request']['total']}"
        )
        for service, routes in r["http_routes"].items():
            lines.append(
                f"    {service}: "
                + ", ".join(
                    f"{k} ×{v['requests']:.0f} mean {v['mean_ms']} ms" for k, v in routes.items()
                )
            )
    return "\n".join(lines)


def render_idle(report: dict[str, Any]) -> str:
    m = report["machine"]
    return "\n".join(
        [
            f"machine: {m['nproc']} CPUs ({m['cpu_model']}); "
            f"{m.get('cpu_busy_percent_before_start')}% busy before start",
            f"kit: {report['kit']}; postgres: {report['postgres']}; broker: {report['broker']}; "
            f"fetch wait {report['fetch_max_wait_ms']} ms",
            idle_summary(report["idle_cpu"]),
        ]
    )


def _rates(value: str) -> list[float]:
    rates = sorted({float(v) for v in value.split(",") if v.strip()})
    if not rates or rates[0] <= 0:
        raise argparse.ArgumentTypeError("rates must be positive numbers, comma-separated")
    return rates


def _plain(value: Any) -> Any:
    """An option as JSON can hold it."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, frozenset):
        return sorted(value)
    return value


def _phases(value: str) -> frozenset[str]:
    phases = frozenset(p.strip() for p in value.split(",") if p.strip())
    unknown = phases - {"search", "home", "ceiling"}
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown phases: {', '.join(sorted(unknown))}")
    return phases


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.platform_load")
    parser.add_argument("--rates", type=_rates, default=[10.0, 25.0, 50.0, 100.0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--search-rate", type=float, default=200.0, help="catalogue searches/s")
    parser.add_argument("--home-rate", type=float, default=50.0, help="home screens/s")
    parser.add_argument("--citizens", type=int, default=500, help="logged-in citizen accounts")
    parser.add_argument("--warmup-seconds", type=float, default=3.0, help="uncounted first")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="idle memory and CPU")
    parser.add_argument(
        "--settle-seconds", type=float, default=5.0, help="wait after ready, before idle"
    )
    parser.add_argument(
        "--idle-only", action="store_true", help="measure the idle platform only, then stop"
    )
    parser.add_argument(
        "--skip",
        type=_phases,
        default=frozenset(),
        help="phases to leave out, comma-separated: search, home, ceiling",
    )
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between phases")
    parser.add_argument("--poll-ms", type=float, default=50.0, help="wallet re-read on 404")
    parser.add_argument("--reader-fetch-wait-ms", type=int, default=50)
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    parser.add_argument("--http-timeout", type=float, default=30.0)
    parser.add_argument(
        "--client",
        choices=["lean", "httpx"],
        default="lean",
        help="the generator's HTTP client: lean (keep-alive HTTP/1.1 on asyncio streams) or httpx",
    )
    parser.add_argument("--json", type=Path, help="write the report (with samples) here")
    parser.add_argument("--data-dir", type=Path, help="PostgreSQL data and logs (default: temp)")
    parser.add_argument("--role", choices=["main", "load"], default="main", help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "main":
        if args.seconds <= 0 or args.search_rate <= 0 or args.home_rate <= 0:
            parser.error("--seconds, --search-rate and --home-rate must be > 0")
        if args.citizens < 1:
            parser.error("--citizens must be >= 1")
    return args


def _stop_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt  # unwinds through every finally: processes, broker, PostgreSQL


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "load":
        return load_main(args.spec, args.out)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    limit = Settings().gateway_submissions_per_minute_per_user
    per_citizen = max(args.rates) * min(args.seconds, 60.0) / args.citizens
    if per_citizen > 0.8 * limit:
        print(
            f"warning: {per_citizen:.0f} submissions per citizen per minute at the top rate, "
            f"near the gateway's limit of {limit}: raise --citizens",
            file=sys.stderr,
        )
    busy_before = psutil.cpu_percent(interval=1.0)
    if busy_before > 30:
        print(f"warning: the machine is already {busy_before:.0f}% busy", file=sys.stderr)
    print(HEADER, flush=True)
    try:
        with infrastructure(args.data_dir) as infra:
            result = run_benchmark(args, infra)
            report = {
                "benchmark": "platform_load",
                "options": {k: _plain(v) for k, v in vars(args).items()},
                **result,
                "machine": machine_facts() | {"cpu_busy_percent_before_start": busy_before},
                "kit": kit_revision(),
                "postgres": infra.postgres,
                "broker": infra.broker,
                "fetch_max_wait_ms": Settings().kafka_fetch_max_wait_ms,
            }
    except KeyboardInterrupt:
        print("interrupted: every process the run started has been stopped", file=sys.stderr)
        return 130
    print()
    print(render_idle(report) if args.idle_only else render(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
