#!/usr/bin/env bash
# Configures a Debug build with -DSNAPVIRT_SANITIZE=ON (ASan + UBSan, see the top
# CMakeLists.txt) in its own directory, builds the unit tests there and runs them.
#   run-sanitized-unit-tests.sh <source dir> <build dir> [Catch2 arguments...]
# SNAPVIRT_SANITIZE_JOBS sets the build's parallelism (default 2).
set -euo pipefail
src=${1:?source dir}
build=${2:?build dir}
shift 2

nice -n 10 cmake -S "$src" -B "$build" -DSNAPVIRT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log"; exit 1; }
# The build's output goes to a file (shown only if it fails), so what CI prints of this test is
# the run itself and, on a failure, the sanitizer's report.
nice -n 10 cmake --build "$build" --target unit_tests -j"${SNAPVIRT_SANITIZE_JOBS:-2}" >"$build.build.log" 2>&1 ||
  { tail -50 "$build.build.log"; exit 1; }

# LeakSanitizer needs to stop the process's threads (ptrace-like); where that is not allowed
# (some containers) it dies with "LeakSanitizer has encountered a fatal error". Probe first and
# fall back to detect_leaks=0 with a note rather than failing for the sandbox's sake.
detect_leaks=1
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int main() { return 0; }\n' >"$probe/p.cpp"
if c++ -fsanitize=address -o "$probe/p" "$probe/p.cpp" 2>/dev/null; then
  if ! ASAN_OPTIONS=detect_leaks=1 "$probe/p" >"$probe/out" 2>&1; then
    echo "note: LeakSanitizer cannot run here ($(head -c 200 "$probe/out")); running with detect_leaks=0" >&2
    detect_leaks=0
  fi
fi

export ASAN_OPTIONS="detect_leaks=${detect_leaks}:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$(dirname "$0")/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
echo "ASAN_OPTIONS=$ASAN_OPTIONS"
cd "$build"
# Catch2's log of passing tests is long; keep it in a file and print the end and any report.
status=0
./unit_tests --warn NoTests "$@" >"$build.run.log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  grep -n -A40 -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|FAILED:" "$build.run.log" | head -200 || true
fi
tail -3 "$build.run.log"
exit "$status"
