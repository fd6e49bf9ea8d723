#!/usr/bin/env bash
# Write-back to PostgreSQL at scale: a full sync of curated.customer_profiles, then an incremental
# sync after a 1,000-person refresh.
#   benches/sync.sh [PERSONS]      (default 100000; the issue's figure is at 1000000)
# Reuses the lake of benches/profiles.sh (BENCH_DIR; built if missing); PostgreSQL from
# infra/postgres/postgres.sh (Debian's, on 127.0.0.1), a fresh database per run.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
persons=${1:-100000}
bin=${CDPLAKE_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/cdplake}
work=${BENCH_DIR:-/tmp/cdplake-bench-profiles}
[ -x "$bin" ] || (cd "$repo" && cargo build --release --bin cdplake)
if [ ! -d "$work/lake/curated/customer_profiles" ]; then
  BENCH_DIR=$work CDPLAKE_BIN=$bin bash "$repo/benches/profiles.sh" "$persons"
fi
eval "$(bash "$repo/infra/postgres/postgres.sh" env)"
db=cdplake_bench_$$
psql -q "$CDPLAKE_PG_URL" -c "CREATE DATABASE $db"
url=${CDPLAKE_PG_URL%/*}/$db
cd "$work"
/usr/bin/time -f "full sync: %e s, %M KB" "$bin" sync postgres --url "$url" --table curated.customer_profiles
psql -q "$url" -c "SELECT pg_size_pretty(pg_total_relation_size('curated.customer_profiles')) AS size, count(*) AS rows FROM curated.customer_profiles"
# 1,000 persons change: one new order each, identity, incremental profiles refresh.
mkdir -p late-sync
"$bin" query "SELECT customer_id FROM clean.customers ORDER BY customer_id DESC LIMIT 1000" --format csv | tail -n +2 \
  | awk 'BEGIN { print "order_id,customer_id,order_status,total_amount,item_count,channel,created_at,updated_at" }
         { printf "SYNC-%d-%d,%s,delivered,%d.25,1,web,2024-12-30 11:00:00,2024-12-30 11:00:00\n", '$$', NR, $1, 30 + NR % 200 }' > late-sync/orders.csv
"$bin" ingest --source orders late-sync/orders.csv > /dev/null
"$bin" clean --source orders > /dev/null
"$bin" identity > /dev/null
"$bin" profiles --as-of 2024-12-31 > /dev/null
/usr/bin/time -f "incremental sync (1,000 persons refreshed): %e s, %M KB" "$bin" sync postgres --url "$url" --table curated.customer_profiles
psql -q "$CDPLAKE_PG_URL" -c "DROP DATABASE $db"
