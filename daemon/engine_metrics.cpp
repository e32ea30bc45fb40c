#include "daemon/engine_metrics.hpp"

#include <cstdio>

namespace snapvirt::daemon {

void EngineMetrics::job_ended(JobKind kind, JobState state) {
    std::lock_guard lock(mu_);
    ++outcomes_[{kind, state}];
}

void EngineMetrics::create_took(SnapshotMode mode, SnapshotMethod method, double seconds) {
    if (mode == SnapshotMode::other) return;  // snapvirt takes no such snapshot
    create_seconds_[static_cast<std::size_t>(mode)][static_cast<std::size_t>(method)].observe(seconds);
}

void EngineMetrics::revert_took(double seconds) { revert_seconds_.observe(seconds); }

void EngineMetrics::guest_paused(SnapshotMethod method, double seconds) {
    guest_paused_seconds_[static_cast<std::size_t>(method)].observe(seconds);
}

void EngineMetrics::render(std::string& out, const Gauges& g) const {
    out += "# HELP snapvirt_libvirt_connected Whether libvirt is reachable (1) or not (0).\n";
    out += "# TYPE snapvirt_libvirt_connected gauge\n";
    out += std::string("snapvirt_libvirt_connected ") + (g.libvirt_connected ? "1" : "0") + "\n";
    out += "# HELP snapvirt_catalog_snapshots Snapshots in the catalog.\n";
    out += "# TYPE snapvirt_catalog_snapshots gauge\n";
    out += "snapvirt_catalog_snapshots " + std::to_string(g.snapshots) + "\n";
    out += "# HELP snapvirt_catalog_instances Instances in the catalog.\n";
    out += "# TYPE snapvirt_catalog_instances gauge\n";
    out += "snapvirt_catalog_instances " + std::to_string(g.instances) + "\n";
    out += "# HELP snapvirt_jobs_active Jobs queued or running now.\n";
    out += "# TYPE snapvirt_jobs_active gauge\n";
    out += "snapvirt_jobs_active " + std::to_string(g.active_jobs) + "\n";
    std::lock_guard lock(mu_);
    out += "# HELP snapvirt_jobs_total Jobs that ended in this process, by kind and outcome.\n";
    out += "# TYPE snapvirt_jobs_total counter\n";
    // Ordered as the words sort ("kind/outcome"), as before the counters were keyed by enum.
    std::map<std::string, std::uint64_t> sorted;
    for (const auto& [key, n] : outcomes_)
        sorted[std::string(to_string(key.first)) + "\",outcome=\"" + to_string(key.second)] = n;
    for (const auto& [labels, n] : sorted)
        out += "snapvirt_jobs_total{kind=\"" + labels + "\"} " + std::to_string(n) + "\n";
    out += "# HELP snapvirt_create_duration_seconds Time a successful create job took, by mode and method.\n";
    out += "# TYPE snapvirt_create_duration_seconds histogram\n";
    for (const auto mode : {SnapshotMode::memory, SnapshotMode::stopped})
        for (const auto method : all_values<SnapshotMethod>())
            create_seconds_[static_cast<std::size_t>(mode)][static_cast<std::size_t>(method)].render(
                out, "snapvirt_create_duration_seconds",
                std::string("mode=\"") + to_string(mode) + "\",method=\"" + to_string(method) + "\"");
    out += "# HELP snapvirt_revert_duration_seconds Time a successful revert job took.\n";
    out += "# TYPE snapvirt_revert_duration_seconds histogram\n";
    revert_seconds_.render(out, "snapvirt_revert_duration_seconds", "");
    out += "# HELP snapvirt_guest_paused_seconds How long guests were paused while a memory snapshot saved their state, by method.\n";
    out += "# TYPE snapvirt_guest_paused_seconds histogram\n";
    for (const auto method : all_values<SnapshotMethod>())
        guest_paused_seconds_[static_cast<std::size_t>(method)].render(
            out, "snapvirt_guest_paused_seconds", std::string("method=\"") + to_string(method) + "\"");
}

void EngineMetrics::render(std::string& out, const ScheduleGauges& g) {
    out += "# HELP snapvirt_schedule_runs_total Schedule runs that got an outcome in this process, by outcome.\n";
    out += "# TYPE snapvirt_schedule_runs_total counter\n";
    for (const auto outcome : {ScheduleOutcome::succeeded, ScheduleOutcome::failed, ScheduleOutcome::missed,
                               ScheduleOutcome::skipped}) {
        const auto it = g.runs.find(outcome);
        out += std::string("snapvirt_schedule_runs_total{outcome=\"") + to_string(outcome) + "\"} " +
               std::to_string(it == g.runs.end() ? 0 : it->second) + "\n";
    }
    out += "# HELP snapvirt_schedule_overdue_seconds How long the oldest due run of an enabled schedule has waited to start (0: none).\n";
    out += "# TYPE snapvirt_schedule_overdue_seconds gauge\n";
    char overdue[32];
    std::snprintf(overdue, sizeof overdue, "%.3f", g.overdue_seconds);
    out += std::string("snapvirt_schedule_overdue_seconds ") + overdue + "\n";
    out += "# HELP snapvirt_schedules Schedules, enabled or disabled.\n";
    out += "# TYPE snapvirt_schedules gauge\n";
    out += "snapvirt_schedules{state=\"enabled\"} " + std::to_string(g.enabled) + "\n";
    out += "snapvirt_schedules{state=\"disabled\"} " + std::to_string(g.disabled) + "\n";
}

}  // namespace snapvirt::daemon
