#include "tests/support/libvirtd.hpp"

#include <cstdlib>
#include <stdexcept>
#include <sys/stat.h>

namespace snapvirt::test {

void libvirtd(const std::string& action) {
    struct stat st {};
    const bool systemd = ::stat("/run/systemd/system", &st) == 0 &&
                         std::system("systemctl is-active --quiet libvirtd.service 2>/dev/null") == 0;
    std::string cmd = systemd ? "systemctl " + action + " libvirtd.service libvirtd.socket libvirtd-ro.socket "
                                                      "libvirtd-admin.socket 2>/dev/null"
                              : std::string(SNAPVIRT_SOURCE_DIR) + "/scripts/libvirtd-local " + action;
    if (std::system(cmd.c_str()) != 0 && action == "start") throw std::runtime_error("Could not start libvirtd: " + cmd);
}

}  // namespace snapvirt::test
