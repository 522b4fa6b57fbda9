"""Cold start: ``wangban up`` on an empty data directory, and the moment it says it is up,
citizens apply through the gateway, one right after another. The first application is decided
by machine (秒批) like the tenth: none answers 404 because intake has not read the catalogue
yet, none goes to a person because approval has not read it yet. "Ready" means ready."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox import PERSONAS, ItemClaim, Persona
from wangban.embedded import free_ports
from wangban.settings import SERVICE_NAMES

pytestmark = pytest.mark.slow  # left out of `./dev test --fast`

ROOT = Path(__file__).resolve().parents[2]
DEMO_ITEMS = ROOT / "catalog_service" / "demo" / "items.json"
APPLICATIONS = 10
UP_WITHIN_S = 240.0
DECIDED_WITHIN_S = 120.0


def _claims() -> list[tuple[Persona, ItemClaim, dict[str, Any]]]:
    """Personas' passing 秒批 claims that need nothing but shared data and commitments (no
    upload for a clerk, no certificate that another application must issue first)."""
    items = {
        i["implementing_code"]: i
        for i in json.loads(DEMO_ITEMS.read_text("utf-8"))
        if i.get("auto_approval")
        and all(m["source"].split(":")[0] in ("shared", "commitment") for m in i["materials"])
    }
    return [
        (persona, claim, items[claim.item_code])
        for persona in PERSONAS
        for claim in persona.claims
        if claim.item_code in items and claim.outcome == "pass" and claim.as_company is None
    ]


def _read_lines(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def _wait_for_up(up: subprocess.Popen[str], lines: queue.Queue[str], seen: list[str]) -> None:
    deadline = time.monotonic() + UP_WITHIN_S
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            if up.poll() is not None:
                raise AssertionError("wangban up exited early:\n" + "".join(seen)) from None
            continue
        seen.append(line)
        if line.startswith("Wangban is up"):
            return
    raise AssertionError("wangban up did not say it was up:\n" + "".join(seen))


def test_the_first_application_after_up_is_decided_by_machine_like_the_tenth(
    tmp_path: Path,
) -> None:
    claims = _claims()
    assert len(claims) >= APPLICATIONS
    *service_ports, broker_port = free_ports(len(SERVICE_NAMES) + 1)
    ports = dict(zip(SERVICE_NAMES, service_ports, strict=True))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANGBAN_")}
    env.update({f"WANGBAN_{name.upper()}_PORT": str(port) for name, port in ports.items()})
    env["WANGBAN_EMBEDDED_KAFKA_PORT"] = str(broker_port)
    env["WANGBAN_DATA_DIR"] = str(tmp_path / "wangban-data")
    env["WANGBAN_KAFKA_SESSION_TIMEOUT_MS"] = "2000"
    env["WANGBAN_KAFKA_HEARTBEAT_INTERVAL_MS"] = "300"
    gateway = f"http://127.0.0.1:{ports['gateway']}/api/v1"

    up = subprocess.Popen(
        [sys.executable, "-m", "wangban", "up"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    threading.Thread(target=_read_lines, args=(up.stdout, lines), daemon=True).start()
    try:
        _wait_for_up(up, lines, seen)
        with httpx.Client(base_url=gateway, timeout=30) as api:
            # At once: log in and apply, one application right after another.
            applied: list[tuple[str, str, dict[str, str], str]] = []
            accounts: dict[str, dict[str, str]] = {}  # one account per person
            for persona, claim, item in claims[:APPLICATIONS]:
                if persona.key not in accounts:
                    login = api.post(
                        "/auth/dev",
                        json={
                            "openid": f"o-{uuid.uuid4().hex}",
                            "assurance": "real_person",
                            "name": persona.name,
                            "id_number": persona.id_number,
                        },
                    )
                    assert login.status_code == 200, login.text
                    token = login.json()["access_token"]
                    accounts[persona.key] = {"Authorization": f"Bearer {token}"}
                headers = accounts[persona.key]
                answer = api.post(
                    "/applications",
                    json={
                        "item_code": claim.item_code,
                        "form": persona.form(claim.item_code, today=date.today()),
                        "materials": [
                            {"index": i, "commitment": True}
                            for i, m in enumerate(item["materials"])
                            if m["source"] == "commitment"
                        ],
                    },
                    headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
                )
                what = f"application {len(applied) + 1} ({persona.key} → {item['name']})"
                assert answer.status_code == 201, f"{what}: {answer.status_code} {answer.text}"
                assert answer.json()["status"] == "accepted", f"{what}: {answer.text}"
                wanted = "delivered" if item["result_kind"] == "certificate" else "completed"
                applied.append((what, answer.json()["id"], headers, wanted))

            # Each reaches its result with no person involved: approved by the rules.
            deadline = time.monotonic() + DECIDED_WITHIN_S
            pending = list(applied)
            last: dict[str, Any] = {}
            while pending and time.monotonic() < deadline:
                for entry in list(pending):
                    what, application_id, headers, wanted = entry
                    got = api.get(f"/applications/{application_id}", headers=headers).json()
                    last[what] = (got.get("status"), got.get("status_reason"))
                    if got.get("status") == wanted:
                        statuses = [t["to_status"] for t in got["timeline"]]
                        assert "approved" in statuses, f"{what}: {statuses}"
                        assert all(t["actor_kind"] != "staff" for t in got["timeline"]), what
                        pending.remove(entry)
                if pending:
                    time.sleep(0.5)
            assert not pending, "not decided by machine: " + "; ".join(
                f"{what} stayed {last.get(what)}" for what, *_ in pending
            )
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(timeout=90)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()
        with contextlib.suppress(Exception):
            if up.stdout is not None:
                up.stdout.close()
