#!/usr/bin/env bash
# Installs the Debian packages gradwatch needs, then configures and builds
# it in build/ (Release). Idempotent: a second run rebuilds only what
# changed. Extra arguments go to the CMake configure step, e.g.
#   scripts/build.sh -DGRADWATCH_WERROR=ON
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/install-deps.sh"

# ccache, where installed, makes a rebuild after a small change cheap.
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache
    -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  "${launcher[@]}" "$@"
cmake --build "$root/build"
