#!/usr/bin/env bash
# Ingest + clean of the real Online Retail file, beside DuckDB converting it to Parquet.
#   benches/online_retail.sh           (CDPLAKE_BIN=target/debug/cdplake for the dev build)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${CDPLAKE_BIN:-$repo/target/release/cdplake}
py=$repo/.cache/py/bin/python
csv=$repo/../shared/data/online_retail.csv
work=${BENCH_DIR:-/tmp/cdplake-bench-retail}
[ -x "$bin" ] || (cd "$repo" && cargo build --release --bin cdplake)
"$py" -c 'import duckdb' 2>/dev/null || "$repo/.cache/py/bin/pip" install --quiet duckdb==2.0.0
rm -rf "$work" && mkdir -p "$work" && cd "$work"
/usr/bin/time -f "ingest: %e s, %M KB" "$bin" ingest --source retail_transactions "$csv" > /dev/null
/usr/bin/time -f "clean: %e s, %M KB" "$bin" clean --source retail_transactions > /dev/null
/usr/bin/time -f "duckdb csv->parquet: %e s, %M KB" "$py" -c "import duckdb; duckdb.sql(\"COPY (SELECT * FROM read_csv_auto('$csv')) TO 'retail.parquet' (FORMAT parquet)\")"
