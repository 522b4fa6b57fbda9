"""Sampling profiles of the service processes while a benchmark runs (py-spy), and where their
CPU goes: by library of the innermost frame, and by our own functions (inclusive).

py-spy samples another process from outside (ptrace), so the services run unmodified; its own
sampling costs CPU on the same cores, which is why a profiled run's latencies are not reported
as results.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_LIBRARY = re.compile(r"\(([A-Za-z_][\w.]*)/")
_MODULE = re.compile(r"\(([\w.]+)\.py:")
_OURS = re.compile(r"\((wangban|\w+_service)/")
_LINE = re.compile(r":\d+\)$")


def library_of(frame: str) -> str:
    """``Session.flush (sqlalchemy/orm/session.py:4626)`` → ``sqlalchemy``; a frame of a
    top-level standard module (``(base64.py:…)``) → ``stdlib:base64``."""
    found = _LIBRARY.search(frame)
    if found:
        return found.group(1)
    module = _MODULE.search(frame)
    if module:
        return f"stdlib:{module.group(1)}"
    return "other" if frame.strip() else "native"


@dataclass(frozen=True)
class ProfileSummary:
    samples: int
    by_library: list[tuple[str, float]]
    """Share of samples (percent) whose innermost frame is in each library."""
    ours_inclusive: list[tuple[str, float]]
    """Share of samples (percent) with each of our functions anywhere on the stack."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "by_library": [{"library": k, "percent": v} for k, v in self.by_library],
            "ours_inclusive": [{"frame": k, "percent": v} for k, v in self.ours_inclusive],
        }


def summarise(raw: Path, *, top: int = 15) -> ProfileSummary:
    """Read py-spy's ``--format raw`` output (collapsed stacks: ``f1;f2;f3 count``)."""
    libraries: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        libraries[library_of(frames[-1])] += count
        # Stripped of the line number, so a function counts once however many lines sampled.
        for name in {_LINE.sub(")", f) for f in frames if _OURS.search(f)}:
            ours[name] += count
    share = 100.0 / max(total, 1)
    return ProfileSummary(
        samples=total,
        by_library=[(k, round(v * share, 1)) for k, v in libraries.most_common(top)],
        ours_inclusive=[(k, round(v * share, 1)) for k, v in ours.most_common(top)],
    )


def find_py_spy() -> str | None:
    """py-spy beside this interpreter (a venv's bin/, not always on PATH), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Profiler:
    """One ``py-spy record`` per process for a fixed time; raw stacks into ``out_dir``."""

    def __init__(self, out_dir: Path, *, rate_hz: int = 100) -> None:
        executable = find_py_spy()
        if executable is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self.executable = executable
        self.out_dir = out_dir
        self.rate_hz = rate_hz
        self._running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, pids: dict[str, int], *, seconds: float) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            self._running[name] = subprocess.Popen(
                [
                    self.executable,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(max(int(seconds), 1)),
                    "--rate",
                    str(self.rate_hz),
                    "--format",
                    "raw",
                    "--output",
                    str(self.out_dir / f"{name}.txt"),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def finish(self) -> dict[str, ProfileSummary]:
        summaries: dict[str, ProfileSummary] = {}
        for name, process in self._running.items():
            process.wait(timeout=60)
            raw = self.out_dir / f"{name}.txt"
            if raw.exists():
                summaries[name] = summarise(raw)
        self._running.clear()
        return summaries
