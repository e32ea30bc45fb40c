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
using snapvirt::Snapshot;
using snapvirt::SnapshotQuery;
using snapvirt::StoredResponse;
using snapvirt::TimeMs;

// Requests, validated by api/ before they reach the backend.
struct CreateSnapshotRequest {
    SnapshotMode mode = SnapshotMode::memory;  // memory or stopped
    std::optional<std::string> name;
    std::optional<std::string> display_name;
    std::string description;
    std::optional<unsigned> shutdown_timeout_s;
    bool force_stop = false;
    bool keep_stopped = false;
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
