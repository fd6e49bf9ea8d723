#!/usr/bin/env bash
# Identity resolution at scale: cdplake vs label propagation in DuckDB, one run each.
#   benches/identity.sh [PERSONS]      (default 100000; the issue's target is 1000000)
# Builds the release binary (reuses target/release), generates PERSONS people, ingests and
# cleans every source, runs `cdplake identity` under /usr/bin/time (its stopwatch prints each
# step, the union-find alone included), scores it against the generator's truth, then runs the
# iterative min-label propagation that dbt-style identity packages use in DuckDB over the same
# *guarded* links the stitching uses (links a hub rule removes left out: on unguarded links hubs
# glue everyone together and make it slow), then an incremental batch: one new customers file
# (existing and new customers) on top.
# The lake stays in BENCH_DIR, so `REUSE=1 BENCH_DIR=... benches/profiles.sh` can go on from it.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
persons=${1:-100000}
bin=${CDPLAKE_BIN:-$repo/target/release/cdplake}
py=$repo/.cache/py/bin/python
work=${BENCH_DIR:-/tmp/cdplake-bench-identity}
[ -x "$bin" ] || (cd "$repo" && cargo build --release --bin cdplake)
"$py" -c 'import duckdb, deltalake, pyarrow' 2>/dev/null || "$repo/.cache/py/bin/pip" install --quiet duckdb==2.0.0 deltalake==1.6.6 pyarrow==26.0.1
rm -rf "$work" && mkdir -p "$work" && cd "$work"
"$bin" generate --persons "$persons" --out data > /dev/null
for dir in data/*/; do
  source=$(basename "$dir")
  "$bin" ingest --source "$source" "$dir"* > /dev/null
done
/usr/bin/time -f "clean: %e s, %M KB" "$bin" clean > /dev/null
log=warn,buoyant_kernel::snapshot=off,deltalake_core::operations::merge=error,deltalake_core::writer::stats=error,cdplake_core::stopwatch=info
CDPLAKE_LOG=${CDPLAKE_LOG:-$log} /usr/bin/time -f "identity: %e s, %M KB" "$bin" identity
"$bin" query "SELECT one_id, id_type, id_value, is_active FROM curated.id_mapping WHERE is_active" --format csv > mapping.csv
"$py" "$repo/benches/identity_score.py" data mapping.csv
"$py" - <<'PY'
import time, resource, duckdb, deltalake
links = deltalake.DeltaTable("lake/curated/identity_links").to_pyarrow_table()
hubs = deltalake.DeltaTable("lake/curated/identity_hubs").to_pyarrow_table()
t = time.time()
con = duckdb.connect()
con.register("links", links)
con.register("hubs", hubs)
# The links the stitching uses: none that a hub rule removes (a rule on one end names the other
# end's type, or '*' for every link).
con.execute("""CREATE TABLE edges AS SELECT id_type_a || ':' || id_value_a AS a, id_type_b || ':' || id_value_b AS b
    FROM links l WHERE NOT EXISTS (SELECT 1 FROM hubs h WHERE h.id_type = l.id_type_a AND h.id_value = l.id_value_a
                                   AND h.linked_type IN (l.id_type_b, '*'))
                   AND NOT EXISTS (SELECT 1 FROM hubs h WHERE h.id_type = l.id_type_b AND h.id_value = l.id_value_b
                                   AND h.linked_type IN (l.id_type_a, '*'))""")
print(f"guarded links: {con.execute('SELECT count(*) FROM edges').fetchone()[0]} of {links.num_rows}")
con.execute("CREATE TABLE labels AS SELECT node, node AS label FROM (SELECT a AS node FROM edges UNION SELECT b FROM edges)")
rounds = 0
while True:
    rounds += 1
    con.execute("""CREATE OR REPLACE TABLE next AS
        SELECT l.node, least(l.label, coalesce(min(n.label), l.label)) AS label FROM labels l
        LEFT JOIN (SELECT e.a AS node, x.label FROM edges e JOIN labels x ON x.node = e.b
                   UNION ALL SELECT e.b, x.label FROM edges e JOIN labels x ON x.node = e.a) n ON n.node = l.node
        GROUP BY l.node, l.label""")
    changed = con.execute("SELECT count(*) FROM next JOIN labels USING (node) WHERE next.label <> labels.label").fetchone()[0]
    con.execute("CREATE OR REPLACE TABLE labels AS SELECT * FROM next")
    if changed == 0:
        break
components = con.execute("SELECT count(DISTINCT label) FROM labels").fetchone()[0]
print(f"duckdb label propagation: {time.time() - t:.2f} s, {rounds} rounds, {components} components, "
      f"peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} KB (includes reading the links)")
PY
# An incremental batch on top: a customers file of existing and new customers.
"$bin" generate --persons 1000 --seed 99 --out late > /dev/null
echo "incremental batch: $(($(wc -l < late/customers/customers.csv) - 1)) customer rows"
"$bin" ingest --source customers late/customers/customers.csv > /dev/null
/usr/bin/time -f "clean (incremental): %e s, %M KB" "$bin" clean --source customers
CDPLAKE_LOG=${CDPLAKE_LOG:-$log} /usr/bin/time -f "identity (incremental): %e s, %M KB" "$bin" identity
