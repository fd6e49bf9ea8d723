#!/usr/bin/env bash
# Profile build at scale: cdplake vs DuckDB on the same tables, one run each.
#   benches/profiles.sh [PERSONS]      (default 100000; the issue's target is 1000000)
# Builds the release binary (reuses target/release; CDPLAKE_BIN picks another build), generates
# PERSONS people, ingests, cleans and resolves identities, then times:
#   1. `cdplake profiles` (events + profiles, full build, quality gates, daily snapshot), with the
#      time of each step (its stopwatch lines);
#   2. DuckDB running the equivalent aggregation SQL over the same curated.user_events,
#      curated.id_mapping and clean CRM Parquet files (reading them through Python deltalake);
#   3. an incremental `cdplake profiles` after one 1,000-row orders file for existing customers.
# REUSE=1 with the BENCH_DIR of benches/identity.sh goes on from that lake (identity already run).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
persons=${1:-100000}
bin=${CDPLAKE_BIN:-$repo/target/release/cdplake}
py=$repo/.cache/py/bin/python
work=${BENCH_DIR:-/tmp/cdplake-bench-profiles}
# The default log filter plus the step timings.
log=warn,buoyant_kernel::snapshot=off,deltalake_core::operations::merge=error,deltalake_core::writer::stats=error,cdplake_core::stopwatch=info
[ -x "$bin" ] || (cd "$repo" && cargo build --release --bin cdplake)
"$py" -c 'import duckdb, deltalake, pyarrow' 2>/dev/null || "$repo/.cache/py/bin/pip" install --quiet duckdb==2.0.0 deltalake==1.6.6 pyarrow==26.0.1
if [ "${REUSE:-0}" = 1 ] && [ -d "$work/lake/curated/id_mapping" ]; then
  cd "$work"
else
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  "$bin" generate --persons "$persons" --out data > /dev/null
  for dir in data/*/; do
    "$bin" ingest --source "$(basename "$dir")" "$dir"* > /dev/null
  done
  "$bin" clean > /dev/null
  "$bin" identity > /dev/null
fi
CDPLAKE_LOG=${CDPLAKE_LOG:-$log} /usr/bin/time -f "cdplake profiles (full build): %e s, %M KB" "$bin" profiles --as-of 2024-12-31
"$bin" query "SELECT count(*) AS events FROM curated.user_events" --format csv
"$py" - <<'PY'
import time, resource, duckdb, deltalake
t = time.time()
con = duckdb.connect()
for name, path in [("events", "lake/curated/user_events"), ("ids", "lake/curated/id_mapping"),
                   ("customers", "lake/clean/customers"), ("members", "lake/clean/crm_members")]:
    con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({deltalake.DeltaTable(path).file_uris()!r})")
n = con.execute("""
WITH p AS (SELECT one_id, count(*) AS identifiers FROM ids WHERE is_active GROUP BY one_id),
c AS (SELECT i.one_id, arg_max(c.email_hash, c.updated_at) AS email, arg_max(c.first_name, c.updated_at) AS first_name
      FROM customers c JOIN ids i ON i.id_type = 'customer_id' AND i.id_value = c.customer_id GROUP BY i.one_id),
m AS (SELECT i.one_id, arg_max(m.level, m.updated_at) AS tier, arg_max(m.email_hash, m.updated_at) AS email
      FROM members m JOIN ids i ON i.id_type = 'member_id' AND i.id_value = m.member_id GROUP BY i.one_id),
e AS (SELECT * FROM events WHERE one_id IS NOT NULL AND event_date <= DATE '2024-12-31'),
tx AS (SELECT one_id, count(DISTINCT order_id) FILTER (WHERE event_type = 'purchase') AS orders,
         sum(revenue) FILTER (WHERE event_type IN ('purchase', 'cancellation')) AS revenue,
         max(event_date) FILTER (WHERE event_type = 'purchase') AS last_purchase,
         count(DISTINCT event_date) FILTER (WHERE event_type = 'purchase') AS frequency,
         arg_max(status, event_time) AS last_status
       FROM e WHERE kind = 'transaction' GROUP BY one_id),
b AS (SELECT one_id, count(*) FILTER (WHERE event_type IN ('page_view', 'pageview', 'view', 'product_view')) AS views,
         max(event_time) AS last_active, count(DISTINCT session_id) FILTER (WHERE event_date > DATE '2024-12-01') AS sessions
       FROM e WHERE kind = 'behavior' GROUP BY one_id),
s AS (SELECT one_id, count(*) AS tickets, count(*) FILTER (WHERE status IN ('open', 'escalated')) AS open FROM e WHERE kind = 'support' GROUP BY one_id),
prof AS (
  SELECT p.one_id, coalesce(c.email, m.email) AS email, c.first_name, m.tier, coalesce(orders, 0) AS orders,
    round(coalesce(revenue, 0), 2) AS monetary, DATE '2024-12-31' - last_purchase AS recency_days, frequency,
    CASE WHEN last_purchase IS NULL THEN 'prospect' WHEN DATE '2024-12-31' - last_purchase < 30 THEN 'active'
         WHEN DATE '2024-12-31' - last_purchase < 90 THEN 'at_risk' WHEN DATE '2024-12-31' - last_purchase < 365 THEN 'lapsing'
         ELSE 'churned' END AS lifecycle_stage, views, last_active, sessions, tickets, open
  FROM p LEFT JOIN c USING (one_id) LEFT JOIN m USING (one_id) LEFT JOIN tx USING (one_id) LEFT JOIN b USING (one_id)
    LEFT JOIN s USING (one_id))
SELECT count(*) FROM (SELECT *, ntile(5) OVER (ORDER BY recency_days DESC) AS r, ntile(5) OVER (ORDER BY frequency) AS f,
  ntile(5) OVER (ORDER BY monetary) AS m FROM prof)
""").fetchone()[0]
print(f"duckdb equivalent SQL: {time.time() - t:.2f} s, {n} profiles, peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} KB")
PY
# One 1,000-row orders file for existing customers, then the incremental refresh.
mkdir -p late
"$bin" query "SELECT customer_id FROM clean.customers ORDER BY customer_id LIMIT 1000" --format csv | tail -n +2 \
  | awk 'BEGIN { print "order_id,customer_id,order_status,total_amount,item_count,channel,created_at,updated_at" }
         { printf "LATE-%d,%s,delivered,%d.50,2,web,2024-12-30 10:00:00,2024-12-30 10:00:00\n", NR, $1, 20 + NR % 300 }' > late/orders.csv
"$bin" ingest --source orders late/orders.csv > /dev/null
"$bin" clean --source orders > /dev/null
"$bin" identity > /dev/null
CDPLAKE_LOG=${CDPLAKE_LOG:-$log} /usr/bin/time -f "cdplake profiles (incremental, 1,000 new orders): %e s, %M KB" "$bin" profiles --as-of 2024-12-31
