#!/usr/bin/env bash
# Installs and builds gradwatch, starts gradwatch-server with its embedded
# defaults on a free loopback port, and trains examples/spirals.json on it
# with the gradwatch CLI, streaming each layer's statistics to the terminal.
# The server is stopped when the script ends (or is interrupted). Extra
# arguments go to `gradwatch train`, e.g. `scripts/demo.sh --output jsonl`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/build.sh"

# shellcheck source=lib/local_server.sh
source "$root/scripts/lib/local_server.sh"
workdir="$(mktemp -d)"
log="$root/build/demo-server.log"
cleanup() {
  stop_local_server
  rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # run cleanup on Ctrl-C too

start_local_server demo "$root/build/server/gradwatch-server" "$workdir" \
  "$log" --metrics_listen 127.0.0.1:0 \
  --metrics_port_file "$workdir/metrics_port"
server="$local_server_address"
echo "demo: gradwatch-server (pid $local_server_pid) listening on $server; log in $log"
if [[ -s "$workdir/metrics_port" ]]; then
  echo "demo: Prometheus metrics at http://127.0.0.1:$(cat "$workdir/metrics_port")/metrics"
fi

gradwatch="$root/build/client/gradwatch"
"$gradwatch" --server "$server" --output text health
echo "demo: gradwatch train examples/spirals.json"
# Text output: a live table on a terminal, one line per step otherwise.
"$gradwatch" --server "$server" --output text train \
  "$root/examples/spirals.json" "$@"
