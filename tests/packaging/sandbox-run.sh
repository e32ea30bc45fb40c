#!/usr/bin/env bash
# sandbox-run.sh STATE_DIR RUNTIME_DIR SECCOMP_EXEC SYSCALL... -- PROGRAM ARGS...
# Runs PROGRAM the way snapvirtd.service confines snapvirtd, as far as it can be done without
# systemd as PID 1 (needs root with CAP_SYS_ADMIN for a private mount namespace; exits 77
# otherwise). In a private mount namespace, so the host's mounts are not touched:
#   ProtectSystem=strict      every mount read-only (per-mount bind remount, never the file
#                             system itself) except STATE_DIR and RUNTIME_DIR (StateDirectory=,
#                             RuntimeDirectory=);
#   ProtectHome=yes           empty, inaccessible /home and /root;
#   PrivateDevices=yes        a /dev with null zero full random urandom tty only;
#   ProtectProc=invisible, ProcSubset=pid   a /proc with hidepid=invisible,subset=pid;
#   ProtectKernelTunables=, ProtectControlGroups=   /sys read-only;
#   CapabilityBoundingSet=CAP_CHOWN          setpriv;
#   SystemCallFilter=, MemoryDenyWriteExecute=, RestrictAddressFamilies=, NoNewPrivileges=
#                             SECCOMP_EXEC with the allowed system calls.
# PrivateTmp= is left out (the tests keep their directories in /tmp).
set -euo pipefail
state=$1 runtime=$2
shift 2
[ "$(id -u)" = 0 ] || { echo "sandbox-run: needs root" >&2; exit 77; }
unshare -m --propagation private true 2>/dev/null || { echo "sandbox-run: no mount namespaces here" >&2; exit 77; }
command -v setpriv >/dev/null || { echo "sandbox-run: setpriv (util-linux) missing" >&2; exit 77; }
mkdir -p "$state" "$runtime"
# A mount point for the private /dev, next to RUNTIME_DIR (left empty on the host; the caller
# removes it with its directories).
devroot=${runtime%/}.dev
mkdir -p "$devroot"

exec unshare -m --propagation private /bin/bash -c '
set -e
state=$1 runtime=$2 devroot=$3
shift 3
mount --bind "$state" "$state"
mount --bind "$runtime" "$runtime"
mount -t tmpfs -o mode=755 tmpfs "$devroot"
for d in null zero full random urandom tty; do
  touch "$devroot/$d"
  mount --bind "/dev/$d" "$devroot/$d"
done
mount --move "$devroot" /dev
mount -o remount,bind,ro /
mount -o remount,bind,ro /sys
mount -t tmpfs -o mode=000,ro tmpfs /home
mount -t tmpfs -o mode=000,ro tmpfs /root
mount -t proc -o hidepid=invisible,subset=pid proc /proc
cd /
exec setpriv --bounding-set=-all,+chown --inh-caps=-all -- "$@"
' sandbox "$state" "$runtime" "$devroot" "$@"
