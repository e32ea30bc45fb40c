#pragma once
// The host's facts for GET /v1/host: read from libvirt on the reconciler's maintenance thread
// when the connection comes up and at every reconciliation, answered from here so that a read
// never waits on libvirt.
//
// Thread-safety: store() and view() may be called from any thread at once.

#include "api/model.hpp"
#include "hypervisor/types.hpp"

#include <mutex>
#include <optional>

namespace snapvirt::daemon {

class HostFactsCache {
public:
    void store(hv::HostFacts facts);
    // What the API answers; `stale`: libvirt is unreachable now, the facts are the last seen.
    api::Host view(bool stale) const;
    // The last facts read, if any.
    std::optional<hv::HostFacts> facts() const;

private:
    mutable std::mutex mu_;
    std::optional<hv::HostFacts> facts_;
};

}  // namespace snapvirt::daemon
