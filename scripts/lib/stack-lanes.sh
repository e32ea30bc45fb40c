# The lanes of scripts/test (sourced by it): each builds the tree and runs ctest inside a
# private libvirt stack (scripts/stack), then checks that nothing of the stack is left. Around
# the lanes, the isolation check with two sentinels.

STACKS_TMP=${SNAPVIRT_STACKS_TMP:-/var/tmp/snapvirt-stacks}
SESSION_PID= ROOT_JOB= FAKE_PID= SENTINEL_PID= RUN_DIR= FAILED=()

# "3m07s"
duration() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# part FILE NAME COMMAND...: runs COMMAND, prints and appends "NAME  <time>  <result>" to FILE.
part() {
  local file=$1 name=$2
  shift 2
  local start=$SECONDS rc=0
  "$@" || rc=$?
  local line
  line=$(printf '%-22s %8s  %s' "$name" "$(duration $((SECONDS - start)))" "$([ $rc = 0 ] && echo ok || echo "FAILED ($rc)")")
  printf '%s\n' "$line" >>"$file"
  log "$line"
  return $rc
}

# ---- inside a lane's stack (scripts/test --in-lane LANE BUILD_DIR [ctest args]) ---------------
lane_build() {
  local lane=$1 build=$2
  local cfg=(-DCMAKE_BUILD_TYPE="${SNAPVIRT_BUILD_TYPE:-RelWithDebInfo}")
  # Lane 13 builds only what it runs (the sanitizer, fuzz, browser and OpenAPI suites and the
  # benchmarks are lane 12's).
  [ "$lane" = 13 ] && cfg+=(-DSNAPVIRT_TEST_SUITES="cli;packaging" -DSNAPVIRT_BENCH=OFF)
  mkdir -p "$build"
  nice -n 10 cmake -S "$SNAPVIRT_ROOT" -B "$build" "${cfg[@]}" >"$build/configure.log" 2>&1 ||
    { cat "$build/configure.log" >&2; return 1; }
  nice -n 10 cmake --build "$build" -j"${SNAPVIRT_BUILD_JOBS:-$(nproc)}"
}

lane_ctest() {
  local build=$1
  shift
  cd "$build"
  ctest --output-on-failure --timeout 900 -j"${SNAPVIRT_TEST_JOBS:-2}" "$@"
}

lane_inside() {
  local lane=$1 build=$2
  shift 2
  local times="$SNAPVIRT_STACK_DIR/times"
  log "Lane $lane: $(. /etc/os-release && echo "$PRETTY_NAME"), $(libvirtd --version), $(c++ --version | head -1)"
  part "$times" "lane $lane: build" lane_build "$lane" "$build" || return 1
  part "$times" "lane $lane: tests" lane_ctest "$build" "$@"
}

# ---- outside -----------------------------------------------------------------------------------

# Makes the suite's root (scripts/test --make-root SUITE FILE): its path goes to FILE.
make_root_job() {
  local suite=$1 out=$2
  local start=$SECONDS root
  local made=reused
  [ -f "$(stack_root_path "$suite")/.snapvirt-complete" ] || made=made
  root=$(stack_root_ensure "$suite")
  printf '%s\n' "$root" >"$out"
  printf '%-22s %8s  %s\n' "lane 13: root ($made)" "$(duration $((SECONDS - start)))" "ok" >"$out.time"
}

# Runs one lane: a stack session whose command builds and tests, then the leftovers check.
run_lane() {
  local lane=$1
  local dir="$RUN_DIR/lane-$lane" build root= session_opts=()
  local start=$SECONDS rc=0
  mkdir -p "$dir"
  if [ "$lane" = 12 ]; then
    build=$BUILD_DIR
  else
    build=$SNAPVIRT_ROOT/build-13
    log "Lane 13: waiting for the Debian 13 root"
    wait "$ROOT_JOB" || true
    ROOT_JOB=
    root=$(cat "$RUN_DIR/root-13" 2>/dev/null || true)
    [ -f "$RUN_DIR/root-13.time" ] && cat "$RUN_DIR/root-13.time" >>"$dir/times" && log "$(cat "$RUN_DIR/root-13.time")"
    if [ -z "$root" ]; then
      echo "lane 13: the Debian 13 root could not be made (see above)" >>"$dir/times"
      FAILED+=("lane 13 (root)")
      return 1
    fi
    session_opts=(--root "$root" --bind "$SNAPVIRT_ROOT")
  fi
  log "Lane $lane: stack in $dir"
  "$SNAPVIRT_ROOT/scripts/stack" session "${session_opts[@]}" "$dir" -- \
    "$SNAPVIRT_ROOT/scripts/test" --in-lane "$lane" "$build" "${CTEST_ARGS[@]}" &
  SESSION_PID=$!
  wait "$SESSION_PID" || rc=$?
  SESSION_PID=
  if ! "$SNAPVIRT_ROOT/scripts/stack" check "$dir"; then
    echo "lane $lane: something was left behind (see above)" >>"$dir/times"
    rc=1
  else
    printf '%-22s %8s  %s\n' "lane $lane: leftovers" "" "none (processes, mounts, domains)" >>"$dir/times"
  fi
  printf '%-22s %8s  %s\n' "lane $lane: total" "$(duration $((SECONDS - start)))" "$([ $rc = 0 ] && echo ok || echo FAILED)" \
    >>"$dir/times"
  [ $rc = 0 ] || FAILED+=("lane $lane")
  return 0
}

