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

# shellcheck source=lib/local_server.sh
source "$root/scripts/lib/local_server.sh"
workdir="$(mktemp -d)"
cleanup() {
  stop_local_server
  rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_local_server seed-plots "$build/server/gradwatch-server" "$workdir" \
  "$workdir/server.log" --metrics_listen= --data_dir=
GRADWATCH_SERVER="$local_server_address"
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
