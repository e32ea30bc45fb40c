#pragma once
// The contract's objects as api/ names them (they are defined in config/model.hpp, which the
// catalog shares), and the requests api/ validates before they reach the backend.

#include "config/model.hpp"

#include <optional>
#include <string>

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

struct Readiness {
    bool ready = false;
    std::string reason;   // why not, in a sentence
};

}  // namespace snapvirt::api
