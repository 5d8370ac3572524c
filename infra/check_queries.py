"""Checks the Athena queries of queries/athena against a local lake, in an engine independent of
voicelake: every file must pass the Trino SQL validator, run in DuckDB (translated from Trino by
sqlglot) over the Parquet files `voicelake replay` wrote, and agree with the replay's report.

Run by `voicelake queries check`, which writes the lake and the report first. Needs the tools of
infra/requirements.txt (./infra/bootstrap installs them into .venv).

usage: check_queries.py QUERIES_DIR LAKE_DIR REPORT_JSON
"""

import json
import sys
from pathlib import Path

import duckdb
import trino_sql_validator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lake_sql import header, open_lake, to_duckdb  # noqa: E402


class Failure(Exception):
    pass


def close(a, b, tolerance):
    return a is not None and b is not None and abs(float(a) - float(b)) <= tolerance


def main(queries_dir, lake_dir, report_path):
    report = json.loads(Path(report_path).read_text())
    files = sorted(Path(queries_dir).glob("*.sql"))
    if not files:
        raise Failure(f"no .sql files in {queries_dir}")
    problems = []

    # 1. Trino syntax and function arity, as Athena engine 3 parses it.
    parsed = {}
    for f in files:
        text = f.read_text()
        h = header(text)
        for key in ("name", "description"):
            if not h.get(key):
                problems.append(f"{f.name}: the header has no '-- {key}:' line")
        if h.get("name") and h["name"] != f.stem:
            problems.append(f"{f.name}: the header names it {h['name']!r}, the file {f.stem!r}")
        result = trino_sql_validator.validate(text)
        if not result.valid:
            problems.append(f"{f.name}: not valid Trino SQL: {result.error}")
        for w in getattr(result, "warnings", []) or []:
            problems.append(f"{f.name}: {w}")
        parsed[f.stem] = (h, text)
    if problems:
        raise Failure("\n".join(problems))

    # 2. The lake as Athena sees it: hive partitions dt and hour as strings, the saved views created.
    try:
        con = open_lake(lake_dir, parsed)
    except RuntimeError as e:
        raise Failure(str(e))

    first = report["first_event"][:10]
    last = report["last_event"][:10]
    results = {}
    for name, (h, text) in parsed.items():
        sql = text if h.get("kind") == "view" else text
        if h.get("kind") == "view":
            sql = f"SELECT * FROM {name}"
        else:
            sql = to_duckdb(text)
        params = [first, last] * sql.count("?") if "?" in sql else []
        params = params[: sql.count("?")]
        try:
            cur = con.execute(sql, params)
            columns = [d[0] for d in cur.description]
            rows = [dict(zip(columns, r)) for r in cur.fetchall()]
        except duckdb.Error as e:
            problems.append(f"{name}: does not run: {e}")
            continue
        if not rows:
            problems.append(f"{name}: returned no rows over a lake of generated traffic")
        results[name] = rows
    if problems:
        raise Failure("\n".join(problems))

    # 3. The answers agree with the report of the same replay.
    checks = []

    def check(what, ok, detail):
        checks.append((what, ok, detail))

    s = results["latency_summary"][0]
    r = report["latency_ms"]
    check("latency_summary turns = report turns", s["turns"] == r["count"], f"{s['turns']} vs {r['count']}")
    for key in ("p50", "p95", "p99", "max"):
        check(f"latency_summary {key} within 1 ms", close(s[f"{key}_ms"], r[key], 1.0), f"{s[f'{key}_ms']} vs {r[key]}")
    for key, column in (("mean", "mean_ms"), ("min", "min_ms"), ("std_dev", "stddev_ms")):
        check(f"latency_summary {key} within 0.01 ms", close(s[column], r[key], 0.01), f"{s[column]} vs {r[key]}")
    t = report["target"]
    check("latency_summary calls = report calls with turns", s["calls"] == t["calls"], f"{s['calls']} vs {t['calls']}")
    check(
        "calls all within target = report",
        close(s["calls_within_target_pct"], t["calls_compliance_pct"], 0.01),
        f"{s['calls_within_target_pct']} vs {t['calls_compliance_pct']}",
    )
    check(
        "interrupted turns = report",
        s["interrupted_turns"] == report["interrupted"]["turns"],
        f"{s['interrupted_turns']} vs {report['interrupted']['turns']}",
    )
    for component, column in (("eou_delay", "eou_p95_ms"), ("llm_ttft", "llm_ttft_p95_ms"), ("tts_ttfb", "tts_ttfb_p95_ms")):
        # The report's component percentiles span every row; these, complete turns only.
        check(f"latency_summary {component} p95 is a latency", s[column] is not None and s[column] > 0, f"{s[column]}")
    check(
        "within-target share = report compliance",
        close(s["within_target_pct"], report["target"]["compliance_pct"], 0.01),
        f"{s['within_target_pct']} vs {report['target']['compliance_pct']}",
    )

    assembled = sum(row["turns"] for row in results["latency_by_hour_agent"])
    check("turns_assembled holds at least the complete turns", assembled >= r["count"], f"{assembled} >= {r['count']}")
    bad = con.execute(
        "SELECT count(*) FROM turns_assembled WHERE assembly = 'across_batches' "
        "AND abs(total_latency_ms - (eou_delay_ms + coalesce(on_user_turn_completed_delay_ms, 0) + llm_ttft_ms + tts_ttfb_ms)) > 1e-6"
    ).fetchone()[0]
    check("assembled latency = eou + hook + ttft + ttfb", bad == 0, f"{bad} rows differ")

    rejects = {}
    for row in results["rejects_by_reason"]:
        rejects[row["reason"]] = rejects.get(row["reason"], 0) + row["rejected"]
    check("rejects_by_reason = report", rejects == report["rejected_by_reason"], f"{rejects} vs {report['rejected_by_reason']}")

    cost = results["cost_by_day_agent"]
    calls = sum(row["calls"] for row in cost)
    total = sum(row["cost_usd"] for row in cost)
    check("cost_by_day_agent calls = report calls", calls == report["cost"]["calls"], f"{calls} vs {report['cost']['calls']}")
    check("cost_by_day_agent total within a cent", close(total, report["cost"]["total_usd"], 0.01), f"{total} vs {report['cost']['total_usd']}")

    tools = results["tool_success_rate"]
    check(
        "tool_success_rate calls, outcomes and failures = report",
        [sum(t[k] for t in tools) for k in ("calls", "with_outcome", "failures")]
        == [report["tools"][k] for k in ("calls", "with_outcome", "failures")],
        f"{[sum(t[k] for t in tools) for k in ('calls', 'with_outcome', 'failures')]} vs "
        f"{[report['tools'][k] for k in ('calls', 'with_outcome', 'failures')]}",
    )

    failures = results["failures_by_provider"]
    by_provider = {}
    for row in failures:
        key = (row["kind"], row["provider"])
        by_provider[key] = by_provider.get(key, 0) + row["failures"]
    expected = {(p["kind"], p["provider"]): p["events"] for p in report["errors"]["by_provider"]}
    check("failures_by_provider = report errors by provider", by_provider == expected, f"{by_provider} vs {expected}")

    closed = con.execute("SELECT count(*) FROM calls WHERE closed_by_error").fetchone()[0]
    expected_closed = report["errors"]["sessions_closed_by_error"]
    check("calls closed by error = report sessions closed by error", closed == expected_closed, f"{closed} vs {expected_closed}")
    failing = con.execute("SELECT sum(error_count) FROM calls").fetchone()[0]
    check("calls' error_count at most the failure events", failing <= report["errors"]["events"], f"{failing} <= {report['errors']['events']}")

    slowest = results["slowest_sessions"][0]
    check("slowest_sessions ranks by p95", all(
        a["p95_ms"] >= b["p95_ms"] for a, b in zip(results["slowest_sessions"], results["slowest_sessions"][1:])
    ), f"top {slowest['session_id']} {slowest['p95_ms']}")

    failed = [c for c in checks if not c[1]]
    for what, ok, detail in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {what}: {detail}")
    print(f"{len(files)} Athena files valid Trino SQL; {len(results)} ran in DuckDB {duckdb.__version__}; {len(checks) - len(failed)}/{len(checks)} agree with the report")
    if failed:
        raise Failure(f"{len(failed)} results disagree with the report")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    try:
        main(*sys.argv[1:])
    except Failure as e:
        print(f"queries check failed:\n{e}", file=sys.stderr)
        sys.exit(1)
