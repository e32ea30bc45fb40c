# Installation layout and the Debian package (cpack -G DEB).
#
#   /usr/sbin/snapvirtd                    daemon      (daemon/CMakeLists.txt)
#   /usr/bin/snapvirt                      CLI         (cli/CMakeLists.txt)
#   /lib/systemd/system/snapvirtd.service  unit        (systemd/)
#   /etc/snapvirt/snapvirtd.toml           conffile    (config/snapvirtd.toml)
#   /usr/share/doc/snapvirt/               operations.md, examples/snapvirtd.toml
#
# The package is built for /usr (CPACK_PACKAGING_INSTALL_PREFIX); /etc and the unit directory
# are absolute, so they are the same whatever the install prefix.

include(GNUInstallDirs)

# `cpack` and `make install` install what is built and do not build first (build, then
# package): cpack's "preinstall" step would otherwise rebuild the whole tree, tests included,
# possibly relinking binaries other tests are running.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

# Where systemd looks for package units: /lib/systemd/system on Debian 12, /usr/lib/... later.
if(NOT DEFINED SNAPVIRT_SYSTEMD_UNIT_DIR)
  pkg_get_variable(_snapvirt_unit_dir systemd systemdsystemunitdir)
  if(NOT _snapvirt_unit_dir)
    set(_snapvirt_unit_dir /lib/systemd/system)
  endif()
  set(SNAPVIRT_SYSTEMD_UNIT_DIR ${_snapvirt_unit_dir} CACHE PATH "Directory for snapvirtd.service")
endif()
set(SNAPVIRT_CONFIG_DIR /etc/snapvirt)

install(FILES ${PROJECT_SOURCE_DIR}/systemd/snapvirtd.service DESTINATION ${SNAPVIRT_SYSTEMD_UNIT_DIR})
install(FILES ${PROJECT_SOURCE_DIR}/config/snapvirtd.toml DESTINATION ${SNAPVIRT_CONFIG_DIR})
install(FILES ${PROJECT_SOURCE_DIR}/config/snapvirtd.toml DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
foreach(doc docs/operations.md README.md)
  if(EXISTS ${PROJECT_SOURCE_DIR}/${doc})
    install(FILES ${PROJECT_SOURCE_DIR}/${doc} DESTINATION ${CMAKE_INSTALL_DOCDIR})
  endif()
endforeach()

# ---- CPack: one .deb named snapvirt ------------------------------------------------------------

set(CPACK_PACKAGE_NAME snapvirt)
set(CPACK_PACKAGE_VENDOR "snapvirt")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "VM snapshot daemon and CLI for libvirt")
set(CPACK_PACKAGE_DESCRIPTION
  "snapvirtd takes, lists, reverts and deletes snapshots of libvirt/QEMU virtual machines \
and serves them over an HTTP API (Unix socket and optional TCP with bearer tokens and TLS). \
It keeps a catalog of snapshots and jobs in SQLite, recovers interrupted jobs at start-up and \
reconciles with libvirt. The snapvirt command-line client talks to the API.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)
set(CPACK_SOURCE_GENERATOR "")

set(SNAPVIRT_PACKAGE_MAINTAINER "snapvirt maintainers <snapvirt@localhost>"
    CACHE STRING "Maintainer field of the .deb")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${SNAPVIRT_PACKAGE_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Depends: the shared libraries the binaries link (libvirt0, libsystemd0, libsqlite3-0, libssl3,
# libspdlog, libfmt, libxml2, libstdc++6, libc6 ...), computed by dpkg-shlibdeps (dpkg-dev).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Not a shared library, so dpkg-shlibdeps cannot see it: schedules read their time zones from the
# system tz database (/usr/share/zoneinfo) through libdate-tz. The computed list is appended.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "tzdata")
# The daemon talks to a libvirtd, normally the local one with the QEMU driver; it may also be
# a remote one (qemu+tls://), hence Recommends rather than Depends.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libvirt-daemon-system, libvirt-daemon-driver-qemu")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "qemu-utils")

# Maintainer scripts (daemon-reload, restart on upgrade, stop on removal) and the conffile list.
set(_snapvirt_conffiles ${CMAKE_BINARY_DIR}/cpack-debian/conffiles)
file(WRITE ${_snapvirt_conffiles} "${SNAPVIRT_CONFIG_DIR}/snapvirtd.toml\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${_snapvirt_conffiles}
  ${PROJECT_SOURCE_DIR}/cmake/debian/postinst
  ${PROJECT_SOURCE_DIR}/cmake/debian/prerm
  ${PROJECT_SOURCE_DIR}/cmake/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
