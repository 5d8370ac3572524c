"""Opens report pages in a real headless Chromium and checks what a reader would see.

Usage: check_page.py SPEC.json

SPEC is a list of pages: {"path": "...html", "screenshot": "...png" (optional),
"charts": {"<chart id>": {"series": N, "points": N}, ...} (optional, exact expectations)}.

For each page, in light and in dark mode, at laptop width:
- no console error or warning, no uncaught error, no request (the page must need no network);
- every chart figure has a title; one with points has an SVG with a marker per point, axis titles
  and tick labels, and one without points says why in words instead of drawing empty axes;
- no two texts of one SVG overlap;
- where the spec gives expectations for a chart, its series and markers match them exactly.
Prints one line per problem and exits 1 if there is any.

Chromium is the distribution's (/usr/bin/chromium, or $CHROMIUM): Playwright never downloads one.
"""

import json
import os
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Without these, Chromium reaches for Google's services at start and logs the refused connections.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Runs in the page: what each chart figure shows.
INSPECT = """
() => [...document.querySelectorAll('figure.card')].map(f => {
  const svg = f.querySelector('svg');
  const texts = svg ? [...svg.querySelectorAll('text')].map(t => {
    const r = t.getBoundingClientRect();
    return {text: t.textContent.trim(), x0: r.left, y0: r.top, x1: r.right, y1: r.bottom};
  }).filter(t => t.text.length > 0 && t.x1 > t.x0) : [];
  return {
    id: f.id.replace(/^chart-/, ''),
    title: (f.querySelector('h3') || {}).textContent || '',
    series: Number(f.dataset.series),
    points: Number(f.dataset.points),
    markers: svg ? svg.querySelectorAll('circle').length : 0,
    lines: svg ? svg.querySelectorAll('polyline').length : 0,
    legend: [...f.querySelectorAll('.legend li')].map(li => li.textContent),
    empty: (f.querySelector('.empty') || {}).textContent || '',
    hasSvg: !!svg,
    texts,
  };
})
"""


def overlaps(a, b, slack=0.5):
    return a["x0"] + slack < b["x1"] and b["x0"] + slack < a["x1"] and a["y0"] + slack < b["y1"] and b["y0"] + slack < a["y1"]


def check_page(browser, page_spec, scheme, problems):
    path = Path(page_spec["path"]).resolve()
    where = f"{path.name} ({scheme})"
    context = browser.new_context(viewport={"width": 1366, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    messages = []
    page.on("console", lambda m: messages.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: messages.append(f"uncaught: {e}"))
    page.on("request", lambda r: messages.append(f"request: {r.url}") if not r.url.startswith("file://") else None)
    page.goto(path.as_uri(), wait_until="load")
    problems.extend(f"{where}: {m}" for m in messages)

    figures = page.evaluate(INSPECT)
    if not figures:
        problems.append(f"{where}: no charts")
    for f in figures:
        name = f"{where} chart {f['id']}"
        if not f["title"].strip():
            problems.append(f"{name}: no title")
        if f["points"] > 0:
            if not f["hasSvg"]:
                problems.append(f"{name}: {f['points']} points but no SVG")
            if f["markers"] != f["points"]:
                problems.append(f"{name}: {f['markers']} markers drawn for {f['points']} points")
            labels = {t["text"] for t in f["texts"]}
            if "event time (UTC)" not in labels:
                problems.append(f"{name}: no x axis title")
            if len(labels) < 4:
                problems.append(f"{name}: too few axis labels {sorted(labels)}")
            for i, a in enumerate(f["texts"]):
                for b in f["texts"][i + 1 :]:
                    if overlaps(a, b):
                        problems.append(f"{name}: labels overlap: {a['text']!r} and {b['text']!r}")
        elif f["hasSvg"]:
            problems.append(f"{name}: empty axes drawn")
        elif not f["empty"].strip():
            problems.append(f"{name}: no data and no message saying so")
        expected = page_spec.get("charts", {}).get(f["id"])
        if expected:
            got = {"series": f["series"], "points": f["points"], "markers": f["markers"]}
            want = {"series": expected["series"], "points": expected["points"], "markers": expected["points"]}
            if got != want:
                problems.append(f"{name}: expected {want}, page has {got} (legend {f['legend']})")
    missing = set(page_spec.get("charts", {})) - {f["id"] for f in figures}
    problems.extend(f"{where}: chart {m} missing" for m in sorted(missing))

    # Nothing of the page may be wider than a laptop screen.
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    if overflow > 0:
        problems.append(f"{where}: {overflow}px wider than the window")
    shot = page_spec.get("screenshot")
    if shot:
        target = Path(shot)
        if scheme == "dark":
            target = target.with_name(target.stem + "-dark" + target.suffix)
        page.screenshot(path=str(target), full_page=True)
    context.close()
    return len(figures)


def main():
    spec = json.loads(Path(sys.argv[1]).read_text())
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for page_spec in spec:
            for scheme in ("light", "dark"):
                n = check_page(browser, page_spec, scheme, problems)
                print(f"{Path(page_spec['path']).name} ({scheme}): {n} charts checked")
        browser.close()
    for problem in problems:
        print(f"PROBLEM {problem}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
