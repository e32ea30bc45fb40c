#!/usr/bin/env bash
# Builds the .deb with `cpack -G DEB` from a finished build tree, inspects it, installs it with
# dpkg -i, runs the installed binaries, checks the conffile is kept across a reinstall and that
# removal/purge leave nothing behind.
#   deb-install.sh BUILD_DIR
# Needs root (dpkg -i); exits 77 (skipped) otherwise. Refuses to touch a snapvirt package that
# is already installed on the machine.
set -euo pipefail
build=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "SKIP: dpkg -i needs root"; exit 77; }
for tool in cpack dpkg-deb dpkg-shlibdeps systemd-analyze; do
  command -v $tool >/dev/null || fail "$tool is missing (packages cmake, dpkg-dev, systemd)"
done

# One dpkg -i at a time on this machine, whichever build tree runs the test.
exec 9>/tmp/snapvirt-deb-test.lock
flock -w 600 9 || fail "another .deb test holds /tmp/snapvirt-deb-test.lock"
if dpkg-query -W -f='${Status}' snapvirt 2>/dev/null | grep -qv "not-installed"; then
  fail "a snapvirt package is already on this machine ($(dpkg-query -W -f='${Status} ${Version}' snapvirt)); not touching it"
fi

tmp=$(mktemp -d /tmp/snapvirt-deb-XXXXXX)
installed=0
cleanup() {
  if [ $installed = 1 ]; then dpkg --purge snapvirt >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

for bin in snapvirtd snapvirt; do
  [ -x "$build/$bin" ] || fail "$build/$bin is not built (cpack packages what is built; build first)"
done

echo "== cpack -G DEB"
(cd "$build" && cpack --config "$build/CPackConfig.cmake" -G DEB -B "$tmp") >"$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log"; fail "cpack failed"; }
debs=("$tmp"/snapvirt_*.deb)
[ ${#debs[@]} = 1 ] && [ -f "${debs[0]}" ] || { cat "$tmp/cpack.log"; fail "cpack made no single snapvirt_*.deb"; }
deb=${debs[0]}
echo "$(basename "$deb"): $(stat -c %s "$deb") bytes"

echo "== dpkg-deb -I"
dpkg-deb -I "$deb" | tee "$tmp/info"
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = snapvirt ] || fail "Package is not snapvirt"
[ "$(field Section)" = admin ] || fail "Section is not admin"
[ -n "$(field Maintainer)" ] || fail "no Maintainer"
depends=$(field Depends)
# OpenSSL 3's library package is libssl3 on Debian 12 and libssl3t64 on Debian 13 (64-bit time_t).
for libs in libc6 libstdc++6 libvirt0 libsystemd0 libsqlite3-0 libssl3/libssl3t64; do
  found=0
  for lib in ${libs//\// }; do
    if [[ ", $depends" == *", $lib "* || ", $depends," == *", $lib,"* ]]; then found=1; fi
  done
  [ $found = 1 ] || fail "Depends lacks $libs: $depends"
done
[[ "$(field Recommends)" == *libvirt-daemon-system* ]] || fail "Recommends lacks libvirt-daemon-system"
dpkg-deb -e "$deb" "$tmp/control"
grep -qx /etc/snapvirt/snapvirtd.toml "$tmp/control/conffiles" || fail "/etc/snapvirt/snapvirtd.toml is not a conffile"
for s in postinst prerm postrm; do
  [ -x "$tmp/control/$s" ] || fail "maintainer script $s missing or not executable"
done

echo "== dpkg-deb -c"
dpkg-deb -c "$deb" | tee "$tmp/contents"
# /lib/systemd/system on Debian 12 (pkg-config systemd's systemdsystemunitdir), /usr/lib/... later.
unitdir=$(sed -n 's#.* \.\(/\(usr/\)\{0,1\}lib/systemd/system\)/snapvirtd\.service$#\1#p' "$tmp/contents")
[ -n "$unitdir" ] || fail "the package has no snapvirtd.service in a systemd unit directory"
for path in /usr/sbin/snapvirtd /usr/bin/snapvirt "$unitdir/snapvirtd.service" /etc/snapvirt/snapvirtd.toml \
    /usr/share/doc/snapvirt/operations.md /usr/share/doc/snapvirt/examples/snapvirtd.toml; do
  grep -qE " \.${path}\$" "$tmp/contents" || fail "the package lacks $path"
done
if grep -E ' \./(usr/local|home|root|tmp|work)/' "$tmp/contents"; then fail "files outside the package layout"; fi
grep -E '^-rwx.* root/root .* \./usr/s?bin/' "$tmp/contents" >/dev/null || fail "binaries not root-owned 0755"

echo "== dpkg -i"
installed=1
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" || fail "dpkg -i failed"
dpkg-query -W -f='${Status}\n' snapvirt | grep -qx "install ok installed" || fail "not installed"

echo "== installed binaries"
version=$(/usr/sbin/snapvirtd --version)
echo "$version"
[[ "$version" == "snapvirtd $(field Version | sed 's/-[^-]*$//')" ]] || fail "unexpected --version output"
/usr/bin/snapvirt --help >"$tmp/help" 2>&1 || { cat "$tmp/help"; fail "snapvirt --help exited non-zero"; }
head -5 "$tmp/help"
grep -qi "usage\|snapvirt" "$tmp/help" || fail "snapvirt --help printed no usage"
for bin in /usr/sbin/snapvirtd /usr/bin/snapvirt; do
  if ldd "$bin" | grep "not found"; then fail "$bin misses shared libraries"; fi
done
cmp /etc/snapvirt/snapvirtd.toml "$(dirname "$0")/../../config/snapvirtd.toml" || fail "installed config differs"
/usr/sbin/snapvirtd --config /etc/snapvirt/snapvirtd.toml --help >/dev/null || fail "snapvirtd rejects --config /etc/..."

echo "== the installed daemon starts and answers (installed config, the lane's libvirt)"
# Against the libvirt scripts/test's stack names (SNAPVIRT_TEST_LIBVIRT_URI), else the default.
uri=${SNAPVIRT_TEST_LIBVIRT_URI:-qemu:///system}
mkdir -p "$tmp/state"
/usr/sbin/snapvirtd --config /etc/snapvirt/snapvirtd.toml --state-dir "$tmp/state" --listen "unix:$tmp/api.sock" \
  --libvirt-uri "$uri" >"$tmp/daemon.log" 2>&1 &
daemon=$!
ready=0
for _ in $(seq 1 120); do
  if curl -sf --unix-socket "$tmp/api.sock" http://localhost/readyz >/dev/null 2>&1; then ready=1; break; fi
  kill -0 $daemon 2>/dev/null || break
  sleep 0.25
done
kill -TERM $daemon 2>/dev/null || true
wait $daemon || status=$?
[ $ready = 1 ] || { cat "$tmp/daemon.log"; fail "the installed snapvirtd did not become ready on $uri"; }
[ "${status:-0}" = 0 ] || { cat "$tmp/daemon.log"; fail "the installed snapvirtd exited ${status} on SIGTERM"; }
echo "ready on $uri, stopped cleanly"

echo "== systemd-analyze verify (installed unit, real ExecStart)"
out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$unitdir/snapvirtd.service" 2>&1) ||
  { echo "$out"; fail "systemd-analyze verify failed on the installed unit"; }
if printf '%s\n' "$out" | grep snapvirtd; then fail "systemd-analyze verify complains about the installed unit"; fi

echo "== conffile kept across reinstall"
echo "# local edit" >>/etc/snapvirt/snapvirtd.toml
DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "$deb" >/dev/null || fail "reinstall failed"
tail -1 /etc/snapvirt/snapvirtd.toml | grep -qx "# local edit" || fail "reinstall overwrote the edited conffile"

echo "== dpkg -r, dpkg --purge"
dpkg -r snapvirt >/dev/null || fail "dpkg -r failed"
for path in /usr/sbin/snapvirtd /usr/bin/snapvirt "$unitdir/snapvirtd.service"; do
  [ ! -e "$path" ] || fail "$path is still there after dpkg -r"
done
[ -f /etc/snapvirt/snapvirtd.toml ] || fail "dpkg -r removed the conffile (only purge should)"
dpkg --purge snapvirt >/dev/null || fail "dpkg --purge failed"
installed=0
[ ! -e /etc/snapvirt ] || fail "/etc/snapvirt is still there after purge"
[ ! -e /usr/share/doc/snapvirt ] || fail "/usr/share/doc/snapvirt is still there after purge"
dpkg-query -W -f='${Status}' snapvirt 2>/dev/null | grep -qE "ok (installed|config-files)" && fail "still known to dpkg"
echo "OK"
