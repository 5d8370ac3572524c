"""A local lake as Athena sees it, in DuckDB: the one place where the Trino (Athena engine 3) SQL of
queries/athena is made to run locally. `voicelake queries check` (check_queries.py) and
`voicelake query` both use it.

usage: lake_sql.py QUERIES_DIR LAKE_DIR QUERY [--agent A] [--from T] [--to T] [--session ID]
                   [--format text|json] [--limit N] [--empty DIR]

QUERY is the name of a saved Athena query (`latency_by_hour_agent`), a view (`calls`), `call` (the
turns of one call, with --session), or a .sql file. --agent, --from and --to narrow every table the
query reads; a query's `?` parameters (first day, last day) are the days of --from and --to, or the
lake's first and last day. --empty DIR holds one empty Parquet file per table (`voicelake query`
writes them from the lake's schemas): a table with no file in the lake is read from it, no rows.
"""

import datetime
import json
import re
import sys
from pathlib import Path

import duckdb
import sqlglot

TABLES = ("turns", "sessions", "rejects", "errors")

# One call's turns, in order, whole where the lake holds them in parts.
CALL = """
SELECT event_time, speech_id, agent_name, total_latency_ms, latency_source, eou_delay_ms,
       transcription_delay_ms, on_user_turn_completed_delay_ms, llm_ttft_ms, llm_calls, tts_ttfb_ms,
       interrupted, assembly
FROM turns_assembled
WHERE session_id = ?
ORDER BY event_time
"""


def header(text):
    """The `-- key: value` lines at the top of a query file."""
    fields = {}
    for line in text.splitlines():
        m = re.match(r"^--\s*(\w[\w-]*):\s*(.*)$", line)
        if not m:
            break
        fields[m.group(1)] = m.group(2).strip()
    return fields


def to_duckdb(sql):
    """Trino (Athena engine 3) to DuckDB, with two rewrites sqlglot does not make:
    - approx_percentile becomes DuckDB's exact quantile_disc, which picks the same nearest rank as
      voicelake's report, so the two can be compared exactly;
    - `CROSS JOIN UNNEST(rows) AS u(a, b, …)` expands each row's fields into columns in Trino;
      DuckDB does that with a lateral `UNNEST(…, recursive := TRUE)`."""
    out = sqlglot.transpile(sql, read="trino", write="duckdb")
    if len(out) != 1:
        raise ValueError(f"expected one statement, got {len(out)}")
    duck = re.sub(r"\bAPPROX_QUANTILE\(", "QUANTILE_DISC(", out[0])
    return re.sub(
        r"CROSS JOIN UNNEST\(([^()]+)\) AS (\w+)\(([^()]*,[^()]*)\)",
        r"CROSS JOIN LATERAL (SELECT UNNEST(\1, recursive := TRUE)) AS \2(\3)",
        duck,
    )


def queries(queries_dir):
    """The Athena query files: name → (header, text)."""
    found = {}
    for f in sorted(Path(queries_dir).glob("*.sql")):
        text = f.read_text()
        found[f.stem] = (header(text), text)
    return found


def open_lake(lake_dir, saved, agent=None, start=None, end=None, empty=None):
    """DuckDB over the lake's Parquet files, with hive partitions dt and hour as strings (as the Glue
    tables declare them) and the saved views created. `agent`, `start` and `end` (datetimes, UTC)
    narrow every table; a table without files is read from `empty`'s file of it, if given."""
    con = duckdb.connect()
    for table in TABLES:
        glob = str(Path(lake_dir) / table / "*" / "*" / "*.parquet")
        if not list(Path(lake_dir).glob(f"{table}/*/*/*.parquet")) and empty is not None:
            stand_in = str(Path(empty) / f"{table}.parquet")
            con.execute(f"CREATE VIEW {table} AS SELECT *, NULL::VARCHAR AS dt, NULL::VARCHAR AS hour FROM read_parquet('{stand_in}')")
            continue
        conditions, params = [], []
        if agent is not None and table != "rejects":
            conditions.append("agent_name = ?")
            params.append(agent)
        if start is not None:
            conditions.append("event_time >= ?")
            params.append(start)
        if end is not None:
            conditions.append("event_time < ?")
            params.append(end)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        # A view cannot hold parameters: the values are written in, quoted.
        for p in params:
            where = where.replace("?", quote(p), 1)
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true, "
            f"hive_types = {{'dt': 'VARCHAR', 'hour': 'VARCHAR'}}){where}"
        )
    pending = {name: text for name, (h, text) in saved.items() if h.get("kind") == "view"}
    while pending:
        created, errors = [], {}
        for name, text in pending.items():
            try:
                con.execute(to_duckdb(text))
                created.append(name)
            except duckdb.Error as e:  # a view may need another one first
                errors[name] = str(e)
        if not created:
            raise RuntimeError("\n".join(f"view {n}: {e}" for n, e in errors.items()))
        for name in created:
            del pending[name]
    return con


