#pragma once
// The contract's objects (shared/design/api-v1.md) as plain structs. The daemon fills them
// from its catalog; api/json.cpp turns them into the contract's JSON.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace snapvirt::api {

using TimeMs = std::int64_t;  // Unix time in milliseconds, UTC

struct InstanceRef {
    std::string uuid;
    std::string name;
};

struct ErrorInfo {
    std::string code;
    std::string message;
};

struct Instance {
    std::string uuid;
    std::string name;
    std::string state = "other";  // running paused shutoff crashed pmsuspended other
    std::uint64_t memory_mib = 0;
    unsigned vcpus = 0;
    std::uint64_t snapshot_count = 0;
    std::optional<std::string> current_snapshot_id;
    std::optional<std::string> busy_job_id;
    bool stale = false;       // libvirt is unreachable: this is the last state seen
    bool present = true;      // false: the domain is no longer defined (kept for its snapshots)
};

struct Snapshot {
    std::string id;
    InstanceRef instance;
    std::string name;
    std::string display_name;
    std::string description;
    std::string mode = "other";      // memory stopped other
    std::string state = "creating";  // creating ready reverting deleting error missing
    std::optional<std::string> parent_id;
    bool is_current = false;
    TimeMs created_at = 0;
    std::optional<std::uint64_t> size_bytes;
    std::optional<std::uint64_t> guest_paused_ms;
    std::string origin = "api";      // api discovered
    std::optional<ErrorInfo> error;
};

struct Progress {
    std::string phase;
    std::optional<int> percent;
};

struct Job {
    std::string id;
    std::string kind;   // create revert delete
    InstanceRef instance;
    std::optional<std::string> snapshot_id;
    std::string state = "queued";  // queued running succeeded failed cancelled
    Progress progress;
    TimeMs created_at = 0;
    std::optional<TimeMs> started_at;
    std::optional<TimeMs> finished_at;
    std::optional<ErrorInfo> error;
    bool recovered = false;  // finished by crash recovery at start-up

    bool terminal() const { return state == "succeeded" || state == "failed" || state == "cancelled"; }
};

template <class T>
struct Page {
    std::vector<T> items;
    std::optional<std::string> next_cursor;
};

// Requests, validated by api/ before they reach the backend.
struct CreateSnapshotRequest {
    std::string mode;  // memory | stopped
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
    std::string start = "auto";  // auto running paused stopped
    bool force = false;
};

struct SnapshotQuery {
    std::optional<std::string> instance;
    std::optional<std::string> state;
    std::optional<std::string> mode;
    std::optional<std::string> q;
    unsigned limit = 100;
    std::optional<std::string> cursor;
};

struct JobQuery {
    std::optional<std::string> instance;
    std::optional<std::string> kind;
    std::optional<std::string> state;
    unsigned limit = 100;
    std::optional<std::string> cursor;
};

struct Readiness {
    bool ready = false;
    std::string reason;   // why not, in a sentence
};

}  // namespace snapvirt::api
