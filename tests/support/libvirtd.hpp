#pragma once
// Stops and starts the host's libvirtd for outage tests: systemd's unit where systemd manages
// it, else scripts/libvirtd-local.

#include <string>

namespace snapvirt::test {

void libvirtd(const std::string& action);  // "stop" or "start"

}  // namespace snapvirt::test
