#!/usr/bin/env bash
# Bounded memory I: ingest + clean of N generated persons under a memory budget, beside DuckDB
# doing the closest equivalent under the same budget, in the same run.
#   benches/scale.sh [N] [LIMIT]       (N persons, default 100000; LIMIT default 2GiB)
#   CDPLAKE_BIN=target/debug/cdplake   another build (default target/release/cdplake, built if missing)
#   BENCH_DIR=/tmp/cdplake-bench-scale the run directory (emptied first)
#   BIG_FILE_GB=G                      also ingest one web-events file of about G GB (G may be 0.05)
#   GZIPPED=1                          generate gzipped files (`generate --gzip`: 5M persons fit the
#                                      disk); ingest and DuckDB read them compressed; no big file
#                                      (not GZIP: gzip and zcat read that variable as options)
# Every stage prints `<stage>: <wall> s, <peak RSS> KB` (/usr/bin/time; for a stage that runs
# several processes the peak is the largest one's). Stages:
#   1. `cdplake generate --persons N --out data` (12 files in data/<source>/, truth files aside);
#   2. `cdplake --memory-limit LIMIT ingest` of every data/<source>/ into ./lake (one line for all);
#   3. `cdplake --memory-limit LIMIT clean` (all sources, one process);
#   4. DuckDB 2.0.0 (memory_limit = LIMIT, threads = 2, spilling to ./duckdb.tmp), one process, the
#      clean's closest equivalent for every source: read its raw file(s) with read_csv_auto /
#      read_json_auto (types inferred; the CSV columns the source types as dates, timestamps or
#      numbers read as text and cast with TRY(CAST()), so the generator's impossible dates become
#      NULL instead of failing the read; Online Retail's M/D/YYYY H:MM dates parsed with
#      try_strptime), keep the latest row per key of the built-in source definitions
#      (zones/src/presets.rs, `cdplake sources`) with
#        QUALIFY row_number() OVER (PARTITION BY key ORDER BY order_by DESC NULLS LAST, filename DESC) = 1
#      drop keys whose latest row is an AWS DMS delete (`Op = 'D'`), SELECT DISTINCT for the
#      keyless Online Retail lines (cdplake drops exact repeats), and COPY each to Parquet.
#      It does not validate, normalise, hash PII, keep lineage or a quarantine, or write Delta:
#      it is less work than cdplake's clean, as in BENCHMARKS.md's Online Retail rows;
#   5. with BIG_FILE_GB: the generated web_events.json (NDJSON) repeated with a distinct event_id
#      prefix per copy up to about G GB, ingested by `cdplake --memory-limit LIMIT ingest` into
#      its own lake (big/lake), beside DuckDB converting it to Parquet under the same limit;
#   6. the real Online Retail file (../shared/data/online_retail.csv): ingest + clean into its own
#      lake (retail/lake) under LIMIT, beside DuckDB's CSV -> Parquet (benches/online_retail.sh);
#   7. disk used, the build and the machine.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
persons=${1:-100000}
limit=${2:-2GiB}
bin=${CDPLAKE_BIN:-$repo/target/release/cdplake}
py=$repo/.cache/py/bin/python
csv=$repo/../shared/data/online_retail.csv
work=${BENCH_DIR:-/tmp/cdplake-bench-scale}
[ -x "$bin" ] || (cd "$repo" && cargo build --release --bin cdplake)
"$py" -c 'import duckdb' 2>/dev/null || "$repo/.cache/py/bin/pip" install --quiet duckdb==2.0.0
rm -rf "$work" && mkdir -p "$work" && cd "$work"
echo "scale: $persons persons, memory limit $limit, run directory $work (command output in *.log)"

