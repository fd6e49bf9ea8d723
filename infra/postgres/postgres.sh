#!/usr/bin/env bash
# A real PostgreSQL on 127.0.0.1 for the write-back tests and local use (`cdplake sync postgres`).
#
# Uses Debian's PostgreSQL (`apt-get install postgresql`, installed here when missing and run as
# root), in a cluster of its own under .cache/postgres (trust authentication, loopback only), so it
# never touches a system cluster.
#
#   infra/postgres/postgres.sh install   install Debian's postgresql package if initdb is missing
#   infra/postgres/postgres.sh start     install if needed, create the cluster, start it, wait until ready
#   infra/postgres/postgres.sh env       start if needed, then print CDPLAKE_PG_URL to `eval`
#   infra/postgres/postgres.sh stop      stop the cluster started by this script
#   infra/postgres/postgres.sh status    say whether it is running
#
# Use it:   eval "$(infra/postgres/postgres.sh env)" && cdplake sync postgres --url "$CDPLAKE_PG_URL"
#
# Settings (environment): CDPLAKE_PG_PORT (54329), CDPLAKE_PG_DIR (.cache/postgres).
# As root, the server runs as the `postgres` user (PostgreSQL refuses to run as root).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
port=${CDPLAKE_PG_PORT:-54329}
dir=${CDPLAKE_PG_DIR:-$repo/.cache/postgres}
data=$dir/data
log=$dir/postgres.log
user=cdplake

say() { echo "postgres: $*" >&2; }

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

install() {
  if [ -n "$(bindir)" ] && [ -x "$(bindir)/initdb" ]; then return 0; fi
  if [ "$(id -u)" != 0 ]; then
    say "PostgreSQL is not installed; run as root: apt-get install -y postgresql"
    exit 1
  fi
  say "installing Debian's postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
}

# Run a PostgreSQL program as the cluster's owner.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

running() { [ -f "$data/postmaster.pid" ] && as_owner "$(bindir)/pg_ctl" -D "$data" status >/dev/null 2>&1; }

ready() { "$(bindir)/pg_isready" -q -h 127.0.0.1 -p "$port" 2>/dev/null; }

start() {
  install
  if running && ready; then return 0; fi
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    say "creating a cluster in $data"
    as_owner "$(bindir)/initdb" -D "$data" -U "$user" --auth=trust --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
  fi
  if ready; then
    say "port $port is taken by a server this script did not start; use another: CDPLAKE_PG_PORT=54330 $0 start"
    exit 1
  fi
  as_owner "$(bindir)/pg_ctl" -D "$data" -l "$log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c fsync=off -c full_page_writes=off" start >/dev/null \
    || { tail -n 30 "$log" >&2; exit 1; }
  for _ in $(seq 1 60); do ready && break; sleep 0.5; done
  ready || { say "not ready after 30 s; see $log"; exit 1; }
  say "running on 127.0.0.1:$port (data in $data)"
}

stop() {
  if running; then as_owner "$(bindir)/pg_ctl" -D "$data" -m fast stop >/dev/null; say "stopped"; fi
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  env) start; echo "export CDPLAKE_PG_URL=postgres://$user@127.0.0.1:$port/postgres" ;;
  stop) stop ;;
  status) if running && ready; then say "running on 127.0.0.1:$port"; else say "not running"; exit 1; fi ;;
  *) echo "usage: $0 install|start|env|stop|status" >&2; exit 2 ;;
esac