# ---- the isolation check -------------------------------------------------------------------
# Before the lanes: (1) a process named libvirtd that no test started (a copy of sleep), (2) a
# real libvirtd in a stack of its own with a domain and a snapshot, (3) whatever other libvirtd
# runs on the machine, only observed. After them, (1) and (2) must have the same PIDs and the
# domain the same definition, state and snapshots.
SENTINEL_DOMAIN=snapvirt-sentinel
sentinel_virsh() { timeout 30 virsh -q -c "qemu+unix:///system?socket=$RUN_DIR/sentinel/run/libvirt-sock" "$@"; }
pids_named() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = "$1" ] && echo "${p#/proc/}"
  done
  return 0
}
sentinel_state() {
  echo "libvirtd pid $(cat "$RUN_DIR/sentinel/libvirtd.pid" 2>/dev/null)"
  echo "virtlogd pid $(cat "$RUN_DIR/sentinel/virtlogd.pid" 2>/dev/null)"
  echo "domain $(sentinel_virsh domuuid "$SENTINEL_DOMAIN" 2>&1) $(sentinel_virsh domstate "$SENTINEL_DOMAIN" 2>&1)"
  echo "definition $(sentinel_virsh dumpxml --inactive "$SENTINEL_DOMAIN" 2>&1 | sha256sum | cut -c1-16)"
  echo "snapshots $(sentinel_virsh snapshot-list --name "$SENTINEL_DOMAIN" 2>&1 | tr '\n' ' ')"
}

isolation_start() {
  cp /bin/sleep "$RUN_DIR/libvirtd"
  "$RUN_DIR/libvirtd" 1d &
  FAKE_PID=$!
  # grep finds nothing where no other libvirtd runs (as in CI): not a failure.
  OTHER_LIBVIRTDS=$(pids_named libvirtd | { grep -vx "$FAKE_PID" || true; } | tr '\n' ' ')
  if ! command -v libvirtd >/dev/null || ! command -v qemu-img >/dev/null; then
    log "Isolation: no libvirtd/qemu-img on this host; only the process named libvirtd is a sentinel"
    return 0
  fi
  local dir="$RUN_DIR/sentinel"
  mkdir -p "$dir"
  "$SNAPVIRT_ROOT/scripts/stack" session --allow-domains "$dir" -- sleep 1d 2>"$RUN_DIR/sentinel.log" &
  SENTINEL_PID=$!
  for _ in $(seq 1 240); do
    sentinel_virsh version >/dev/null 2>&1 && break
    kill -0 "$SENTINEL_PID" 2>/dev/null || break
    sleep 0.25
  done
  qemu-img create -q -f qcow2 "$dir/sentinel.qcow2" 1M
  cat >"$dir/sentinel.xml" <<XML
<domain type='qemu'>
  <name>$SENTINEL_DOMAIN</name>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$dir/sentinel.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
XML
  sentinel_virsh define "$dir/sentinel.xml" >/dev/null &&
    sentinel_virsh snapshot-create-as "$SENTINEL_DOMAIN" sentinel-snapshot >/dev/null ||
    { cat "$RUN_DIR/sentinel.log" >&2; die "the sentinel stack did not come up"; }
  sentinel_state >"$RUN_DIR/sentinel.before"
  log "Isolation sentinels: a process named libvirtd (pid $FAKE_PID), a sentinel libvirtd" \
    "(pid $(cat "$dir/libvirtd.pid")) with domain $SENTINEL_DOMAIN; other libvirtd on this machine: ${OTHER_LIBVIRTDS:-none}"
}

