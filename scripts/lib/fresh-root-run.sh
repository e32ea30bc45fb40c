#!/usr/bin/env bash
# Proves that `scripts/run` works as the first command on a fresh Debian machine: a clean
# minbase root (debootstrap, cached by scripts/lib/stack-root.sh) gets a fresh clone of this
# checkout's HEAD and runs scripts/run in it, which installs, builds, starts a libvirtd, defines
# the demo VM and serves. Passes when the API lists the demo VM running and a memory snapshot of
# it succeeds; then everything is stopped by PID and the root is removed.
#   scripts/lib/fresh-root-run.sh [SUITE]          (default trixie; root; uses 127.0.0.1:8080)
# Not part of scripts/test (a whole second install and build); run it after changing scripts/run.
source "$(dirname "$0")/common.sh"
source "$SNAPVIRT_ROOT/scripts/lib/stack-root.sh"
suite=${1:-trixie}
dir=${SNAPVIRT_STACKS_TMP:-/var/tmp/snapvirt-stacks}/fresh-$suite-$$
root=$dir/root
start=$SECONDS
[ "$(id -u)" = 0 ] || die "needs root"
if curl -s -o /dev/null 127.0.0.1:8080; then die "127.0.0.1:8080 is in use; scripts/run needs it"; fi

base=$(stack_root_base "$suite")
mkdir -p "$dir/run"
log "A clean $suite root in $root (a copy of $base) with a clone of $(git -C "$SNAPVIRT_ROOT" rev-parse --short HEAD)"
cp -a "$base" "$root"
cp /etc/resolv.conf "$root/etc/resolv.conf"
git clone -q "$SNAPVIRT_ROOT" "$root/srv/snapvirt"

RUN_PID=
cleanup() {
  local rc=$?
  set +e
  [ -n "$RUN_PID" ] && kill -TERM "$RUN_PID" 2>/dev/null && wait "$RUN_PID" 2>/dev/null
  # The demo VM's QEMU, then libvirtd and virtlogd, by the PID files they wrote in the root's /run.
  for f in "$dir"/run/libvirt/qemu/*.pid "$dir"/run/snapvirt/libvirtd-local/libvirtd.pid \
      "$dir"/run/snapvirt/libvirtd-local/virtlogd.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null && for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null
  done
  sleep 1
  local left=0 p
  for p in /proc/[0-9]*; do
    if [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ]; then
      echo "left running in the root: ${p#/proc/} $(tr '\0' ' ' <"$p/cmdline" | cut -c1-100)" >&2
      left=1
    fi
  done
  if grep -qF " $root" /proc/self/mountinfo; then echo "mounts left under $root" >&2; left=1; fi
  [ $left = 0 ] && [ $rc = 0 ] && rm -rf "$dir"
  [ $left = 0 ] || rc=1
  log "fresh $suite root: $( [ $rc = 0 ] && echo PASSED || echo "FAILED (kept: $dir)") in $(( (SECONDS - start) / 60 ))m$(( (SECONDS - start) % 60 ))s"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The root as a machine would have it: / a mount point, /proc, /sys, /dev, its own /run.
log "Running scripts/run in the root (log: $dir/run.log)"
unshare --mount --propagation private -- /bin/bash -c '
  set -e
  root=$1 run=$2
  mount --bind "$root" "$root"
  mount --bind /proc "$root/proc"
  mount --rbind /sys "$root/sys"
  mount --rbind /dev "$root/dev"
  mount --make-rslave "$root/dev"
  mount --bind "$run" "$root/run"
  exec chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 TERM=dumb /bin/bash -c "cd /srv/snapvirt && exec scripts/run"
' fresh-root "$root" "$dir/run" >"$dir/run.log" 2>&1 &
RUN_PID=$!

token=$root/srv/snapvirt/var/state/admin.token
for _ in $(seq 1 2400); do   # up to an hour: packages and a whole build
  kill -0 "$RUN_PID" 2>/dev/null || { tail -30 "$dir/run.log" >&2; die "scripts/run exited"; }
  [ -s "$token" ] && curl -sf 127.0.0.1:8080/readyz >/dev/null 2>&1 && break
  sleep 1.5
done
log "scripts/run serves after $(( (SECONDS - start) / 60 ))m$(( (SECONDS - start) % 60 ))s"
auth=(-H "Authorization: Bearer $(cat "$token")")
instances=$(curl -sf "${auth[@]}" 127.0.0.1:8080/v1/instances)
echo "$instances" | grep -q '"snapvirt-demo"' || die "the demo VM is not listed: $instances"
job=$(curl -sf "${auth[@]}" -H 'Content-Type: application/json' -d '{"mode":"memory","name":"fresh-root"}' \
  127.0.0.1:8080/v1/instances/snapvirt-demo/snapshots) || die "POST snapshot failed"
echo "$job"
job_id=$(printf '%s' "$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["job"]["id"])')
state=$(curl -sf "${auth[@]}" "127.0.0.1:8080/v1/jobs/$job_id?wait=60")
echo "$state"
[ "$(printf '%s' "$state" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')" = succeeded ] ||
  die "the snapshot job did not succeed"
log "The demo VM is served and a memory snapshot of it succeeded"
