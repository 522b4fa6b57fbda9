"""The verdict logic of bench.platform_load: when a rate counts as held, and escalation."""

from __future__ import annotations

import math
from typing import Any

from bench.platform_load import (
    cpu_per_request,
    error_kinds,
    highest_held,
    latency_trend,
    phase_problems,
    ratio,
)


def _phase(
    rate: float,
    *,
    errors: int = 0,
    not_completed: int = 0,
    achieved: float | None = None,
    grew: bool = False,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "rate_asked": rate,
        "rate_achieved": rate if achieved is None else achieved,
        "errors": errors,
        "not_completed": not_completed,
        "trend": {"first_quarter_p50": 100.0, "last_quarter_p50": 400.0, "grew": grew},
    }
    result["problems"] = phase_problems(result)
    return result


def test_a_steady_latency_did_not_grow() -> None:
    points = [(n / 10, 100.0 + (n % 7)) for n in range(200)]
    trend = latency_trend(points)
    assert not trend["grew"]
    assert 100 <= trend["first_quarter_p50"] <= 107


def test_latency_that_climbs_through_the_phase_grew() -> None:
    points = [(n / 10, 100.0 + 5 * n) for n in range(200)]
    assert latency_trend(points)["grew"]


def test_growth_needs_both_the_factor_and_the_absolute_margin() -> None:
    # 10 ms → 30 ms is three times as much but only 20 ms more: noise at this scale.
    points = [(float(n), 10.0) for n in range(40)] + [(float(n), 30.0) for n in range(40, 80)]
    assert not latency_trend(points)["grew"]


def test_the_order_of_the_points_is_the_schedule_not_the_list() -> None:
    points = [(n / 10, 100.0 + 5 * n) for n in range(200)]
    assert latency_trend(list(reversed(points)))["grew"]


def test_too_few_points_say_nothing() -> None:
    trend = latency_trend([(0.0, 10.0), (1.0, 5000.0)])
    assert not trend["grew"] and math.isnan(trend["first_quarter_p50"])


def test_a_phase_is_held_only_without_errors_losses_shortfall_or_growth() -> None:
    assert _phase(10)["problems"] == []
    assert _phase(10, errors=1)["problems"] == ["1 errors"]
    assert _phase(10, not_completed=2)["problems"] == ["2 not completed"]
    assert _phase(10, achieved=9.0)["problems"] == ["achieved 9.0/s"]
    assert _phase(10, achieved=9.6)["problems"] == []
    assert _phase(10, grew=True)["problems"] == ["latency grew (100 → 400 ms)"]


def test_the_highest_rate_held_is_the_last_before_the_first_failure() -> None:
    assert highest_held([_phase(10), _phase(25), _phase(50, errors=3)]) == 25
    assert highest_held([_phase(10), _phase(25, grew=True), _phase(50)]) == 10
    assert highest_held([_phase(10, errors=1)]) is None
    assert highest_held([]) is None


def test_ratios_and_error_kinds() -> None:
    assert ratio(300.0, 10.0) == 30.0
    assert math.isnan(ratio(math.nan, 10.0)) and math.isnan(ratio(5.0, 0.0))
    assert error_kinds(["HTTP 503 (submit)", "timeout (submit)", "HTTP 503 (submit)"]) == {
        "HTTP 503 (submit)": 2,
        "timeout (submit)": 1,
    }


def test_cpu_per_request_is_above_idle_and_leaves_the_broker_out_of_the_total() -> None:
    loaded = {
        "window_s": 10.0,
        "process_percent_of_one_core": {"gateway": 30.0, "postgres": 12.0, "broker": 5.0},
    }
    idle = {"process_percent_of_one_core": {"gateway": 10.0, "postgres": 2.0, "broker": 20.0}}
    # 20 % of a core for 10 s is 2000 ms, over 100 requests 20 ms each.
    per = cpu_per_request(loaded, idle, 100)
    assert per == {"gateway": 20.0, "postgres": 10.0, "broker": -15.0, "total": 30.0}
    assert cpu_per_request(loaded, None, 100)["total"] == 42.0
