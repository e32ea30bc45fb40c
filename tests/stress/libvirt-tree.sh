#!/usr/bin/env bash
# Can snapvirt alone crash libvirtd? snapvirtd as the only client of a private libvirtd (a
# stack of scripts/stack), with many snapshot trees changing at once.
#
#   tests/stress/libvirt-tree.sh [SECONDS] [--stack-root ROOT]     as root, after a build
#
# Three shut-off domains with qcow2 disks. Through snapvirt's API, for SECONDS (default 120):
# workers take stopped snapshots, revert to random snapshots (so the trees branch), delete random
# snapshots with and without ?children=true, and read lists; snapvirtd reconciles every second
# and gets SIGHUP (a full reconciliation, every domain's snapshot tree read from libvirt) every
# 0.2 s. At the end: the stack's libvirtd must be the process it was at the start, no job may be
# left running, and every domain's snapshots in the catalog must be those libvirt has.
# Prints one line of counts; exits non-zero if libvirtd died or anything disagrees.
# docs/libvirt-crash.md says what it found.
set -euo pipefail
SNAPVIRT_ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)"
BUILD_DIR="${SNAPVIRT_BUILD_DIR:-$SNAPVIRT_ROOT/build}"

if [ "${1:-}" != --inside ]; then
  seconds=${1:-120}
  opts=()
  [ "${2:-}" = --stack-root ] && opts=(--root "$3" --bind "$SNAPVIRT_ROOT")
  dir=$(mktemp -d /var/tmp/snapvirt-stress.XXXXXX)
  rc=0
  "$SNAPVIRT_ROOT/scripts/stack" session "${opts[@]}" "$dir/stack" -- "$0" --inside "$seconds" "$dir" || rc=$?
  "$SNAPVIRT_ROOT/scripts/stack" check "$dir/stack" || rc=1
  [ $rc = 0 ] && rm -rf "$dir" || echo "stress: kept $dir" >&2
  exit $rc
fi

# ---- inside the stack ----------------------------------------------------------------------
seconds=$2 dir=$3
uri=$SNAPVIRT_TEST_LIBVIRT_URI
sock=$dir/snapvirtd.sock
prefix="svt-stress-$$"
domains=("$prefix-a" "$prefix-b" "$prefix-c")
daemon_pid=
pids=()

virsh_() { virsh -q -c "$uri" "$@"; }
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  for d in "${domains[@]}"; do
    virsh_ undefine "$d" --snapshots-metadata >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

libvirtd_pid=$(cat "$SNAPVIRT_STACK_DIR/libvirtd.pid")
# SNAPVIRT_STRESS_DEBUG=1: libvirtd logs every RPC call and snapshot step (to see what ran
# when it crashed).
if [ "${SNAPVIRT_STRESS_DEBUG:-}" = 1 ]; then
  virt-admin -c libvirtd:///system daemon-log-filters "1:daemon.remote 1:rpc.server 1:qemu.qemu_snapshot 1:conf.snapshot_conf 1:conf.virdomainmomentobjlist 4:*" >/dev/null
  virt-admin -c libvirtd:///system daemon-log-outputs "1:file:$dir/libvirtd-debug.log" >/dev/null
fi
for d in "${domains[@]}"; do
  qemu-img create -q -f qcow2 "$dir/$d.qcow2" 16M
  cat >"$dir/$d.xml" <<XML
<domain type='qemu'>
  <name>$d</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$dir/$d.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
XML
  virsh_ define "$dir/$d.xml" >/dev/null
done

cat >"$dir/snapvirtd.toml" <<TOML
[snapshots]
max_snapshots_per_instance = 0
[jobs]
workers = 4
[reconcile]
interval_s = 1
TOML
"$BUILD_DIR/snapvirtd" --config "$dir/snapvirtd.toml" --listen "unix:$sock" --state-dir "$dir/state" \
  --libvirt-uri "$uri" --log-level warn 2>"$dir/snapvirtd.log" &
