#include "daemon/host_facts.hpp"

#include <unistd.h>

#include <climits>

namespace snapvirt::daemon {

namespace {

std::string local_hostname() {
    char name[HOST_NAME_MAX + 1] = {};
    if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
    return name;
}

}  // namespace

void HostFactsCache::store(hv::HostFacts facts) {
    std::lock_guard lock(mu_);
    facts_ = std::move(facts);
}

api::Host HostFactsCache::view(bool stale) const {
    std::optional<hv::HostFacts> facts;
    {
        std::lock_guard lock(mu_);
        facts = facts_;
    }
    api::Host h;
    h.hostname = facts && !facts->hostname.empty() ? facts->hostname : local_hostname();
    if (facts) {
        h.libvirt_version = facts->libvirt.to_string();
        h.qemu_version = facts->hypervisor.to_string();
    }
    h.snapvirt_version = SNAPVIRT_VERSION;
    h.stale = stale;
    // Internal snapshots everywhere; external ones where libvirt can also revert them.
    h.capabilities.modes = {SnapshotMode::memory, SnapshotMode::stopped};
    h.capabilities.methods = {SnapshotMethod::internal};
    if (facts && facts->can_revert_external()) h.capabilities.methods.push_back(SnapshotMethod::external);
    h.capabilities.external_revert = facts && facts->can_revert_external();
    return h;
}

std::optional<hv::HostFacts> HostFactsCache::facts() const {
    std::lock_guard lock(mu_);
    return facts_;
}

}  // namespace snapvirt::daemon
