#!/usr/bin/env bash
# Builds the libFuzzer harness with clang (its own build directory) and fuzzes it for a bounded
# time, starting from the seed corpus and the dictionary. Exits non-zero on any crash, leak,
# timeout or out-of-memory; the input that caused it is kept in <build>/artifacts/.
#   run-fuzz.sh <source dir> <build dir> [seconds]
# SNAPVIRT_FUZZ_SECONDS overrides the time (default 60); extra libFuzzer flags can be given in
# SNAPVIRT_FUZZ_FLAGS. Reproduce a finding with: <build>/fuzz_api <artifact>
set -euo pipefail
src=${1:?source dir}
build=${2:?build dir}
seconds=${SNAPVIRT_FUZZ_SECONDS:-${3:-60}}
here="$src/tests/fuzz"

cxx=${SNAPVIRT_FUZZ_CXX:-clang++}
command -v "$cxx" >/dev/null ||
  { echo "error: $cxx not found; install clang and libclang-rt-14-dev (scripts/lib/deps-security.sh)" >&2; exit 1; }

nice -n 10 cmake -S "$here/standalone" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=None \
  >"$build.configure.log" 2>&1 || { cat "$build.configure.log" >&2; exit 1; }
nice -n 10 cmake --build "$build" -j"${SNAPVIRT_FUZZ_JOBS:-2}" || {
  echo "error: the fuzz build failed. It compiles the api/ sources with $cxx ($("$cxx" --version | head -1));" >&2
  echo "       they must stay compilable by it (e.g. no C++20 parenthesized aggregate init before clang 16)." >&2
  exit 1
}

# The committed seeds stay untouched: the fuzzer adds what it finds to a working corpus.
work="$build/corpus"
artifacts="$build/artifacts"
mkdir -p "$work" "$artifacts"
rm -f "$artifacts"/crash-* "$artifacts"/leak-* "$artifacts"/timeout-* "$artifacts"/oom-* "$artifacts"/slow-unit-*

# First every seed once (a regression run), then the bounded fuzzing.
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
status=0
"$build/fuzz_api" -runs=0 -artifact_prefix="$artifacts/" "$here/corpus" || status=$?
if [ "$status" = 0 ]; then
  # shellcheck disable=SC2086
  "$build/fuzz_api" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=8192 \
    -dict="$here/http.dict" -artifact_prefix="$artifacts/" -print_final_stats=1 \
    ${SNAPVIRT_FUZZ_FLAGS:-} "$work" "$here/corpus" || status=$?
fi
if [ "$status" != 0 ]; then
  echo "fuzz_api failed (exit $status). Inputs kept:" >&2
  for f in "$artifacts"/*; do
    [ -e "$f" ] || continue
    echo "--- $f (base64):" >&2
    base64 -w 76 "$f" | head -40 >&2
  done
  exit 1
fi
echo "fuzz_api: no crash in ${seconds}s; working corpus: $(find "$work" -type f | wc -l) inputs"
