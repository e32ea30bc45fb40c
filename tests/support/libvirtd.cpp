#include "tests/support/libvirtd.hpp"

#include <cstdlib>
#include <stdexcept>

namespace snapvirt::test {

std::string libvirt_uri() {
    const char* uri = std::getenv("SNAPVIRT_TEST_LIBVIRT_URI");
    return uri && *uri ? uri : "qemu:///system";
}

void libvirtd(const std::string& action) {
    const char* stack = std::getenv("SNAPVIRT_STACK_DIR");
    if (!stack || !*stack)
        throw std::runtime_error("This test stops and starts libvirtd, so it runs only against a private stack: run it "
                                 "through scripts/test (SNAPVIRT_STACK_DIR is not set).");
    // scripts/libvirtd-local reads SNAPVIRT_STACK_DIR from the environment.
    const std::string cmd = std::string(SNAPVIRT_SOURCE_DIR) + "/scripts/libvirtd-local " + action;
    if (std::system(cmd.c_str()) != 0 && action == "start") throw std::runtime_error("Could not start libvirtd: " + cmd);
}

}  // namespace snapvirt::test
