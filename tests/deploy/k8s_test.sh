#!/usr/bin/env bash
# Renders deploy/k8s with `kubectl kustomize` and validates every object
# offline (tests/deploy/k8s-validate/validate.mjs: kubernetes-models schemas
# and the references between objects). Also checks that the validator
# rejects broken manifests, so that a pass means something.
#
# Exits 77 (ctest: skipped) when kubectl or node/npm is missing, or when the
# npm packages cannot be installed (npm_cache.sh: they go to a cache outside
# the repository).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
skip() {
  echo "SKIPPED: $*"
  exit 77
}

command -v kubectl >/dev/null || skip "kubectl not installed (Debian: kubernetes-client)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

kubectl kustomize "$root/deploy/k8s" >"$work/rendered.yaml"
echo "kubectl kustomize deploy/k8s: $(grep -c '^kind:' "$work/rendered.yaml") objects"

source "$root/tests/deploy/npm_cache.sh"

node "$validators/validate.mjs" "$work/rendered.yaml" \
  --expect Deployment/gradwatch --expect Service/gradwatch \
  --expect PersistentVolumeClaim/gradwatch-data \
  --expect ServiceMonitor/gradwatch --expect PrometheusRule/gradwatch \
  --expect ConfigMap/gradwatch-dashboard

# Broken copies must be rejected: a schema error (a string where an integer
# goes) and a reference error (a Service port aimed at no container port).
sed 's/^  replicas: 1$/  replicas: one/' "$work/rendered.yaml" >"$work/bad-schema.yaml"
sed 's/targetPort: metrics$/targetPort: prometheus/' "$work/rendered.yaml" >"$work/bad-ref.yaml"
for bad in bad-schema bad-ref; do
  if cmp -s "$work/rendered.yaml" "$work/$bad.yaml"; then
    echo "FAILED: could not make $bad.yaml from the rendered manifests" >&2
    exit 1
  fi
  if node "$validators/validate.mjs" "$work/$bad.yaml" >"$work/$bad.log" 2>&1; then
    echo "FAILED: the validator accepted $bad.yaml" >&2
    exit 1
  fi
  echo "rejected as expected: $bad.yaml ($(grep -m1 '^  ' "$work/$bad.log" | sed 's/^ *//'))"
done
