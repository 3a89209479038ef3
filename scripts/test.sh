#!/usr/bin/env bash
# Installs the Debian packages gradwatch needs, builds it in build/ with
# warnings as errors, and runs the whole test suite (unit and end-to-end
# tests, which start their own servers on free loopback ports). Exits
# non-zero if any test fails; ctest's summary is the last thing printed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/build.sh" -DGRADWATCH_WERROR=ON -DGRADWATCH_BUILD_TESTS=ON

ctest --test-dir "$root/build" --output-on-failure
