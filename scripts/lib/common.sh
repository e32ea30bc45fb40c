# Shared by scripts/test and scripts/run: install what is missing, bring up libvirtd, build.
# Everything here is idempotent and safe to run again.

set -euo pipefail

SNAPVIRT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${SNAPVIRT_BUILD_DIR:-$SNAPVIRT_ROOT/build}"

# Step banners carry the time since the script started, so a slow step shows itself.
log() { printf '\033[1m==> [%d:%02d] %s\033[0m\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# nasm and mtools make the test guests (tests/guest: a boot sector, and an EFI program on a FAT image).
BUILD_PACKAGES=(cmake g++ make pkg-config nasm mtools libvirt-dev libboost-dev nlohmann-json3-dev catch2
  libsqlite3-dev libtomlplusplus-dev libspdlog-dev libcli11-dev libsystemd-dev libssl-dev libxml2-dev
  libhowardhinnant-date-dev)
RUNTIME_PACKAGES=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils
  curl ca-certificates jq tzdata)
# What only the tests need. Each scripts/lib/deps-*.sh adds its packages here and may name a
# function in TEST_SETUP that scripts/test runs after the packages are in (npm installs etc.).
# ovmf: the UEFI firmware of the e2e tests' EFI guests (tests/support/guest.cpp).
TEST_PACKAGES=(openssl ovmf)
TEST_SETUP=()
for deps in "$SNAPVIRT_ROOT"/scripts/lib/deps-*.sh; do
  [ -e "$deps" ] && source "$deps"
done

# Installs the Debian packages given that are not installed yet.
ensure_packages() {
  local missing=()
  local p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  ((${#missing[@]} == 0)) && return 0
  [ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}); run as root or install them"
  log "Installing ${missing[*]} (quietly; log: /tmp/snapvirt-apt.log)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/snapvirt-apt.log 2>&1; then
    apt-get update -q >>/tmp/snapvirt-apt.log 2>&1 || true
    apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/snapvirt-apt.log 2>&1 ||
      { tail -20 /tmp/snapvirt-apt.log >&2; die "apt-get install failed (log: /tmp/snapvirt-apt.log)"; }
  fi
}

libvirt_answers() { timeout 10 virsh -q -c qemu:///system version >/dev/null 2>&1; }

# Makes sure a libvirtd answers on qemu:///system. A running libvirtd is used as it is; only
# when none runs is one prepared and started (systemd's unit where systemd runs, else a
# container-style local daemon, see scripts/libvirtd-local).
ensure_libvirtd() {
  if libvirt_answers; then return 0; fi
  if [ -d /run/systemd/system ] && systemctl list-unit-files libvirtd.service >/dev/null 2>&1 &&
     systemctl cat libvirtd.service >/dev/null 2>&1; then
    log "Starting libvirtd.service"
    systemctl start libvirtd.service || true
    for _ in $(seq 1 60); do libvirt_answers && return 0; sleep 0.5; done
  fi
  "$SNAPVIRT_ROOT/scripts/libvirtd-local" start
}

configure_and_build() {
  log "Building in $BUILD_DIR"
  cmake -S "$SNAPVIRT_ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${SNAPVIRT_BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
  cmake --build "$BUILD_DIR" -j"$(nproc)"
}

# Configures like configure_and_build (same build directory, same cache, so scripts/test later
# reuses every object) but builds only the targets named, with cmake's progress on screen.
build_targets() {
  log "Configuring in $BUILD_DIR"
  cmake -S "$SNAPVIRT_ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${SNAPVIRT_BUILD_TYPE:-RelWithDebInfo}" >/dev/null
  log "Building $* (progress in %)"
  cmake --build "$BUILD_DIR" -j"$(nproc)" --target "$@"
}
