#!/usr/bin/env bash
# The demo VM shuts down on ACPI like a real OS: a stopped snapshot of it with the defaults (no
# force_stop, the 120 s shutdown timeout) succeeds in less than 15 s, and the VM runs again.
#   demo-stopped.sh SOURCE_DIR BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" "$2" stopped
LIMIT_S=15

start_scripts_run
wait_demo_booted

say "POST a stopped snapshot with only the mode"
start_ms=$(date +%s%3N)
accepted=$(curl -s --fail-with-body --unix-socket "$SOCKET" -H 'Content-Type: application/json' \
  -X POST "http://localhost/v1/instances/$DEMO/snapshots" -d '{"mode": "stopped"}')
job=$(jq -r .job.id <<<"$accepted")
snapshot=$(jq -r .snapshot.id <<<"$accepted")
state=""
until [ "$state" = succeeded ] || [ "$state" = failed ] || [ "$state" = cancelled ]; do
  answer=$(get "/v1/jobs/$job?wait=30")
  state=$(jq -r .state <<<"$answer")
  [ $(( $(date +%s%3N) - start_ms )) -lt 130000 ] || fail "the job did not end: $answer"
done
elapsed_ms=$(( $(date +%s%3N) - start_ms ))
say "job $state after ${elapsed_ms} ms: $answer"

[ "$state" = succeeded ] || fail "the stopped snapshot's job ended $state: $(jq -c .error <<<"$answer")"
[ "$elapsed_ms" -lt $((LIMIT_S * 1000)) ] || fail "the stopped snapshot took ${elapsed_ms} ms, not under ${LIMIT_S} s"
snap=$(get "/v1/snapshots/$snapshot")
[ "$(jq -r .state <<<"$snap")" = ready ] || fail "the snapshot is not ready: $snap"
[ "$(jq -r .mode <<<"$snap")" = stopped ] || fail "the snapshot is not a stopped one: $snap"
[ "$(virsh -q -c qemu:///system domstate "$DEMO")" = running ] || fail "the demo VM does not run again"
say "ok: the demo shut down on ACPI; stopped snapshot with the defaults in ${elapsed_ms} ms"
