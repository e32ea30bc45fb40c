#!/usr/bin/env bash
# Checks systemd/snapvirtd.service offline (no systemd as PID 1 needed):
#  - `systemd-analyze verify` reports nothing about the unit. verify insists that ExecStart's
#    binary exists, so a copy of the unit points at the built snapvirtd (same arguments); the
#    .deb test verifies the installed unit with the real /usr/sbin path as well;
#  - `systemd-analyze security --offline` keeps the exposure at or below 2.5 (of 10);
#  - the settings the daemon relies on are there, and TimeoutStopSec covers the default
#    shutdown grace of config/snapvirtd.toml plus WatchdogSec/3 plus a margin.
#   verify-unit.sh UNIT_FILE BUILT_SNAPVIRTD EXAMPLE_CONFIG
set -euo pipefail
unit=$1 daemon=$(realpath "$2") config=$3
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing (package systemd)"

tmp=$(mktemp -d /tmp/snapvirt-unit-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
copy=$tmp/snapvirtd.service
sed "s#^ExecStart=/usr/sbin/snapvirtd #ExecStart=$daemon #" "$unit" >"$copy"
grep -q "^ExecStart=$daemon --config /etc/snapvirt/snapvirtd.toml\$" "$copy" ||
  fail "ExecStart is not '/usr/sbin/snapvirtd --config /etc/snapvirt/snapvirtd.toml'"

echo "== systemd-analyze verify"
set +e
out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$copy" 2>&1)
rc=$?
set -e
[ -n "$out" ] && printf '%s\n' "$out"
[ $rc -eq 0 ] || fail "systemd-analyze verify exited $rc"
if printf '%s\n' "$out" | grep -q "snapvirtd"; then fail "systemd-analyze verify complains about the unit"; fi

echo "== systemd-analyze security"
set +e
systemd-analyze security --offline=yes --threshold=25 --no-pager "$copy" | grep -E "✗|Overall"
rc=${PIPESTATUS[0]}
set -e
[ $rc -eq 0 ] || fail "exposure above 2.5 (systemd-analyze security exited $rc)"

echo "== required settings"
for line in Type=notify WatchdogSec=30s StateDirectory=snapvirt RuntimeDirectory=snapvirt \
    Wants=libvirtd.service NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" MemoryDenyWriteExecute=yes UMask=0077 \
    "ExecReload=/bin/kill -HUP \$MAINPID"; do
  grep -qxF "$line" "$unit" || fail "missing '$line'"
done
grep -Eq '^After=.*\blibvirtd\.service\b' "$unit" || fail "not ordered after libvirtd.service"
# The default socket (/run/snapvirt/snapvirtd.sock) and state (/var/lib/snapvirt) must be the
# directories systemd creates, or ProtectSystem=strict makes them read-only.
grep -q '^listen = \["unix:/run/snapvirt/' "$config" || fail "the example config does not listen under /run/snapvirt"
grep -q '^dir = "/var/lib/snapvirt"' "$config" || fail "the example config's state dir is not /var/lib/snapvirt"

seconds() { # 60s, 1min 30s, 90 -> seconds
  local v=$1 total=0 n
  [[ $v =~ ^[0-9]+$ ]] && { echo "$v"; return; }
  while [[ $v =~ ^[[:space:]]*([0-9]+)[[:space:]]*(min|s)(.*)$ ]]; do
    n=${BASH_REMATCH[1]}; [ "${BASH_REMATCH[2]}" = min ] && n=$((n * 60))
    total=$((total + n)); v=${BASH_REMATCH[3]}
  done
  echo "$total"
}
stop=$(seconds "$(sed -n 's/^TimeoutStopSec=//p' "$unit")")
watchdog=$(seconds "$(sed -n 's/^WatchdogSec=//p' "$unit")")
grace=$(sed -n 's/^shutdown_grace_s *= *\([0-9]*\).*/\1/p' "$config")
[ -n "$grace" ] || fail "no shutdown_grace_s in $config"
echo "TimeoutStopSec=${stop}s, shutdown_grace_s=${grace}, WatchdogSec=${watchdog}s"
[ "$stop" -ge $((grace + watchdog / 3 + 5)) ] || fail "TimeoutStopSec ($stop s) < grace + WatchdogSec/3 + 5 s"
echo "OK"
