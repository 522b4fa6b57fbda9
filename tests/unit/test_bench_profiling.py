"""The benchmark's profile summary: where a service's CPU went, from py-spy's raw stacks."""

from __future__ import annotations

from pathlib import Path

from bench.profiling import library_of, summarise


def test_library_of_a_frame() -> None:
    assert library_of("Session.flush (sqlalchemy/orm/session.py:4626)") == "sqlalchemy"
    assert library_of("b64encode (base64.py:58)") == "stdlib:base64"
    assert library_of("apply (intake_service/api.py:428)") == "intake_service"
    assert library_of("") == "native"


def test_summary_shares_by_library_and_our_functions_counted_once_per_sample(
    tmp_path: Path,
) -> None:
    raw = tmp_path / "intake.txt"
    raw.write_text(
        "main (wangban/cli.py:177);apply (intake_service/api.py:428);"
        "execute (sqlalchemy/orm/session.py:2555) 6\n"
        # apply twice on one stack (recursion, another line): still one sample each.
        "main (wangban/cli.py:177);apply (intake_service/api.py:428);"
        "apply (intake_service/api.py:431);dumps (json/__init__.py:231) 3\n"
        "Runner.run (asyncio/runners.py:118) 1\n"
        "not a stack line\n",
        encoding="utf-8",
    )
    summary = summarise(raw)
    assert summary.samples == 10
    assert dict(summary.by_library) == {"sqlalchemy": 60.0, "json": 30.0, "asyncio": 10.0}
    assert dict(summary.ours_inclusive) == {
        "main (wangban/cli.py)": 90.0,
        "apply (intake_service/api.py)": 90.0,
    }
