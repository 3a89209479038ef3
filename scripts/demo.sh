#!/usr/bin/env bash
# Installs and builds gradwatch, starts gradwatch-server with its embedded
# defaults on a free loopback port, and trains examples/spirals.json on it
# with the gradwatch CLI, streaming each layer's statistics to the terminal.
# The server is stopped when the script ends (or is interrupted). Extra
# arguments go to `gradwatch train`, e.g. `scripts/demo.sh --output jsonl`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/build.sh"

workdir="$(mktemp -d)"
log="$root/build/demo-server.log"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # run cleanup on Ctrl-C too

# Port 0: the kernel picks free ports; the server writes them to the files.
"$root/build/server/gradwatch-server" --listen 127.0.0.1:0 \
  --port_file "$workdir/port" --metrics_listen 127.0.0.1:0 \
  --metrics_port_file "$workdir/metrics_port" >"$log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
  [[ -s "$workdir/port" ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "demo: gradwatch-server did not start; its log:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ ! -s "$workdir/port" ]]; then
  echo "demo: gradwatch-server did not report its port within 30 s" >&2
  exit 1
fi
server="127.0.0.1:$(cat "$workdir/port")"
echo "demo: gradwatch-server (pid $server_pid) listening on $server; log in $log"
if [[ -s "$workdir/metrics_port" ]]; then
  echo "demo: Prometheus metrics at http://127.0.0.1:$(cat "$workdir/metrics_port")/metrics"
fi

gradwatch="$root/build/client/gradwatch"
"$gradwatch" --server "$server" --output text health
echo "demo: gradwatch train examples/spirals.json"
# Text output: a live table on a terminal, one line per step otherwise.
"$gradwatch" --server "$server" --output text train \
  "$root/examples/spirals.json" "$@"
