#pragma once
// The engine's settings, taken from the configuration at start-up. Immutable afterwards.

#include "config/config.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <string>

namespace snapvirt::daemon {

struct EngineOptions {
    unsigned workers = config::JobConfig{}.workers;
    unsigned max_snapshots_per_instance = config::SnapshotConfig{}.max_snapshots_per_instance;  // 0 = unlimited
    unsigned shutdown_timeout_s = config::SnapshotConfig{}.shutdown_timeout_s;
    std::string external_dir;  // where external snapshot files go that cannot sit next to a disk
    unsigned external_headroom_mib = config::SnapshotConfig{}.external_headroom_mib;
    unsigned external_writeback_ms = config::SnapshotConfig{}.external_writeback_ms;
    std::chrono::seconds reconcile_interval = config::Config{}.reconcile_interval;
    unsigned history_days = config::JobConfig{}.history_days;
    std::chrono::milliseconds poll_interval{200};
    config::ScheduleConfig schedules;
    // Test-only pauses at named points of a job (a JobPhase's word, or it and ".after"), from
    // the environment variable SNAPVIRT_TEST_DELAYS="point=ms,point=ms".
    std::map<std::string, int> test_delays;
    // Called with a one-line summary when the connection or the running jobs change (the
    // daemon passes it to systemd as STATUS=).
    std::function<void(const std::string&)> status;
};

std::map<std::string, int> parse_test_delays(const char* spec);

}  // namespace snapvirt::daemon
