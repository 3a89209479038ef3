#!/usr/bin/env bash
# Fuzzes gradwatch's input handling with libFuzzer (docs/fuzzing.md).
# Usage:
#   scripts/fuzz.sh [SECONDS]
# Installs clang-14 and its runtimes if missing, builds the fuzz targets
# (GRADWATCH_FUZZ: libFuzzer, AddressSanitizer, UndefinedBehaviorSanitizer)
# in build-fuzz-clang/ ($GRADWATCH_FUZZ_BUILD_DIR to change it), then runs
# each target for SECONDS (default 60) from a temporary copy of its seed
# corpus in tests/fuzz/corpus/, which is never written to. Exits non-zero
# if any target crashes, trips a sanitizer, leaks, allocates too much or
# hangs, after printing the path of the input that does it. The search is
# seeded with $GRADWATCH_FUZZ_SEED (default 1).
set -euo pipefail

seconds="${1:-60}"
if [[ ! "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SECONDS]" >&2
  exit 2
fi

# A fixed seed repeats the same search for the same code and corpus, so a
# CI run fails only for a change's own findings; set it to explore anew.
seed="${GRADWATCH_FUZZ_SEED:-1}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${GRADWATCH_FUZZ_BUILD_DIR:-$root/build-fuzz-clang}"
targets=(spec csv spec_json)

# libFuzzer and the sanitizer runtimes come with libclang-rt-14-dev.
packages=(clang-14 libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  echo "fuzz: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Without GRADWATCH_WERROR: a clang-only warning in the code under test
# should not keep it from being fuzzed (the gcc build enforces warnings).
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache
    -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DGRADWATCH_FUZZ=ON -DGRADWATCH_BUILD_TESTS=OFF -DGRADWATCH_BUILD_BENCH=OFF \
  "${launcher[@]}" >/dev/null
cmake --build "$build" --target "${targets[@]/%/_fuzzer}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Inputs far larger than any seed only slow the search down; a spec carries
# its CSV or inline rows, hence the larger bound there.
declare -A max_len=([spec]=16384 [csv]=8192 [spec_json]=16384)

failed=0
for target in "${targets[@]}"; do
  corpus="$work/$target"
  artifacts="$build/fuzz-artifacts/$target"
  log="$build/fuzz-artifacts/$target.log"
  mkdir -p "$corpus"
  rm -rf "$artifacts"
  mkdir -p "$artifacts"
  cp "$root/tests/fuzz/corpus/$target/"* "$corpus/"
  echo "fuzz: $target for ${seconds}s (log: $log)"
  # -malloc_limit_mb: under the targets' small inputs and tight limits no
  # single allocation comes near it, so one that does is a finding.
  status=0
  "$build/tests/fuzz/${target}_fuzzer" \
    -max_total_time="$seconds" -seed="$seed" -timeout=30 -rss_limit_mb=4096 \
    -malloc_limit_mb=512 -max_len="${max_len[$target]}" \
    -artifact_prefix="$artifacts/" -print_final_stats=1 \
    "$corpus" >"$log" 2>&1 || status=$?
  if ((status != 0)); then
    failed=1
    grep -E "^(==[0-9]+==ERROR|SUMMARY|[a-z_]+_fuzzer: )" "$log" | head -5 || true
    echo "fuzz: $target FAILED (exit $status)"
    found=0
    for input in "$artifacts"/*; do
      [[ -e "$input" ]] || continue
      found=1
      echo "fuzz: reproducer: $input"
      echo "  run it:  $build/tests/fuzz/${target}_fuzzer $input"
      echo "  keep it: cp $input" \
        "$root/tests/fuzz/corpus/$target/regression-<what-it-found>"
    done
    ((found)) || tail -n 20 "$log"
  else
    grep -E "^Done [0-9]+ runs" "$log" | sed "s/^/fuzz: $target: /" || true
  fi
done
exit "$failed"
