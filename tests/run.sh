#!/usr/bin/env bash
# The whole test suite, from a fresh clone, with nothing installed by hand:
#   1. starts the local S3 server (SeaweedFS, installed into .cache/py if missing),
#   2. installs the independent readers for the interop tests (Python deltalake + pyarrow, and
#      DuckDB, which recomputes RFM on the raw Online Retail file; DuckDB's delta extension in a
#      venv of its own), cfn-lint, which checks the deployment template infra/template.yaml, and
#      cargo-lambda, whose Lambda runtime emulator runs the Lambda binary in a test,
#   3. installs Debian's PostgreSQL (if missing) and starts a cluster of the tests' own on
#      127.0.0.1 (infra/postgres/postgres.sh), for the write-back tests, and Debian's Chromium (if
#      missing), which renders the HTML report in a test,
#   4. builds every target (the `cdplake` binary too: the CLI tests run it), dev profile,
#   5. runs every test of the workspace.
# .ci/run calls this script. Extra arguments go to `cargo test` (e.g. a test-name filter).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
venv=${CDPLAKE_PY:-$repo/.cache/py}

step() { printf '\n== %s\n' "$*" >&2; }

step "S3 server"
bash infra/s3/seaweedfs.sh start

step "Python tools (deltalake, pyarrow, duckdb, cfn-lint, cargo-lambda) in $venv"
if ! "$venv/bin/python" -c 'import deltalake, pyarrow, duckdb, cfnlint' 2>/dev/null || [ ! -x "$venv/bin/cargo-lambda" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "deltalake==1.6.6" "pyarrow==26.0.1" "duckdb==2.0.0" "cfn-lint==1.51.0" "cargo-lambda==1.9.2"
fi

step "DuckDB with its delta extension in $repo/.cache/py-duckdb-delta (the extension pins its DuckDB)"
ddb=$repo/.cache/py-duckdb-delta
if ! "$ddb/bin/python" -c 'import duckdb, duckdb_extension_delta' 2>/dev/null; then
  python3 -m venv "$ddb"
  "$ddb/bin/pip" install --quiet --disable-pip-version-check "duckdb==1.5.5" "duckdb-extension-delta==1.5.5"
fi

step "PostgreSQL (Debian's package) on 127.0.0.1, for the write-back tests"
bash infra/postgres/postgres.sh start

step "Chromium (Debian's package), which renders the report in a test"
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "Chromium is missing: run 'apt-get install -y chromium' as root" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi

step "deployment template (cfn-lint)"
"$venv/bin/cfn-lint" infra/template.yaml

step "build (dev profile)"
cargo build --locked --workspace --all-targets

step "tests"
cargo test --locked --workspace "$@"
