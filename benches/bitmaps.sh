#!/usr/bin/env bash
# Audience set operations on bitmaps vs SQL joins in DuckDB, one run each.
#   benches/bitmaps.sh [MEMBERS]      (default 50000000 members per segment)
# For each layout (random ids, clustered ids) `cdplake bench bitmaps` makes segments a, b, c of
# MEMBERS ids each out of 2 × MEMBERS persons, times AND / OR / ANDNOT / a three-way expression
# in process (decoding the stored bytes included), stores them in curated.segment_bitmaps, and
# writes the ids as Parquet. Then `cdplake audience build` runs the same expressions end to end
# (reading the bitmaps from Delta), and DuckDB runs the equivalent join / union / anti-join on
# the same ids, loaded into tables first (its load time is not counted).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
members=${1:-50000000}
bin=${CDPLAKE_BIN:-$repo/target/release/cdplake}
py=$repo/.cache/py/bin/python
work=${BENCH_DIR:-/tmp/cdplake-bench-bitmaps}
[ -x "$bin" ] || (cd "$repo" && cargo build --release --bin cdplake)
"$py" -c 'import duckdb' 2>/dev/null || "$repo/.cache/py/bin/pip" install --quiet duckdb==2.0.0
rm -rf "$work" && mkdir -p "$work" && cd "$work"
for layout in random clustered; do
  echo "== $layout, $members members per segment"
  "$bin" bench bitmaps --members "$members" --layout "$layout" --out "ids-$layout" \
    | "$py" -c 'import json,sys; r=json.load(sys.stdin); [print(f"  cdplake in process: {n}: {ms:.2f} ms, {c} ids") for n,ms,c in r["timings_ms"]]; print("  serialized:", r["serialized_bytes"])'
  as_of=$([ "$layout" = random ] && echo 2099-01-01 || echo 2099-01-02)
  for expr in "a AND b" "a OR b" "a AND NOT b" "(a OR b) AND NOT c"; do
    /usr/bin/time -f "    (whole command: %e s, %M KB)" "$bin" audience build "bench-$layout" --expr "$expr" --as-of "$as_of" --count-only \
      | sed 's/^/  cdplake audience build: /'
  done
  "$py" - "ids-$layout" <<'PY'
import sys, time, duckdb
d = sys.argv[1]
con = duckdb.connect()
for t in "abc":
    con.execute(f"CREATE TABLE {t} AS SELECT user_int_id FROM read_parquet('{d}/{t}.parquet')")
queries = {
    "a AND b": "SELECT count(*) FROM a JOIN b USING (user_int_id)",
    "a OR b": "SELECT count(*) FROM (SELECT user_int_id FROM a UNION SELECT user_int_id FROM b)",
    "a AND NOT b": "SELECT count(*) FROM a ANTI JOIN b USING (user_int_id)",
    "(a OR b) AND NOT c": "SELECT count(*) FROM (SELECT user_int_id FROM a UNION SELECT user_int_id FROM b) u ANTI JOIN c USING (user_int_id)",
}
for name, sql in queries.items():
    t = time.time()
    n = con.execute(sql).fetchone()[0]
    print(f"  duckdb: {name}: {(time.time() - t) * 1000:.1f} ms, {n} ids")
PY
done
