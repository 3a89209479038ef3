#!/usr/bin/env bash
# Checks deploy/docker-compose.yml against the files of deploy/ it wires
# together (k8s-validate/compose.mjs), and that the check rejects a stack
# publishing a port beyond 127.0.0.1 and one whose Grafana home dashboard is
# not mounted. Exits 77 (ctest: skipped) without node/npm.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$root/tests/deploy/npm_cache.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

compose="$root/deploy/docker-compose.yml"
node "$validators/compose.mjs" "$root/deploy"

sed 's/GRADWATCH_BIND:-127.0.0.1}:9090/GRADWATCH_BIND:-0.0.0.0}:9090/' "$compose" >"$work/bad-bind.yml"
sed 's#HOME_DASHBOARD_PATH: .*#HOME_DASHBOARD_PATH: /var/lib/grafana/home.json#' "$compose" >"$work/bad-home.yml"
for bad in bad-bind bad-home; do
  if cmp -s "$compose" "$work/$bad.yml"; then
    echo "FAILED: could not make $bad.yml from docker-compose.yml" >&2
    exit 1
  fi
  if node "$validators/compose.mjs" "$root/deploy" "$work/$bad.yml" >"$work/$bad.log" 2>&1; then
    echo "FAILED: the check accepted $bad.yml" >&2
    exit 1
  fi
  echo "rejected as expected: $bad.yml ($(grep -m1 '^  ' "$work/$bad.log" | sed 's/^ *//'))"
done