def quote(value):
    if isinstance(value, datetime.datetime):
        return f"TIMESTAMPTZ '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def lake_days(con):
    """The first and last day (yyyy-MM-dd) the lake's turns and sessions hold."""
    row = con.execute(
        "SELECT min(dt), max(dt) FROM (SELECT dt FROM turns UNION ALL SELECT dt FROM sessions)"
    ).fetchone()
    return row[0], row[1]


def run(con, sql, params):
    cur = con.execute(sql, params)
    columns = [d[0] for d in cur.description]
    return columns, cur.fetchall()


def parse_time(text, flag):
    try:
        t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SystemExit(f"{flag} {text!r}: expected a date (2026-11-20) or an RFC 3339 time")
    return t if t.tzinfo else t.replace(tzinfo=datetime.timezone.utc)


def show(columns, rows, fmt, limit):
    if fmt == "json":
        for r in rows[:limit]:
            print(json.dumps(dict(zip(columns, r)), default=str))
        return
    cells = [[("" if v is None else str(v)) for v in r] for r in rows[:limit]]
    widths = [min(60, max([len(c)] + [len(r[i]) for r in cells])) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v[:60].ljust(w) for v, w in zip(values, widths)).rstrip()
    print(line(columns))
    for r in cells:
        print(line(r))
    more = len(rows) - limit
    print(f"({len(rows)} rows{f', {more} not shown: --limit' if more > 0 else ''})")


def main(argv):
    args = {"--agent": None, "--from": None, "--to": None, "--session": None, "--format": "text", "--limit": "50", "--empty": None}
    positional = []
    it = iter(argv)
    for a in it:
        if a in args:
            args[a] = next(it, None)
            if args[a] is None:
                raise SystemExit(f"{a} needs a value")
        else:
            positional.append(a)
    if len(positional) != 3:
        raise SystemExit(__doc__)
    queries_dir, lake_dir, query = positional
    start = parse_time(args["--from"], "--from") if args["--from"] else None
    end = parse_time(args["--to"], "--to") if args["--to"] else None
    saved = queries(queries_dir)
    con = open_lake(lake_dir, saved, args["--agent"], start, end, args["--empty"])

    if query == "call":
        if not args["--session"]:
            raise SystemExit("call: give the call's session id with --session")
        sql, params = CALL, [args["--session"]]
    else:
        if query.endswith(".sql"):
            text = Path(query).read_text()
        elif query in saved:
            text = saved[query][1]
        else:
            names = ", ".join(sorted(saved) + ["call"])
            raise SystemExit(f"{query!r} is no saved query or .sql file; the saved queries: {names}")
        kind = header(text).get("kind")
        if kind == "view":
            name = Path(query).stem if query.endswith(".sql") else query
            if query.endswith(".sql"):
                con.execute(to_duckdb(text))
            sql = f"SELECT * FROM {name}"
        else:
            sql = to_duckdb(text)
        first, last = lake_days(con)
        days = [start.date().isoformat() if start else first, end.date().isoformat() if end else last]
        count = sql.count("?")
        params = (days * count)[:count]
    columns, rows = run(con, sql, params)
    show(columns, rows, args["--format"], int(args["--limit"]))


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (duckdb.Error, RuntimeError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
