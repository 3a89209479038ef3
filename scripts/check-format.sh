#!/usr/bin/env bash
# Checks that the project's own C++ sources (.h, .cc) follow .clang-format;
# build directories and generated code are skipped. Prints the offending
# lines and exits non-zero if any file needs `clang-format -i`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
command -v clang-format >/dev/null || bash scripts/install-deps.sh

mapfile -t files < <(find . \( -path './build*' -o -path './.git' \
  -o -path '*/node_modules' -o -path './.cache' \) -prune -o \
  -type f \( -name '*.h' -o -name '*.cc' \) -print | sort)
if ((${#files[@]} == 0)); then
  echo "check-format: no C++ sources found" >&2
  exit 1
fi
clang-format --dry-run -Werror "${files[@]}"
echo "check-format: ${#files[@]} files follow .clang-format"
