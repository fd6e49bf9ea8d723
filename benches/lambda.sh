#!/usr/bin/env bash
# The Lambda binary: zipped size and cold start, for each build given (default: the size-optimised
# `lambda-release` profile, and the plain `--release` build for comparison).
#   benches/lambda.sh [BINARY...]
# The default build is `cargo lambda build --profile lambda-release --target
# x86_64-unknown-linux-gnu.2.34` (about an hour on 2 cores: fat LTO over deltalake + datafusion).
# For each binary: its size, the size of the deployment zip (`bootstrap` at the zip's root,
# deflate level 9, as `cargo lambda build --output-format zip` makes it), the newest glibc symbol
# version it needs (provided.al2023 ships glibc 2.34), then RUNS cold starts against a local
# implementation of the Lambda Runtime API: the time from exec to the binary's first
# `GET /runtime/invocation/next` (init done, ready for the first event), and to the response of a
# first `{"sql": ...}` query event over the demo lake.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
py=$repo/.cache/py/bin/python
[ -x "$py" ] || py=python3
runs=${RUNS:-10}
work=${BENCH_DIR:-/tmp/cdplake-bench-lambda}
if [ $# -eq 0 ]; then
  # cargo-lambda and zig (PyPI, as tests/run.sh installs them) link against glibc 2.34, the
  # version provided.al2023 ships; a plain build on a newer distribution may need newer symbols.
  "$py" -c 'import ziglang' 2>/dev/null || "$repo/.cache/py/bin/pip" install --quiet ziglang
  (cd "$repo" && PATH="$repo/.cache/py/bin:$PATH" cargo lambda build --profile lambda-release --locked \
    --bin cdplake-lambda --target x86_64-unknown-linux-gnu.2.34 --output-format zip)
  set -- "$repo/target/x86_64-unknown-linux-gnu/lambda-release/cdplake-lambda"
  [ -x "$repo/target/release/cdplake-lambda" ] && set -- "$@" "$repo/target/release/cdplake-lambda"
fi
cli=${CDPLAKE_BIN:-$repo/target/debug/cdplake}
[ -x "$cli" ] || (cd "$repo" && cargo build --bin cdplake)
rm -rf "$work" && mkdir -p "$work" && (cd "$work" && "$cli" demo > /dev/null)
for bin in "$@"; do
  echo "== $bin"
  "$py" - "$bin" "$work" "$runs" <<'PY'
import http.server, json, os, statistics, subprocess, sys, threading, time, zipfile

binary, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
zip_path = os.path.join(work, "bootstrap.zip")
with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    info = zipfile.ZipInfo("bootstrap")
    info.external_attr = 0o755 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(binary, "rb") as f:
        z.writestr(info, f.read(), compresslevel=9)
mb = lambda n: f"{n / 1e6:.1f} MB"
symbols = subprocess.run(["objdump", "-T", binary], capture_output=True, text=True).stdout
glibc = sorted({s.split("GLIBC_")[1].split()[0].rstrip(")") for s in symbols.split() if s.startswith("GLIBC_") or "(GLIBC_" in s},
               key=lambda v: tuple(int(p) for p in v.split(".")))
print(f"binary {mb(os.path.getsize(binary))}, zipped {mb(os.path.getsize(zip_path))}, newest glibc symbol {glibc[-1] if glibc else 'none'}")

EVENT = json.dumps({"sql": "SELECT lifecycle_stage, count(*) AS n FROM curated.customer_profiles GROUP BY 1 ORDER BY 1"}).encode()

class Runtime(http.server.BaseHTTPRequestHandler):
    marks = {}
    def log_message(self, *args):
        pass
    def do_GET(self):
        if "next" not in Runtime.marks:
            Runtime.marks["next"] = time.perf_counter()
            self.send_response(200)
            for k, v in [("Lambda-Runtime-Aws-Request-Id", "bench-1"), ("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60000)),
                         ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:eu-west-1:000000000000:function:bench"),
                         ("Content-Type", "application/json"), ("Content-Length", str(len(EVENT)))]:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(EVENT)
        else:  # the second poll: hold it, the run is over
            Runtime.marks["done"].wait(30)
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Runtime.marks["response"] = time.perf_counter()
        Runtime.marks["ok"] = self.path.endswith("/response")
        Runtime.marks["body"] = body
        self.send_response(202)
        self.end_headers()
        Runtime.marks["done"].set()

ready, answered = [], []
for run in range(runs):
    Runtime.marks = {"done": threading.Event()}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Runtime)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_port}", AWS_LAMBDA_FUNCTION_NAME="bench",
               AWS_LAMBDA_FUNCTION_MEMORY_SIZE="1024", AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
               AWS_LAMBDA_LOG_STREAM_NAME="bench", AWS_LAMBDA_LOG_GROUP_NAME="bench", CDPLAKE_HANDLER="query",
               CDPLAKE_LAKE=os.path.join(work, "lake"), CDPLAKE_LOG="warn")
    start = time.perf_counter()
    process = subprocess.Popen([binary], env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if not Runtime.marks["done"].wait(60):
        process.kill()
        sys.exit(f"no response within 60 s: {process.stderr.read().decode()[-2000:]}")
    process.kill()
    process.wait()
    server.shutdown()
    if not Runtime.marks["ok"]:
        sys.exit(f"the query failed: {Runtime.marks['body'][:500]}")
    ready.append((Runtime.marks["next"] - start) * 1000)
    answered.append((Runtime.marks["response"] - start) * 1000)
rows = json.loads(Runtime.marks["body"]).get("rows")
print(f"cold start to ready (median of {runs}): {statistics.median(ready):.1f} ms (min {min(ready):.1f}, max {max(ready):.1f})")
print(f"cold start to the first query's response (median): {statistics.median(answered):.1f} ms; {len(rows or [])} rows")
PY
done
