"""bench.search_load's query mix and its analysis: the same realistic mix on every run, and
figures computed from scheduled starts only over the measured requests."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.search_load import MIX, analyse, query_mix, real_names


def test_the_mix_is_the_same_every_run_and_has_every_kind_in_its_share() -> None:
    first = query_mix(4000)
    assert first == query_mix(4000)
    assert first != query_mix(4000, seed=1)
    counts = Counter(kind for kind, _ in first)
    for kind, share in MIX.items():
        assert abs(counts[kind] / 4000 - share) < 0.03, kind
    # The long tail: fragments of real names, mostly distinct.
    names = "".join(real_names())
    fragments = [query for kind, query in first if kind == "fragment"]
    assert all(len(f) <= 4 for f in fragments)
    assert all(f in names for f in fragments)
    assert len(set(fragments)) > len(fragments) / 2


def _result(ms: float, *, error: str | None = None, measured: bool = True) -> dict[str, Any]:
    return {
        "kind": "chinese",
        "query": f"q{ms}",
        "ms": ms,
        "behind_ms": 0.5,
        "error": error,
        "measured": measured,
    }


def test_analysis_counts_only_measured_requests_and_errors_by_kind() -> None:
    results = [_result(1000.0, measured=False)]  # warm-up: not counted
    results += [_result(float(ms)) for ms in range(1, 101)]
    results += [_result(5.0, error="HTTP 503"), _result(5.0, error="timeout")]
    report = analyse({"results": results, "cpu_s": 1.0}, rate=51.0, seconds=2.0)
    assert report["requests"] == 102
    assert report["latency_ms"]["p50"] == 50.0
    assert report["latency_ms"]["p99"] == 99.0
    assert report["latency_ms"]["max"] == 100.0
    assert report["errors"] == {"HTTP 503": 1, "timeout": 1}
    assert report["achieved_per_s"] == 51.0
    assert report["slowest_per_second_ms"] == [51.0, 100.0]
