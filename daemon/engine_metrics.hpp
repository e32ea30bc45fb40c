#pragma once
// The daemon's own Prometheus metric families: job outcomes and durations, guest pauses, and
// gauges the façade reads when they are rendered.
//
// Thread-safety: every method may be called from any thread; one mutex guards the counters
// (the histograms lock themselves).

#include "api/metrics.hpp"
#include "config/vocabulary.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace snapvirt::daemon {

class EngineMetrics {
public:
    // Gauges read at render time.
    struct Gauges {
        bool libvirt_connected = false;
        std::uint64_t snapshots = 0;
        std::uint64_t instances = 0;
        std::uint64_t active_jobs = 0;
    };
    // The scheduler's, read at render time.
    struct ScheduleGauges {
        std::map<ScheduleOutcome, std::uint64_t> runs;  // runs that got a final outcome in this process
        double overdue_seconds = 0;                     // the oldest due run not started yet
        std::uint64_t enabled = 0;
        std::uint64_t disabled = 0;
    };

    void job_ended(JobKind kind, JobState state);
    void create_took(SnapshotMode mode, SnapshotMethod method, double seconds);
    void revert_took(double seconds);
    void guest_paused(SnapshotMethod method, double seconds);

    void render(std::string& out, const Gauges& gauges) const;
    static void render(std::string& out, const ScheduleGauges& gauges);

private:
    mutable std::mutex mu_;
    std::map<std::pair<JobKind, JobState>, std::uint64_t> outcomes_;  // jobs finished by this process
    static api::Histogram durations() { return api::Histogram({0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300}); }
    static api::Histogram pauses() { return api::Histogram({0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}); }
    // By mode (memory, stopped) and method (internal, external), in the enums' order.
    std::array<std::array<api::Histogram, 2>, 2> create_seconds_{{{durations(), durations()}, {durations(), durations()}}};
    api::Histogram revert_seconds_ = durations();
    std::array<api::Histogram, 2> guest_paused_seconds_{pauses(), pauses()};  // by method
};

}  // namespace snapvirt::daemon
