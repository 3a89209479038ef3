# shellcheck shell=bash
# Sourced by the tests of tests/deploy: installs the pinned npm packages of
# k8s-validate/package-lock.json into a cache outside the repository
# ($GRADWATCH_NPM_CACHE, default $XDG_CACHE_HOME/gradwatch/k8s-validate) and
# copies the validators next to them (ES modules resolve packages next to
# the importing file). Sets $validators; exits 77 (ctest: skipped) without
# node or npm, or when the packages cannot be installed.
validators_source="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/k8s-validate"
command -v node >/dev/null || { echo "SKIPPED: node not installed (Debian: nodejs)"; exit 77; }
command -v npm >/dev/null || { echo "SKIPPED: npm not installed (Debian: npm)"; exit 77; }
validators="${GRADWATCH_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gradwatch/k8s-validate}"
mkdir -p "$validators"
# Reinstall only when the pinned versions changed. A lock makes concurrent
# tests wait for one installation.
(
  flock 9
  if ! cmp -s "$validators_source/package-lock.json" "$validators/package-lock.json" \
    || [[ ! -d "$validators/node_modules" ]]; then
    cp "$validators_source/package.json" "$validators_source/package-lock.json" "$validators/"
    if ! npm ci --prefix "$validators" --no-audit --no-fund --loglevel=error \
      >"$validators/npm.log" 2>&1; then
      cat "$validators/npm.log"
      rm -f "$validators/package-lock.json"
      exit 77
    fi
  fi
) 9>"$validators/.lock" || { echo "SKIPPED: npm ci failed (offline?)"; exit 77; }
cp "$validators_source"/*.mjs "$validators/"
