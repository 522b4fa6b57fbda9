"""Draw an exported trace as a waterfall and photograph it for docs/operations.md.

    WANGBAN_SAVE_SCREENSHOTS=1 .venv/bin/python -m pytest tests/gateway/test_tracing.py
    .venv/bin/python tools/trace_picture.py            # → docs/screenshots/operations/trace.png

Reads the spans the tracing test saved (``docs/screenshots/operations/trace.json``), lays them
out as a tree (children under their parent, in start order), one bar per span on a shared time
axis, coloured by service, and has Debian's Chromium (/usr/bin/chromium, through Playwright, as
the browser tests do) photograph the page. Database statements are folded into a count on their
parent's row: a 秒批 application runs a few hundred, and the picture is about the hops.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "docs" / "screenshots" / "operations"
CHROMIUM = "/usr/bin/chromium"
COLOURS = {
    "wangban-gateway": "#5470c6",
    "wangban-intake": "#91cc75",
    "wangban-approval": "#fac858",
    "wangban-sharing": "#ee6666",
    "wangban-notify": "#73c0de",
    "wangban-catalog": "#9a60b4",
}


def _is_query(span: dict[str, Any]) -> bool:
    return span["scope"].startswith("opentelemetry.instrumentation.sqlalchemy")


def _rows(spans: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any], int]]:
    """(depth, span, statements folded into it), depth-first in start order."""
    shown = [s for s in spans if not _is_query(s)]
    ids = {s["span_id"] for s in shown}
    by_id = {s["span_id"]: s for s in spans}
    folded: dict[str, int] = {}
    for span in spans:
        if _is_query(span):
            parent = span["parent_span_id"]
            while parent is not None and parent not in ids:
                parent = by_id[parent]["parent_span_id"] if parent in by_id else None
            if parent is not None:
                folded[parent] = folded.get(parent, 0) + 1
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in sorted(shown, key=lambda s: s["start_ns"]):
        parent = span["parent_span_id"] if span["parent_span_id"] in ids else None
        children.setdefault(parent, []).append(span)
    rows: list[tuple[int, dict[str, Any], int]] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in children.get(parent, []):
            rows.append((depth, span, folded.get(span["span_id"], 0)))
            walk(span["span_id"], depth + 1)

    walk(None, 0)
    return rows


def render_html(spans: list[dict[str, Any]]) -> str:
    start = min(s["start_ns"] for s in spans)
    end = max(s["end_ns"] for s in spans)
    total = max(end - start, 1)
    lines = []
    for depth, span, queries in _rows(spans):
        left = (span["start_ns"] - start) / total * 100
        width = max((span["end_ns"] - span["start_ns"]) / total * 100, 0.3)
        ms = (span["end_ns"] - span["start_ns"]) / 1e6
        colour = COLOURS.get(span["service"], "#999")
        note = f" · {queries} SQL" if queries else ""
        # The duration after the bar, or before it when the bar ends near the right edge.
        if left + width > 80:
            place = f"right:{100 - left:.3f}%;margin-right:4px"
        else:
            place = f"left:{left + width:.3f}%;margin-left:4px"
        lines.append(
            f'<div class="row"><div class="label" style="padding-left:{depth * 12}px">'
            f'<span class="svc" style="background:{colour}">'
            f"{html.escape(span['service'].removeprefix('wangban-'))}</span> "
            f'<span class="kind">{span["kind"]}</span> {html.escape(span["name"])}</div>'
            f'<div class="lane"><div class="bar" style="left:{left:.3f}%;width:{width:.3f}%;'
            f'background:{colour}"></div><span class="ms" style="{place}">'
            f"{ms:.1f} ms{note}</span></div></div>"
        )
    services = sorted({s["service"] for s in spans})
    legend = " ".join(
        f'<span class="svc" style="background:{COLOURS.get(s, "#999")}">{html.escape(s)}</span>'
        for s in services
    )
    return f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><style>
body {{ font: 12px/1.35 "Noto Sans CJK SC", "DejaVu Sans", sans-serif; margin: 16px;
  color: #222; width: 1400px; }}
h1 {{ font-size: 15px; margin: 0 0 4px; }}
.meta {{ color: #555; margin-bottom: 10px; }}
.row {{ display: flex; align-items: center; border-bottom: 1px solid #eee; height: 19px; }}
.label {{ width: 560px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }}
.lane {{ position: relative; flex: 1; height: 100%; }}
.bar {{ position: absolute; top: 4px; height: 11px; border-radius: 2px; }}
.ms {{ position: absolute; top: 2px; color: #444; font-size: 11px;
  white-space: nowrap; }}
.svc {{ color: #fff; border-radius: 3px; padding: 0 4px; font-size: 11px; }}
.kind {{ color: #888; font-size: 11px; }}
</style></head><body>
<h1>One 秒批 application as one trace (trace {html.escape(spans[0]["trace_id"])})</h1>
<div class="meta">{len(spans)} spans in {len(services)} services over {total / 1e6:.0f} ms
(SQL statements folded into their parent's row) &nbsp; {legend}</div>
{"".join(lines)}
</body></html>"""


async def photograph(page_html: str, target: Path) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 200})
            await page.set_content(page_html)
            await page.screenshot(path=str(target), full_page=True)
        finally:
            await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=Path, default=SHOTS / "trace.json")
    parser.add_argument("--out", type=Path, default=SHOTS / "trace.png")
    args = parser.parse_args()
    spans = json.loads(args.spans.read_text("utf-8"))
    page_html = render_html(spans)
    asyncio.run(photograph(page_html, args.out))
    print(args.out)


if __name__ == "__main__":
    main()
