#pragma once
// How long a guest was paused while a memory snapshot saved it (a snapshot's guest_paused_ms),
// measured from libvirt's SUSPENDED and RESUMED events.
//
// Thread-safety: on_lifecycle() runs on libvirt's event thread, watch() and paused_ms() on a
// job's worker; one mutex guards the records.

#include "hypervisor/types.hpp"

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace snapvirt::daemon {

class PauseTracker {
public:
    // Starts recording the instance's pause and resume.
    void watch(const std::string& uuid);
    void on_lifecycle(const hv::LifecycleEvent& event);
    // Waits up to `wait` for the pause to end, stops watching, and returns its length if both
    // events were seen.
    std::optional<std::uint64_t> paused_ms(const std::string& uuid, std::chrono::milliseconds wait);

private:
    struct Record {
        std::optional<std::chrono::steady_clock::time_point> suspended;
        std::optional<std::chrono::steady_clock::time_point> resumed;
    };
    std::mutex mu_;
    std::condition_variable cv_;
    std::map<std::string, Record> records_;
};

}  // namespace snapvirt::daemon
