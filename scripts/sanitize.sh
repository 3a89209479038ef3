#!/usr/bin/env bash
# Builds gradwatch with a sanitizer in build-<kind>/ and runs the test suite
# there. Usage:
#   scripts/sanitize.sh address|thread [ctest arguments...]
# "address" is AddressSanitizer plus UndefinedBehaviorSanitizer (any UB
# report aborts the test); "thread" is ThreadSanitizer. Extra arguments go to
# ctest, e.g. scripts/sanitize.sh address -R 'JobManager' -E e2e.
# Suppressions in scripts/sanitizers/ cover findings inside Debian's
# uninstrumented libraries only; see docs/sanitizers.md.
set -euo pipefail

kind="${1:-}"
case "$kind" in
  address | thread) shift ;;
  *)
    echo "usage: $0 address|thread [ctest arguments...]" >&2
    exit 2
    ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
supp="$root/scripts/sanitizers"
build="$root/build-$kind"

# Exported before the build too: gtest_discover_tests runs each test binary
# at build time to list its tests.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="suppressions=$supp/tsan.supp:halt_on_error=0:second_deadlock_stack=1:history_size=4"

# ccache, where installed, makes a rebuild after a small change cheap.
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache
    -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
# Release (-O3) as in production; the sanitizer flags add -g. At -O2 GCC 12
# wrongly reports -Wmismatched-new-delete in step_allocation_test.cc.
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DGRADWATCH_SANITIZE="$kind" -DGRADWATCH_BUILD_BENCH=OFF \
  -DGRADWATCH_WERROR=ON -DGRADWATCH_BUILD_TESTS=ON "${launcher[@]}"
cmake --build "$build"

status=0
ctest --test-dir "$build" --output-on-failure "$@" || status=$?

# A report does not always fail the test that caused it: TSan prints and
# goes on (halt_on_error=0), and a server that a test's fixture kills with
# SIGKILL never reaches the exit-time checks that would make its status
# non-zero. So a report anywhere in the tests' output fails the run.
log="$build/Testing/Temporary/LastTest.log"
if grep -E "^SUMMARY: (Address|Leak|Thread|UndefinedBehavior)Sanitizer" \
  "$log"; then
  echo "sanitizer reports in the tests' output above; all of it: $log" >&2
  status=1
fi
exit "$status"
