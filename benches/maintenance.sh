#!/usr/bin/env bash
# A year of S3 events in miniature: BATCHES micro-batches (two small files each: a CRM change
# and app events) through the S3 handler's code path (the same `lambda::invoke_as` the Lambda
# runs, audit row included) on the local S3 server, once with `cdplake maintain` every EVERY
# batches and once without. Every WINDOW batches it prints one JSON line: files on storage, live
# files, log files and bytes over every table, curated.id_mapping's files, and the mean batch
# wall time of the window.
#   benches/maintenance.sh [BATCHES] [EVERY] [WINDOW]     (default 500 100 100)
# BENCH_MODES="maintained" (or "unmaintained") runs one of the two. Each mode starts on a fresh
# S3 server (its data in BENCH_DIR/s3-MODE): a server holding earlier runs' objects answers more
# slowly, and the two modes are compared on equal terms (BENCH_FRESH_S3=0 keeps the running one).
# The binary is CDPLAKE_BIN, else target/release/cdplake, else target/debug/cdplake (say which
# in BENCHMARKS.md: the dev build is several times slower per batch). Maintenance uses
# [retention] history_days = 0 here (BENCH_HISTORY_DAYS), so what it may delete is deleted at
# once; with the default 7/30 days nothing written during a run this short would be vacuumed.
# Likewise [maintenance] min_age_minutes = 1 (BENCH_MIN_AGE_MINUTES; default 60): the run
# compresses days into minutes, and maintenance runs between batches, never beside one.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
batches=${1:-500}
every=${2:-100}
window=${3:-100}
history=${BENCH_HISTORY_DAYS:-0}
min_age=${BENCH_MIN_AGE_MINUTES:-1}
bin=${CDPLAKE_BIN:-}
if [ -z "$bin" ]; then
  if [ -x "$repo/target/release/cdplake" ]; then bin=$repo/target/release/cdplake; else bin=$repo/target/debug/cdplake; fi
fi
work=${BENCH_DIR:-/tmp/cdplake-bench-maintenance}
mkdir -p "$work" && cd "$work"
# A fresh server for a mode: stop the one running (started by this script, whatever its data
# dir), start one on an empty data dir.
fresh_s3() {
  CDPLAKE_S3_DIR='' bash "$repo/infra/s3/seaweedfs.sh" stop || true
  bash "$repo/infra/s3/seaweedfs.sh" stop || true
  export CDPLAKE_S3_DIR=$work/s3-$1
  rm -rf "$CDPLAKE_S3_DIR"
  eval "$(bash "$repo/infra/s3/seaweedfs.sh" env)"
}
# A server this script started on its own data dir is stopped when it ends: the next run (or
# the test suite) cannot stop a server whose data dir it does not know.
if [ "${BENCH_FRESH_S3:-1}" = 1 ]; then
  trap 'bash "$repo/infra/s3/seaweedfs.sh" stop >/dev/null 2>&1 || true' EXIT
fi
cat > cdplake.toml <<TOML
[retention]
history_days = { raw = $history, clean = $history, curated = $history, _catalog = $history, _audit = $history, _quality = $history }
[maintenance]
min_age_minutes = $min_age
TOML
echo "binary: $bin ($(file -b "$bin" | cut -d, -f1)); $batches batches, maintenance every $every, history $history days, min age $min_age min; $(date -u +%FT%TZ)"
for mode in ${BENCH_MODES:-maintained unmaintained}; do
  if [ "${BENCH_FRESH_S3:-1}" = 1 ]; then fresh_s3 "$mode"; else eval "$(bash "$repo/infra/s3/seaweedfs.sh" env)"; fi
  lake="s3://${CDPLAKE_S3_BUCKET:-lake}/bench-maintenance-$mode-$(date +%s)"
  m=$every; [ "$mode" = unmaintained ] && m=0
  echo "== $mode ($lake)"
  CDPLAKE_LOG=error,buoyant_kernel=off "$bin" --lake "$lake" bench micro-batches --batches "$batches" --window "$window" --maintain-every "$m" \
    | tee "$mode.jsonl"
done
