#pragma once
// The libvirt the end-to-end tests use, and stopping and starting it for the outage tests.
// scripts/test runs every suite against a private libvirt stack of its own (scripts/stack) and
// names it in the environment; the host's libvirtd is never stopped by a test.

#include <string>

namespace snapvirt::test {

// $SNAPVIRT_TEST_LIBVIRT_URI (set by scripts/stack to the stack's libvirtd), else qemu:///system.
std::string libvirt_uri();

// "stop" or "start" the stack's libvirtd (scripts/libvirtd-local with $SNAPVIRT_STACK_DIR).
// Throws when no stack is named: these tests never stop a libvirtd they did not start.
void libvirtd(const std::string& action);

}  // namespace snapvirt::test