# 1-3. cdplake: generate, ingest every source, clean.
/usr/bin/time -f "generate: %e s, %M KB" "$bin" generate --persons "$persons" --out data ${GZIPPED:+--gzip} > generate.log
echo "  data/: $(du -sh data | cut -f1), $(zcat -f data/*/* | wc -l) lines in $(ls data/*/* | wc -l) source files"
/usr/bin/time -f "ingest (all sources): %e s, %M KB" bash -c '
  set -euo pipefail
  for dir in data/*/; do
    "$0" --memory-limit "$1" ingest --source "$(basename "$dir")" "$dir"*
  done' "$bin" "$limit" > ingest.log
/usr/bin/time -f "clean (all sources): %e s, %M KB" "$bin" --memory-limit "$limit" clean > clean.log
grep '^clean\.' clean.log | sed 's/^/  /' || true

# 4. DuckDB: the clean's closest equivalent, one Parquet file per source in duckdb/.
mkdir -p duckdb
/usr/bin/time -f "duckdb clean-equivalent: %e s, %M KB" "$py" - "$limit" <<'PY'
import csv, glob, gzip, os, sys, duckdb
limit = sys.argv[1]
# The built-in sources' key and order_by (zones/src/presets.rs; `cdplake sources`).
# None: no key, an exact repeat of a line is the duplicate.
keys = {
    "app_events": (["event_id"], None),
    "behavioral_events": (["event_id"], None),
    "crm_members": (["member_id"], "updated_at"),
    "customers": (["customer_id"], "updated_at"),
    "identity_links": (["id_type_a", "id_value_a", "id_type_b", "id_value_b"], None),
    "orders": (["order_id"], "updated_at"),
    "retail_transactions": (None, None),
    "support_tickets": (["ticket_id"], None),
    "transactions": (["transaction_id"], None),
    "web_events": (["event_id"], None),
}
# The typed columns of those sources (same file). The generator writes impossible dates such as
# 2024-02-31 on purpose, which cdplake quarantines: here they become NULL.
typed = {
    "signup_date": "DATE", "birthday": "DATE", "register_date": "DATE", "transaction_date": "DATE",
    "updated_at": "TIMESTAMP", "created_at": "TIMESTAMP", "resolved_at": "TIMESTAMP", "event_time": "TIMESTAMP",
    "amount": "DOUBLE", "total_amount": "DOUBLE", "item_price": "DOUBLE", "Price": "DOUBLE",
    "item_count": "BIGINT", "total_points": "BIGINT", "Quantity": "BIGINT",
}
con = duckdb.connect()
con.execute(f"SET memory_limit = '{limit}'")
con.execute("SET threads = 2")
con.execute("SET temp_directory = 'duckdb.tmp'")
con.execute("SET preserve_insertion_order = false")  # DuckDB's advice for large COPYs under a limit
total = 0
for source in sorted(os.listdir("data")):
    if not os.path.isdir(f"data/{source}"):
        continue
    files = sorted(glob.glob(f"data/{source}/*"))
    csvs = [f for f in files if f.endswith((".csv", ".csv.gz"))]
    jsons = [f for f in files if f.endswith((".json", ".json.gz"))]
    readers = []
    if csvs:
        # The typed columns are read as text, then cast below: the sniffer sees a sample only
        # and fails the whole read on the first value that does not parse. Online Retail's
        # invoice and stock codes are text (the sniffer would guess numbers).
        header = set()
        for f in csvs:
            with (gzip.open(f, "rt", newline="") if f.endswith(".gz") else open(f, newline="")) as fh:
                header.update(next(csv.reader(fh), []))
        text = {c: "VARCHAR" for c in sorted(header) if c in typed or c in ("Invoice", "StockCode")}
        hint = f", types = {text!r}" if text else ""
        readers.append(f"SELECT * FROM read_csv_auto({csvs!r}, union_by_name = true, filename = true{hint})")
    if jsons:
        readers.append(f"SELECT * FROM read_json_auto({jsons!r}, format = 'newline_delimited', union_by_name = true, filename = true)")
    if not readers:
        continue
    rows = " UNION ALL BY NAME ".join(readers)
    key, order = keys.get(source, (None, None))
    sniffed = {c[0]: c[1] for c in con.execute(f"DESCRIBE {rows}").fetchall()}
    names = list(sniffed)
    # TRY(CAST()), not try_cast(): DuckDB 2.0.0 pushes try_cast into the CSV scanner as a hard
    # cast that fails the read (duckdb/duckdb#23818).
    casts = [f'TRY(CAST("{c}" AS {typed[c]})) AS "{c}"' for c in names if sniffed[c] == "VARCHAR" and c in typed]
    if sniffed.get("InvoiceDate") == "VARCHAR":  # Online Retail's M/D/YYYY H:MM, which cdplake parses
        casts.append("try_strptime(InvoiceDate, '%m/%d/%Y %H:%M') AS InvoiceDate")
    if casts:
        rows = f"SELECT * REPLACE ({', '.join(casts)}) FROM ({rows})"
    if key is None:
        query = f"SELECT DISTINCT * EXCLUDE (filename) FROM ({rows})"
    else:
        by = (f"{order} DESC NULLS LAST, " if order else "") + "filename DESC"
        latest = f"SELECT * FROM ({rows}) QUALIFY row_number() OVER (PARTITION BY {', '.join(key)} ORDER BY {by}) = 1"
        if "Op" in names:  # AWS DMS change rows: a key whose latest row is a delete goes
            query = f"SELECT * EXCLUDE (filename, Op) FROM ({latest}) WHERE Op IS DISTINCT FROM 'D'"
        else:
            query = f"SELECT * EXCLUDE (filename) FROM ({latest})"
    n = con.execute(f"COPY ({query}) TO 'duckdb/{source}.parquet' (FORMAT parquet)").fetchone()[0]
    print(f"  duckdb {source}: {n} rows kept")
    total += n
print(f"  duckdb: {total} rows kept in all")
PY

# 5. One web-events file bigger than the limit (with BIG_FILE_GB).
if [ -n "${BIG_FILE_GB:-}" ] && [ -z "${GZIPPED:-}" ]; then
  mkdir -p big
  web=data/web_events/web_events.json
  copies=$(awk -v g="$BIG_FILE_GB" -v s="$(stat -c %s "$web")" 'BEGIN { c = int(g * 1e9 / s); if (c * s < g * 1e9) c++; print (c < 1 ? 1 : c) }')
  for i in $(seq "$copies"); do
    sed "s/\"event_id\":\"W/\"event_id\":\"W$i-/" "$web"
  done > big/big.json
  echo "  big/big.json: $(stat -c %s big/big.json) bytes ($(du -h big/big.json | cut -f1)), $(wc -l < big/big.json) lines, $copies copies of $web"
  /usr/bin/time -f "ingest big file: %e s, %M KB" "$bin" --lake big/lake --memory-limit "$limit" ingest --source web_events big/big.json > big/ingest.log
  /usr/bin/time -f "duckdb big file json->parquet: %e s, %M KB" "$py" - "$limit" <<'PY'
import sys, duckdb
con = duckdb.connect()
con.execute(f"SET memory_limit = '{sys.argv[1]}'")
con.execute("SET threads = 2")
con.execute("SET temp_directory = 'duckdb.tmp'")
con.execute("SET preserve_insertion_order = false")
con.execute("COPY (SELECT * FROM read_json_auto('big/big.json', format = 'newline_delimited')) TO 'big/big.parquet' (FORMAT parquet)")
PY
fi

# 6. The real Online Retail file under the same limit.
if [ -f "$csv" ]; then
  mkdir -p retail
  /usr/bin/time -f "online retail ingest: %e s, %M KB" "$bin" --lake retail/lake --memory-limit "$limit" ingest --source retail_transactions "$csv" > retail/ingest.log
  /usr/bin/time -f "online retail clean: %e s, %M KB" "$bin" --lake retail/lake --memory-limit "$limit" clean --source retail_transactions > retail/clean.log
  /usr/bin/time -f "duckdb online retail csv->parquet: %e s, %M KB" "$py" - "$limit" "$csv" <<'PY'
import sys, duckdb
con = duckdb.connect()
con.execute(f"SET memory_limit = '{sys.argv[1]}'")
con.execute("SET threads = 2")
con.execute("SET temp_directory = 'duckdb.tmp'")
con.execute(f"COPY (SELECT * FROM read_csv_auto('{sys.argv[2]}')) TO 'retail/retail.parquet' (FORMAT parquet)")
PY
else
  echo "online retail: skipped, $csv is missing"
fi

# 7. Disk, build, machine.
echo "disk: $(du -sh data lake duckdb $(ls -d big retail 2>/dev/null) | awk '{ printf "%s%s %s", sep, $2, $1; sep = ", " }')"
case $bin in
  */release/*) profile=release ;;
  */debug/*) profile=dev ;;
  *) profile="unknown (not under target/release or target/debug)" ;;
esac
dirty=$([ -z "$(git -C "$repo" status --porcelain)" ] || echo ", worktree has uncommitted changes")
echo "build: $bin, $profile profile, $("$bin" --version), built $(date -r "$bin" '+%F %T'); repo at $(git -C "$repo" rev-parse --short HEAD)$dirty"
echo "machine: $(nproc) cores, MemTotal $(awk '/^MemTotal/ { printf "%d kB (%.1f GiB)", $2, $2 / 1048576 }' /proc/meminfo)"