isolation_check() {
  local ok=1 line
  local file="$RUN_DIR/isolation"
  if kill -0 "$FAKE_PID" 2>/dev/null && [ "$(cat "/proc/$FAKE_PID/comm")" = libvirtd ]; then
    echo "isolation: the process named libvirtd (pid $FAKE_PID) still runs" >>"$file"
  else
    echo "isolation: FAILED: the process named libvirtd (pid $FAKE_PID) is gone" >>"$file"
    ok=0
  fi
  if [ -n "$SENTINEL_PID" ]; then
    sentinel_state >"$RUN_DIR/sentinel.after"
    if cmp -s "$RUN_DIR/sentinel.before" "$RUN_DIR/sentinel.after" && kill -0 "$(cat "$RUN_DIR/sentinel/libvirtd.pid")"; then
      echo "isolation: the sentinel libvirtd (pid $(cat "$RUN_DIR/sentinel/libvirtd.pid")) and its domain are unchanged" >>"$file"
    else
      echo "isolation: FAILED: the sentinel stack changed:" >>"$file"
      diff "$RUN_DIR/sentinel.before" "$RUN_DIR/sentinel.after" | sed 's/^/  /' >>"$file"
      ok=0
    fi
  fi
  for line in $OTHER_LIBVIRTDS; do
    if kill -0 "$line" 2>/dev/null; then
      echo "isolation: (observed) libvirtd pid $line, not ours, still runs" >>"$file"
    else
      echo "isolation: (observed) libvirtd pid $line, not ours, has ended (by someone else: no test here stops it)" >>"$file"
    fi
  done
  [ $ok = 1 ] || FAILED+=("isolation")
}

# Ends the sentinels by the PIDs started for them (and the sentinel stack's domain with it).
isolation_end() {
  if [ -n "$SENTINEL_PID" ]; then
    sentinel_virsh snapshot-delete "$SENTINEL_DOMAIN" sentinel-snapshot >/dev/null 2>&1 || true
    sentinel_virsh undefine "$SENTINEL_DOMAIN" >/dev/null 2>&1 || true
    kill -TERM "$SENTINEL_PID" 2>/dev/null || true
    wait "$SENTINEL_PID" 2>/dev/null || true
    SENTINEL_PID=
    "$SNAPVIRT_ROOT/scripts/stack" check "$RUN_DIR/sentinel" || FAILED+=("sentinel stack cleanup")
  fi
  if [ -n "$FAKE_PID" ]; then
    kill -TERM "$FAKE_PID" 2>/dev/null || true
    wait "$FAKE_PID" 2>/dev/null || true
    FAKE_PID=
  fi
}

# On every exit path: the lane's session ends (it cleans up after itself), the root job and the
# sentinels are stopped by their PIDs.
run_cleanup() {
  local rc=$?
  trap '' INT TERM HUP
  set +e
  if [ -n "$SESSION_PID" ]; then
    kill -TERM "$SESSION_PID" 2>/dev/null
    wait "$SESSION_PID" 2>/dev/null
    for dir in "$RUN_DIR"/lane-*; do "$SNAPVIRT_ROOT/scripts/stack" check "$dir"; done
  fi
  if [ -n "$ROOT_JOB" ]; then
    kill -TERM -- "-$ROOT_JOB" 2>/dev/null
    wait "$ROOT_JOB" 2>/dev/null
  fi
  isolation_end
  if [ $rc = 0 ] && [ -z "${SNAPVIRT_KEEP_TEST_STATE:-}" ]; then
    rm -rf "$RUN_DIR"
  elif [ -d "$RUN_DIR" ]; then
    log "The run's stacks (logs under lane-*/log) are kept in $RUN_DIR"
  fi
  exit $rc
}

run_lanes() {
  local lanes=("$@") lane
  local start=$SECONDS
  mkdir -p "$STACKS_TMP"
  RUN_DIR=$(mktemp -d "$STACKS_TMP/run-XXXXXX")
  trap run_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP

  local want12=0 want13=0
  for lane in "${lanes[@]}"; do eval "want$lane=1"; done
  if [ $want13 = 1 ]; then
    # The root is I/O (debootstrap, apt): made while lane 12 builds.
    command -v debootstrap >/dev/null || ensure_packages debootstrap
    setsid "$SNAPVIRT_ROOT/scripts/test" --make-root trixie "$RUN_DIR/root-13" &
    ROOT_JOB=$!
  fi
  if [ $want12 = 1 ]; then
    ensure_packages "${BUILD_PACKAGES[@]}" "${RUNTIME_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
    for setup in "${TEST_SETUP[@]}"; do "$setup"; done
  fi
  isolation_start
  for lane in "${lanes[@]}"; do run_lane "$lane"; done
  isolation_check

  log "Times and results"
  for lane in "${lanes[@]}"; do cat "$RUN_DIR/lane-$lane/times" 2>/dev/null; done >&2
  cat "$RUN_DIR/isolation" >&2
  printf '%-22s %8s\n' "whole run" "$(duration $((SECONDS - start)))" >&2
  if [ ${#FAILED[@]} -gt 0 ]; then
    printf 'FAILED: %s\n' "${FAILED[*]}" >&2
    return 1
  fi
  return 0
}
