#!/usr/bin/env bash
# Profile look-up latency: `cdplake serve` under a bounded wrk load on 127.0.0.1.
#   benches/serve.sh [PERSONS]      (default 100000; the issue's figure is at 1000000)
# Reuses the lake of benches/profiles.sh (BENCH_DIR, REUSE=1; built if missing), builds segments,
# then: starts `cdplake serve`, times how long until /v1/health answers (time to open: reading
# id_mapping, customer_profiles, user_events, bitmaps and building the index), reads the index's
# memory from /v1/health and the process's RSS, and runs wrk (Debian's package) for 30 s with 16
# connections over 10,000 identifiers of every id type, picked at random per request:
# p50 / p99 latency and requests per second. The server is stopped at the end.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
persons=${1:-100000}
bin=${CDPLAKE_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/cdplake}
work=${BENCH_DIR:-/tmp/cdplake-bench-profiles}
port=${PORT:-8089}
duration=${DURATION:-30s}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
[ -x "$bin" ] || (cd "$repo" && cargo build --release --bin cdplake)
if [ ! -d "$work/lake/curated/customer_profiles" ]; then
  BENCH_DIR=$work CDPLAKE_BIN=$bin bash "$repo/benches/profiles.sh" "$persons"
fi
cd "$work"
"$bin" segments > /dev/null
"$bin" query "SELECT count(*) AS persons, (SELECT count(*) FROM curated.id_mapping WHERE is_active) AS identifiers \
  FROM curated.customer_profiles" --format csv
# 10,000 identifiers, every id type, as wrk request paths.
"$bin" query "SELECT id_type, id_value FROM curated.id_mapping WHERE is_active ORDER BY md5(id_value) LIMIT 10000" \
  --format csv | tail -n +2 > ids.csv
cat > lookup.lua <<'LUA'
local paths = {}
for line in io.lines("ids.csv") do
  local t, v = line:match("^([^,]+),(.+)$")
  if t then
    v = v:gsub("[^%w%-_.]", function(c) return string.format("%%%02X", string.byte(c)) end)
    paths[#paths + 1] = "/v1/profiles/" .. t .. "/" .. v .. "?events=20"
  end
end
math.randomseed(42)
request = function() return wrk.format("GET", paths[math.random(#paths)]) end
LUA
start=$(date +%s.%N)
"$bin" serve --listen "127.0.0.1:$port" --refresh-secs 3600 > serve.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
until curl -sf "127.0.0.1:$port/v1/health" > health.json 2>/dev/null; do
  kill -0 $server 2>/dev/null || { cat serve.log >&2; exit 1; }
  sleep 0.2
done
opened=$(date +%s.%N)
echo "time to open (index built, first answer): $(echo "$opened - $start" | bc) s"
python3 - <<'PY'
import json
s = json.load(open("health.json"))["index"]
print(f"index: {s['persons']} persons, {s['identifiers']} identifiers, {s['events']} events kept, "
      f"{s['memory_bytes'] / 2**20:.0f} MB in its arrays, built in {s['build_ms'] / 1000:.1f} s")
PY
echo "server RSS: $(ps -o rss= -p $server) KB"
# Warm-up, then the measured run.
wrk -t2 -c16 -d5s -s lookup.lua "http://127.0.0.1:$port" > /dev/null
wrk -t2 -c16 -d"$duration" --latency -s lookup.lua "http://127.0.0.1:$port" | tee wrk.txt
if grep -q 'Non-2xx' wrk.txt; then echo "some look-ups did not answer 200: the figures above are not valid" >&2; exit 1; fi
echo "server RSS after the load: $(ps -o rss= -p $server) KB"
