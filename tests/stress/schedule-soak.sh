#!/usr/bin/env bash
# The schedules soak (issue 15's "Done when"): 10 schedules on 3 running guests for SECONDS
# (default 600), six-field crons every 15–40 s, keep_last 2–4, some in stopped mode with
# force_stop; snapvirtd is killed with SIGKILL halfway and started again on the same state.
#
#   tests/stress/schedule-soak.sh [SECONDS] [--stack-root ROOT]      as root, after a build
#
# At the end (the schedules disabled, every job ended, retention settled): every schedule has at
# most keep_last snapshots; no slot ran twice (every create job is the job of exactly one run
# row, and no (schedule, slot) has two rows); no job is queued or running; catalog and libvirt
# agree. While it runs it samples each schedule's count and reports the highest seen (keep_last
# + 1 is normal for the moment between a run's end and its retention delete; it is reported,
# not failed: a delete waits for an instance busy with another schedule's run).
# Guests and disks are removed on every exit path. Prints one line of counts.
set -euo pipefail
SNAPVIRT_ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)"
BUILD_DIR="${SNAPVIRT_BUILD_DIR:-$SNAPVIRT_ROOT/build}"

if [ "${1:-}" != --inside ]; then
  seconds=${1:-600}
  opts=()
  [ "${2:-}" = --stack-root ] && opts=(--root "$3" --bind "$SNAPVIRT_ROOT")
  dir=$(mktemp -d /var/tmp/snapvirt-soak.XXXXXX)
  rc=0
  "$SNAPVIRT_ROOT/scripts/stack" session "${opts[@]}" "$dir/stack" -- "$0" --inside "$seconds" "$dir" || rc=$?
  "$SNAPVIRT_ROOT/scripts/stack" check "$dir/stack" || rc=1
  [ $rc = 0 ] && rm -rf "$dir" || echo "soak: kept $dir" >&2
  exit $rc
fi

# ---- inside the stack ----------------------------------------------------------------------
seconds=$2 dir=$3
uri=$SNAPVIRT_TEST_LIBVIRT_URI
sock=$dir/snapvirtd.sock
prefix="svt-soak-$$"
domains=("$prefix-a" "$prefix-b" "$prefix-c")
daemon_pid=
sampler_pid=

