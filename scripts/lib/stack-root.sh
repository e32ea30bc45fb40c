# Debian roots for the test lanes (sourced by scripts/test and scripts/stack): a minbase root
# made once from Debian's archive with debootstrap, and per package list a copy of it with the
# build, runtime and test packages installed by apt-get inside the root. Both live in a cache
# outside the checkout and are reused while the package list is unchanged:
#   $SNAPVIRT_STACK_CACHE/<suite>-minbase            debootstrap --variant=minbase, untouched
#   $SNAPVIRT_STACK_CACHE/<suite>-<hash of packages>  the lane's root
# A root is made in <name>.tmp and renamed when complete, so an interrupted run leaves no root
# that looks finished.

STACK_CACHE=${SNAPVIRT_STACK_CACHE:-/var/cache/snapvirt/stacks}
STACK_MIRROR=${SNAPVIRT_STACK_MIRROR:-http://deb.debian.org/debian}

# The packages a lane's root needs. scripts/lib/common.sh's lists are Debian 12's names; the
# names that differ in a suite are mapped here. The suites a root does not run (sanitizer, fuzz,
# browser, OpenAPI: lane 12 only) bring no packages; of the test packages, the root gets those of
# the suites it runs (ovmf for the e2e tests' EFI guests, systemd… for packaging).
stack_root_packages() {
  local suite=$1
  local p
  for p in "${BUILD_PACKAGES[@]}" "${RUNTIME_PACKAGES[@]}" openssl ovmf passwd systemd dpkg-dev file strace \
      procps util-linux; do
    printf '%s\n' "$p"
  done | sort -u
  : "$suite"
}

# Prints the path of the suite's root for the current package list (made if missing).
stack_root_path() {
  local suite=$1
  local hash
  hash=$( { echo "$suite $STACK_MIRROR"; stack_root_packages "$suite"; } | sha256sum | cut -c1-12)
  printf '%s/%s-%s\n' "$STACK_CACHE" "$suite" "$hash"
}

# Makes <cache>/<suite>-minbase once (debootstrap --variant=minbase).
stack_root_base() {
  local suite=$1
  local base="$STACK_CACHE/$suite-minbase"
  [ -f "$base/.snapvirt-complete" ] && { printf '%s\n' "$base"; return 0; }
  command -v debootstrap >/dev/null || ensure_packages debootstrap
  mkdir -p "$STACK_CACHE"
  rm -rf "$base.tmp"
  log "Making a $suite minbase root (debootstrap, once; log: $STACK_CACHE/$suite-minbase.log)"
  if ! debootstrap --variant=minbase "$suite" "$base.tmp" "$STACK_MIRROR" >"$STACK_CACHE/$suite-minbase.log" 2>&1; then
    tail -20 "$STACK_CACHE/$suite-minbase.log" >&2
    rm -rf "$base.tmp"
    die "debootstrap of $suite failed (log: $STACK_CACHE/$suite-minbase.log)"
  fi
  rm -f "$base.tmp"/var/cache/apt/archives/*.deb
  touch "$base.tmp/.snapvirt-complete"
  mv "$base.tmp" "$base"
  printf '%s\n' "$base"
}

# Runs a command in ROOT with /proc, /sys and /dev bound, in a private mount namespace (so the
# mounts end with the command, whatever happens to this script).
stack_root_chroot() {
  local root=$1
  shift
  unshare --mount --propagation private -- /bin/bash -c '
    set -e
    root=$1; shift
    mount --bind /proc "$root/proc"
    mount --bind /sys "$root/sys"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs tmpfs "$root/run"
    exec chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
  ' stack-root "$root" "$@"
}

# Makes the suite's root for the current package list, if missing, and prints its path. One
# run at a time makes roots (a lock in the cache); the others wait and then reuse them.
stack_root_ensure() {
  local suite=$1
  local root base lock
  root=$(stack_root_path "$suite")
  if [ -f "$root/.snapvirt-complete" ]; then printf '%s\n' "$root"; return 0; fi
  mkdir -p "$STACK_CACHE"
  exec {lock}>"$STACK_CACHE/.lock"
  flock "$lock"
  if [ -f "$root/.snapvirt-complete" ]; then printf '%s\n' "$root"; return 0; fi
  base=$(stack_root_base "$suite")
  log "Making the $suite root $root (apt-get inside the root; log: $root.log)"
  rm -rf "$root.tmp"
  cp -a "$base" "$root.tmp"
  rm -f "$root.tmp/.snapvirt-complete"
  # No daemons start while packages are installed (there is no init in the root anyway).
  printf '#!/bin/sh\nexit 101\n' >"$root.tmp/usr/sbin/policy-rc.d"
  chmod 755 "$root.tmp/usr/sbin/policy-rc.d"
  cp /etc/resolv.conf "$root.tmp/etc/resolv.conf" 2>/dev/null || true
  local packages
  mapfile -t packages < <(stack_root_packages "$suite")
  if ! { stack_root_chroot "$root.tmp" apt-get update -q &&
         stack_root_chroot "$root.tmp" apt-get install -y -q --no-install-recommends "${packages[@]}"; } \
       >"$root.log" 2>&1; then
    tail -30 "$root.log" >&2
    die "installing packages into the $suite root failed (log: $root.log); $root.tmp is left for a look"
  fi
  stack_root_chroot "$root.tmp" apt-get clean >>"$root.log" 2>&1 || true
  stack_root_packages "$suite" >"$root.tmp/.snapvirt-packages"
  touch "$root.tmp/.snapvirt-complete"
  mv "$root.tmp" "$root"
  printf '%s\n' "$root"
}
