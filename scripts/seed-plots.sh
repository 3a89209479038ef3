#!/usr/bin/env bash
# Regenerates docs/plots/: starts gradwatch-server on a free loopback port,
# trains every spec of examples/seed/ on it with `gradwatch train`, and draws
# each job with `gradwatch plot` into docs/plots/<spec name>.svg. The server
# is stopped when the script ends.
#
# usage: scripts/seed-plots.sh [BUILD_DIR]   (default: build; it must hold
#        server/gradwatch-server and client/gradwatch, see scripts/build.sh)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)"
gradwatch="$build/client/gradwatch"
out_dir="$root/docs/plots"
mkdir -p "$out_dir"

workdir="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Port 0: the kernel picks a free port; the server writes it to the file.
"$build/server/gradwatch-server" --listen 127.0.0.1:0 \
  --port_file "$workdir/port" --metrics_listen= --data_dir= \
  >"$workdir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
  [[ -s "$workdir/port" ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "seed-plots: gradwatch-server did not start; its log:" >&2
    cat "$workdir/server.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ ! -s "$workdir/port" ]]; then
  echo "seed-plots: gradwatch-server did not report its port within 30 s" >&2
  exit 1
fi
GRADWATCH_SERVER="127.0.0.1:$(cat "$workdir/port")"
export GRADWATCH_SERVER

for spec in "$root"/examples/seed/*.json; do
  name="$(basename "$spec" .json)"
  # jsonl: one event per line, each carrying the job's id.
  "$gradwatch" --output jsonl train "$spec" >"$workdir/$name.jsonl"
  job="$(head -n 1 "$workdir/$name.jsonl" |
    sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p')"
  if [[ -z "$job" ]]; then
    echo "seed-plots: no job id in the stream of $name" >&2
    exit 1
  fi
  "$gradwatch" plot "$job" -o "$out_dir/$name.svg"
  diagnosis="$(grep -o '"diagnosis":"[A-Z_]*"' "$workdir/$name.jsonl" |
    tail -n 1 | cut -d'"' -f4)"
  echo "seed-plots: $name ($job, $diagnosis) -> docs/plots/$name.svg"
done