virsh_() { virsh -q -c "$uri" "$@"; }
cleanup() {
  [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null || true
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  for d in "${domains[@]}"; do
    virsh_ destroy "$d" >/dev/null 2>&1 || true
    virsh_ undefine "$d" --snapshots-metadata >/dev/null 2>&1 || true
    rm -f "$dir/$d.qcow2"
  done
}
trap cleanup EXIT

# Running guests: the counting boot sector of tests/guest (it ignores ACPI, so stopped-mode runs
# wait their shutdown timeout and then force the guest off).
image="$BUILD_DIR/guest/counter.img"
[ -f "$image" ] || { echo "soak: $image is missing; build the guest_image target" >&2; exit 1; }
for d in "${domains[@]}"; do
  qemu-img convert -q -O qcow2 "$image" "$dir/$d.qcow2"
  cat >"$dir/$d.xml" <<XML
<domain type='qemu'>
  <name>$d</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$dir/$d.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <graphics type='vnc' autoport='yes' listen='127.0.0.1'/>
  </devices>
</domain>
XML
  virsh_ define "$dir/$d.xml" >/dev/null
  virsh_ start "$d" >/dev/null
done

cat >"$dir/snapvirtd.toml" <<TOML
[snapshots]
max_snapshots_per_instance = 0
[jobs]
workers = 4
[schedules]
busy_retry_s = 2
busy_window_s = 600
TOML
start_daemon() {
  "$BUILD_DIR/snapvirtd" --config "$dir/snapvirtd.toml" --listen "unix:$sock" --state-dir "$dir/state" \
    --libvirt-uri "$uri" --log-level info 2>>"$dir/snapvirtd.log" &
  daemon_pid=$!
  for _ in $(seq 1 200); do
    curl -sf --unix-socket "$sock" http://l/readyz >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "soak: snapvirtd did not become ready" >&2
  return 1
}
start_daemon

get() { curl -s --unix-socket "$sock" "http://l$1"; }
send() { curl -s --unix-socket "$sock" -H 'Content-Type: application/json' -X "$1" "http://l$2" -d "$3"; }

# name domain cron mode keep_last [extra JSON fields]
specs=(
  "a-mem15 0 */15_*_*_*_*_* memory 2"
  "a-mem20 0 5/20_*_*_*_*_* memory 3"
  "a-stop40 0 10/40_*_*_*_*_* stopped 2"
  "a-mem25 0 3/25_*_*_*_*_* memory 4"
  "b-mem15 1 7/15_*_*_*_*_* memory 4"
  "b-mem30 1 */30_*_*_*_*_* memory 2"
  "b-stop35 1 2/35_*_*_*_*_* stopped 3"
  "c-mem20 2 */20_*_*_*_*_* memory 2"
  "c-stop30 2 12/30_*_*_*_*_* stopped 2"
  "c-mem40 2 */40_*_*_*_*_* memory 3"
)
declare -A keep=() sid=()
for spec in "${specs[@]}"; do
  read -r name di cron mode keep_last <<<"$spec"
  cron=${cron//_/ }
  body=$(jq -nc --arg n "$name" --arg c "$cron" --arg m "$mode" --argjson k "$keep_last" \
    '{name: $n, cron: $c, mode: $m, keep_last: $k, jitter_s: 3}
     + (if $m == "stopped" then {force_stop: true, shutdown_timeout_s: 2} else {} end)')
  out=$(send POST "/v1/instances/${domains[$di]}/schedules" "$body")
  id=$(jq -r '.id // empty' <<<"$out")
  [ -n "$id" ] || { echo "soak: could not make schedule $name: $out" >&2; exit 1; }
  sid[$name]=$id
  keep[$id]=$keep_last
done

# Samples each schedule's snapshot count every 2 s (the highest seen per schedule).
sampler() {
  while sleep 2; do
    get "/v1/snapshots?limit=1000" 2>/dev/null | jq -r '.items[] | select(.schedule_id != null) | .schedule_id' 2>/dev/null |
      sort | uniq -c | awk '{print $2, $1}' >>"$dir/samples" || true
  done
}
sampler &
sampler_pid=$!

half=$((seconds / 2))
sleep "$half"
# The kill lands while a run's job is running (within 30 s), so recovery has one to end.
for _ in $(seq 1 300); do
  [ "$(get "/v1/jobs?state=running&limit=1" | jq '.items | length')" = 1 ] && break
  sleep 0.1
done
running_at_kill=$(get "/v1/jobs?state=running&limit=10" | jq '.items | length')
kill -9 "$daemon_pid"
wait "$daemon_pid" 2>/dev/null || true
killed_at=$(date -u +%FT%TZ)
sleep 3
start_daemon
sleep $((seconds - half))

# The end: no new runs; every job ends; retention settles.
for id in "${sid[@]}"; do send PATCH "/v1/schedules/$id" '{"enabled": false}' >/dev/null; done
settled=0
for _ in $(seq 1 600); do
  running=$(get "/v1/jobs?state=running&limit=1" | jq '.items | length')
  queued=$(get "/v1/jobs?state=queued&limit=1" | jq '.items | length')
  over=0
  for id in "${sid[@]}"; do
    n=$(get "/v1/snapshots?limit=1000" | jq --arg id "$id" '[.items[] | select(.schedule_id == $id)] | length')
    [ "$n" -le "${keep[$id]}" ] || over=1
  done
  if [ "$running" = 0 ] && [ "$queued" = 0 ] && [ $over = 0 ]; then settled=1; break; fi
  sleep 0.5
done
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=

fail=0
[ "$running" = 0 ] && [ "$queued" = 0 ] || { echo "soak: jobs still running or queued" >&2; fail=1; }
[ $settled = 1 ] || echo "soak: retention did not settle within 5 minutes" >&2
all=$(get "/v1/snapshots?limit=1000")
summary=""
for name in $(printf '%s\n' "${!sid[@]}" | sort); do
  id=${sid[$name]}
  n=$(jq --arg id "$id" '[.items[] | select(.schedule_id == $id)] | length' <<<"$all")
  peak=$(awk -v id="$id" '$1 == id && $2 > m {m = $2} END {print m + 0}' "$dir/samples" 2>/dev/null || echo 0)
  outcome=$(get "/v1/schedules/$id" | jq -r '.last_run.outcome // "none"')
  [ "$n" -le "${keep[$id]}" ] || { echo "soak: $name keeps $n snapshots, keep_last is ${keep[$id]}" >&2; fail=1; }
  summary+="$name $n/${keep[$id]} (peak $peak, last $outcome); "
done

# No slot ran twice: each create job belongs to exactly one run, each (schedule, slot) has one row.
db="$dir/state/catalog.db"
dups=$(sqlite3 -readonly "$db" "SELECT count(*) FROM (SELECT 1 FROM schedule_runs GROUP BY schedule_id, slot HAVING count(*) > 1)")
creates=$(sqlite3 -readonly "$db" "SELECT count(*) FROM jobs WHERE kind = 'create'")
run_jobs=$(sqlite3 -readonly "$db" "SELECT count(DISTINCT job_id) FROM schedule_runs WHERE job_id IS NOT NULL")
run_rows=$(sqlite3 -readonly "$db" "SELECT count(*) FROM schedule_runs WHERE job_id IS NOT NULL")
outcomes=$(sqlite3 -readonly "$db" "SELECT outcome || '×' || count(*) FROM schedule_runs GROUP BY outcome" | tr '\n' ' ')
[ "$dups" = 0 ] || { echo "soak: $dups slots have two run rows" >&2; fail=1; }
[ "$creates" = "$run_jobs" ] && [ "$run_rows" = "$run_jobs" ] ||
  { echo "soak: $creates create jobs, $run_jobs distinct run jobs, $run_rows run rows with a job" >&2; fail=1; }
running_runs=$(sqlite3 -readonly "$db" "SELECT count(*) FROM schedule_runs WHERE outcome = 'running'")
[ "$running_runs" = 0 ] || { echo "soak: $running_runs runs still running" >&2; fail=1; }

# The catalog says what libvirt says.
for d in "${domains[@]}"; do
  live=$(virsh_ snapshot-list "$d" --name | sort | tr '\n' ' ')
  catalog=$(get "/v1/instances/$d/snapshots" | jq -r '.items[].name' | sort | tr '\n' ' ')
  [ "$live" = "$catalog" ] || { echo "soak: $d: libvirt has [$live], the catalog [$catalog]" >&2; fail=1; }
done
echo "soak: ${seconds}s, SIGKILL at $killed_at with $running_at_kill job(s) running; runs: $outcomes; create jobs $creates; ${summary}$([ $fail = 0 ] && echo ok || echo FAILED)"
exit $fail