daemon_pid=$!
for _ in $(seq 1 100); do
  curl -sf --unix-socket "$sock" http://l/readyz >/dev/null 2>&1 && break
  sleep 0.1
done

api() { curl -s -o /dev/null -w '%{http_code}\n' --unix-socket "$sock" -H 'Content-Type: application/json' "$@"; }
random_snapshot() {
  curl -s --unix-socket "$sock" "http://l/v1/instances/$1/snapshots" | jq -r '.items[].id' | shuf -n 1
}
count() { echo "$2" >>"$dir/count.$1"; }

end=$((SECONDS + seconds))
creator() {
  while [ $SECONDS -lt $end ]; do
    local d=${domains[RANDOM % 3]}
    count create "$(api -X POST "http://l/v1/instances/$d/snapshots" -d '{"mode":"stopped"}')"
  done
}
reverter() {
  while [ $SECONDS -lt $end ]; do
    local d=${domains[RANDOM % 3]} s
    s=$(random_snapshot "$d")
    [ -n "$s" ] && count revert "$(api -X POST "http://l/v1/snapshots/$s/revert" -d '{}')"
    sleep 0.05
  done
}
deleter() {
  while [ $SECONDS -lt $end ]; do
    local d=${domains[RANDOM % 3]} s children=false
    ((RANDOM % 2)) && children=true
    s=$(random_snapshot "$d")
    [ -n "$s" ] && count delete "$(api -X DELETE "http://l/v1/snapshots/$s?children=$children")"
    sleep 0.1
  done
}
reader() {
  while [ $SECONDS -lt $end ]; do
    count read "$(api "http://l/v1/snapshots?limit=100")"
  done
}
hupper() {
  while [ $SECONDS -lt $end ]; do
    kill -HUP "$daemon_pid"
    count hup 1
    sleep 0.2
  done
}
creator & pids+=($!)
creator & pids+=($!)
reverter & pids+=($!)
deleter & pids+=($!)
reader & pids+=($!)
hupper & pids+=($!)
wait "${pids[@]}" || true
pids=()

# Every job ends; then the catalog must say what libvirt says.
for _ in $(seq 1 300); do
  running=$(curl -s --unix-socket "$sock" "http://l/v1/jobs?state=running&limit=1" | jq '.items | length')
  queued=$(curl -s --unix-socket "$sock" "http://l/v1/jobs?state=queued&limit=1" | jq '.items | length')
  [ "$running" = 0 ] && [ "$queued" = 0 ] && break
  sleep 0.2
done
kill -HUP "$daemon_pid"
sleep 3

fail=0
if ! kill -0 "$libvirtd_pid" 2>/dev/null || [ "$(cat "$SNAPVIRT_STACK_DIR/libvirtd.pid")" != "$libvirtd_pid" ]; then
  echo "stress: libvirtd ($libvirtd_pid) died during the run" >&2
  fail=1
fi
[ "$running" = 0 ] && [ "$queued" = 0 ] || { echo "stress: jobs still running or queued" >&2; fail=1; }
for d in "${domains[@]}"; do
  live=$(virsh_ snapshot-list "$d" --name | sort | tr '\n' ' ')
  catalog=$(curl -s --unix-socket "$sock" "http://l/v1/instances/$d/snapshots" | jq -r '.items[].name' | sort | tr '\n' ' ')
  [ "$live" = "$catalog" ] || { echo "stress: $d: libvirt has [$live], the catalog [$catalog]" >&2; fail=1; }
done
summary=""
for k in create revert delete read hup; do
  f="$dir/count.$k"
  [ -f "$f" ] || continue
  summary+="$k $(wc -l <"$f") ($(sort "$f" | uniq -c | awk '{printf "%s×%s ", $2, $1}' | sed 's/ $//')); "
done
echo "stress: $(libvirtd --version), ${seconds}s: ${summary}libvirtd $([ $fail = 0 ] && echo "survived" || echo "see above")"
exit $fail
