#pragma once
// The contract's objects as api/ names them (they are defined in config/model.hpp, which the
// catalog shares), and the requests api/ validates before they reach the backend.

#include "config/model.hpp"

#include <optional>
#include <string>
#include <vector>

namespace snapvirt::api {

using snapvirt::ErrorInfo;
using snapvirt::Instance;
using snapvirt::InstanceRef;
using snapvirt::Job;
using snapvirt::JobQuery;
using snapvirt::Page;
using snapvirt::Progress;
using snapvirt::Schedule;
using snapvirt::ScheduleQuery;
using snapvirt::ScheduleRun;
using snapvirt::Snapshot;
using snapvirt::SnapshotQuery;
using snapvirt::StoredResponse;
using snapvirt::TimeMs;

// Requests, validated by api/ before they reach the backend.
struct CreateSnapshotRequest {
    SnapshotMode mode = SnapshotMode::memory;  // memory or stopped
    MethodChoice method = MethodChoice::automatic;
    std::optional<std::string> name;
    std::optional<std::string> display_name;
    std::string description;
    std::optional<unsigned> shutdown_timeout_s;
    bool force_stop = false;
    bool keep_stopped = false;
    // Set by the daemon's scheduler only (api/ never does): the run this create is. The create's
    // job and the schedule's run (outcome running) are then recorded in one transaction.
    std::optional<std::string> schedule_id;
    std::optional<TimeMs> schedule_slot;
};

// POST /v1/instances/{instance}/schedules (required fields set) and PATCH /v1/schedules/{id}
// (only the fields sent are set). For the fields JSON null may clear, the outer optional says
// "sent", the inner one the value (nullopt: cleared).
struct ScheduleRequest {
    std::optional<std::string> name;
    std::optional<std::string> cron;
    std::optional<std::string> timezone;
    std::optional<SnapshotMode> mode;
    std::optional<unsigned> shutdown_timeout_s;
    std::optional<bool> force_stop;
    std::optional<bool> keep_stopped;
    std::optional<std::optional<std::string>> display_name_template;
    std::optional<std::optional<unsigned>> keep_last;
    std::optional<std::optional<std::string>> max_age;
    std::optional<unsigned> jitter_s;
    std::optional<bool> enabled;
};

struct CreateSnapshotResult {
    Job job;
    Snapshot snapshot;
};

struct EditSnapshotRequest {
    std::optional<std::string> display_name;
    std::optional<std::string> description;
};

struct RevertRequest {
    RevertTarget start = RevertTarget::automatic;
    bool force = false;
};

// GET /v1/host: what the host runs and what snapvirt can do on it.
struct HostCapabilities {
    std::vector<SnapshotMode> modes;      // the modes a snapshot can be taken in
    std::vector<SnapshotMethod> methods;  // the methods snapvirt takes snapshots with
    bool external_revert = false;         // this libvirt reverts external snapshots
};

struct Host {
    std::string hostname;
    std::optional<std::string> libvirt_version;  // "9.0.0"; null until libvirt was reached once
    std::optional<std::string> qemu_version;
    std::string snapvirt_version;
    bool stale = false;  // libvirt is unreachable: the versions are the last ones seen
    HostCapabilities capabilities;
};

struct Readiness {
    bool ready = false;
    std::string reason;   // why not, in a sentence
};

}  // namespace snapvirt::api
