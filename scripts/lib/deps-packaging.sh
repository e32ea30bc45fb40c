# tests/packaging: systemd-analyze (verify, security, syscall-filter) comes with the systemd
# package and works offline, without systemd as PID 1; cpack -G DEB with SHLIBDEPS needs
# dpkg-shlibdeps (dpkg-dev) and file; strace traces the daemon for the sandbox test.
TEST_PACKAGES+=(systemd dpkg-dev file strace)
