# Shared by the readme tests (sourced): runs scripts/run as a user would, but on its own
# kernel-chosen port, its own state directory and socket, and its own throwaway copy of the demo
# VM (a unique name svt-<pid>-readme-…), all removed on every exit path. Never touches the real
# snapvirt-demo nor anything else it did not create.
#   source lib.sh SOURCE_DIR BUILD_DIR TAG
# Sets SRC, BUILD, WORK (a temporary folder), DEMO, DEMO_DIR, SOCKET, PORT, RUN_LOG.

set -euo pipefail
SRC=$(cd "$1" && pwd)
BUILD=$(cd "$2" && pwd)
TAG=$3
source "$SRC/scripts/lib/demo.sh"

WORK=$(mktemp -d "/tmp/snapvirt-readme-$TAG-XXXXXX")
DEMO="svt-$$-readme-$TAG"   # the test guests' prefix: swept by other tests if this one is killed
DEMO_DIR=/var/lib/libvirt/images/snapvirt-tests
SOCKET="$WORK/var/snapvirtd.sock"
RUN_LOG="$WORK/run.log"
RUN_PID=""
DAEMON_PID=""

say() { printf '%s\n' "--- $*" >&2; }
fail() {
  printf 'FAILED: %s\n' "$*" >&2
  exit 1
}

cleanup() {
  local rc=$?
  set +e
  if [ -n "$RUN_PID" ] && kill -0 "$RUN_PID" 2>/dev/null; then
    kill -TERM "$RUN_PID" 2>/dev/null
    for _ in $(seq 1 150); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$RUN_PID" 2>/dev/null; then
      [ -n "$DAEMON_PID" ] && kill -KILL "$DAEMON_PID" 2>/dev/null
      kill -KILL "$RUN_PID" 2>/dev/null
    fi
  fi
  if [ "$rc" != 0 ] && [ -f "$RUN_LOG" ]; then
    echo "--- scripts/run's output (last 60 lines):" >&2
    tail -n 60 "$RUN_LOG" >&2
  fi
  remove_demo_vm "$DEMO" "$DEMO_DIR"
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts scripts/run in the background and waits until it says it serves.
start_scripts_run() {
  say "scripts/run with demo '$DEMO', state in $WORK/var"
  env -u SNAPVIRT_URL -u SNAPVIRT_TOKEN \
    SNAPVIRT_BUILD_DIR="$BUILD" SNAPVIRT_RUN_LISTEN=127.0.0.1:0 SNAPVIRT_RUN_VAR="$WORK/var" \
    SNAPVIRT_RUN_DEMO="$DEMO" SNAPVIRT_RUN_DEMO_DIR="$DEMO_DIR" SNAPVIRT_RUN_NO_BUILD=1 \
    "$SRC/scripts/run" >"$RUN_LOG" 2>&1 &
  RUN_PID=$!
  local deadline=$((SECONDS + 180))
  until grep -q "snapvirt serves on" "$RUN_LOG"; do
    kill -0 "$RUN_PID" 2>/dev/null || fail "scripts/run ended before it served"
    [ "$SECONDS" -lt "$deadline" ] || fail "scripts/run did not serve within 180 s"
    sleep 0.2
  done
  DAEMON_PID=$(pgrep -P "$RUN_PID" -x snapvirtd || true)
  PORT=$(sed -n 's/.*Listening on http:\/\/127\.0\.0\.1:\([0-9][0-9]*\)\..*/\1/p' "$RUN_LOG" | head -n 1)
  [ -n "$PORT" ] || fail "no 'Listening on http://127.0.0.1:PORT' line in scripts/run's output"
  say "serving on 127.0.0.1:$PORT (snapvirtd pid ${DAEMON_PID:-?})"
}

# GET on the daemon's Unix socket.
get() { curl -s --fail-with-body --unix-socket "$SOCKET" "http://localhost$1"; }

# Waits until the demo guest's boot sector has filled its RAM and counts (it then listens to the
# ACPI power button).
wait_demo_booted() {
  local deadline=$((SECONDS + 60))
  until virsh -q -c qemu:///system qemu-monitor-command "$DEMO" --hmp 'xp /1wx 0x508' 2>/dev/null |
        grep -q 0x00000001; do
    [ "$SECONDS" -lt "$deadline" ] || fail "the demo guest did not boot within 60 s"
    sleep 0.2
  done
}
