#include "daemon/pause_tracker.hpp"

#include <algorithm>

namespace snapvirt::daemon {

void PauseTracker::watch(const std::string& uuid) {
    std::lock_guard lock(mu_);
    records_[uuid] = Record{};
}

void PauseTracker::on_lifecycle(const hv::LifecycleEvent& ev) {
    std::lock_guard lock(mu_);
    auto it = records_.find(ev.uuid);
    if (it == records_.end()) return;
    if (ev.suspended() && !it->second.suspended) it->second.suspended = ev.at;
    if (ev.resumed() && it->second.suspended && !it->second.resumed) it->second.resumed = ev.at;
    cv_.notify_all();
}

std::optional<std::uint64_t> PauseTracker::paused_ms(const std::string& uuid, std::chrono::milliseconds wait) {
    std::unique_lock lock(mu_);
    // Events travel through libvirt's event loop and arrive around the time the save returns.
    // Without a SUSPENDED event soon, none is coming (a driver without them, a lost event).
    const auto start = std::chrono::steady_clock::now();
    cv_.wait_for(lock, std::min(wait, std::chrono::milliseconds(500)),
                 [&] { return records_[uuid].suspended.has_value(); });
    if (records_[uuid].suspended) cv_.wait_until(lock, start + wait, [&] { return records_[uuid].resumed.has_value(); });
    const Record r = records_[uuid];
    records_.erase(uuid);
    if (!r.suspended || !r.resumed) return std::nullopt;
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(*r.resumed - *r.suspended).count());
}

}  // namespace snapvirt::daemon
