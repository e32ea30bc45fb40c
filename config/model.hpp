#pragma once
// The contract's objects (shared/design/api-v1.md) as plain structs: what the catalog stores
// and api/json.cpp writes. Plain data, no behaviour beyond a predicate; every layer may use
// them, so they live in config/ beside the vocabulary they are spelled in.

#include "config/vocabulary.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace snapvirt {

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
    SnapshotMode mode = SnapshotMode::other;
    SnapshotMethod method = SnapshotMethod::internal;
    SnapshotState state = SnapshotState::creating;
    std::optional<std::string> parent_id;
    bool is_current = false;
    TimeMs created_at = 0;
    std::optional<std::uint64_t> size_bytes;
    std::optional<std::uint64_t> guest_paused_ms;
    std::string origin = "api";      // api discovered
    std::optional<std::string> schedule_id;  // the schedule whose run took it
    std::optional<ErrorInfo> error;
    // External snapshots: the files snapvirt named for it (memory state, overlays, the NVRAM
    // copy). Not part of the API; kept so that no file is lost or orphaned.
    std::vector<std::string> files;
};

// The options of a snapshot as a request or a schedule gives them.
struct StoppedOptions {
    std::optional<unsigned> shutdown_timeout_s;  // unset: snapshots.shutdown_timeout_s
    bool force_stop = false;
    bool keep_stopped = false;
};

// One run of a schedule: the slot it was for, when it got its outcome, its job.
struct ScheduleRun {
    TimeMs slot = 0;   // the time the cron expression named
    TimeMs at = 0;     // when the outcome was recorded
    std::optional<std::string> job_id;
    ScheduleOutcome outcome = ScheduleOutcome::running;
    std::optional<ErrorInfo> error;
};

// A schedule (docs/api.md, "Schedules").
struct Schedule {
    std::string id;
    InstanceRef instance;
    std::string name;
    std::string cron;
    std::string timezone = "UTC";
    SnapshotMode mode = SnapshotMode::memory;
    StoppedOptions stopped;  // stopped mode only
    std::optional<std::string> display_name_template;  // unset: "{schedule} {datetime}"
    std::optional<unsigned> keep_last;
    std::optional<std::string> max_age;  // "7d" as given; parsed by the daemon's schedule code
    unsigned jitter_s = 0;
    bool enabled = true;
    std::optional<TimeMs> next_run_at;  // null while disabled
    std::optional<ScheduleRun> last_run;
    TimeMs created_at = 0;
    TimeMs updated_at = 0;
};

struct ScheduleQuery {
    std::optional<std::string> instance;
    unsigned limit = 100;
    std::optional<std::string> cursor;
};

struct Progress {
    std::string phase;  // a JobPhase's word; free text in the contract
    std::optional<int> percent;
};

struct Job {
    std::string id;
    JobKind kind = JobKind::create;
    InstanceRef instance;
    std::optional<std::string> snapshot_id;
    JobState state = JobState::queued;
    Progress progress;
    TimeMs created_at = 0;
    std::optional<TimeMs> started_at;
    std::optional<TimeMs> finished_at;
    std::optional<ErrorInfo> error;
    bool recovered = false;  // finished by crash recovery at start-up

    bool terminal() const { return snapvirt::terminal(state); }
};

template <class T>
struct Page {
    std::vector<T> items;
    std::optional<std::string> next_cursor;
};

// A remembered answer to a POST with an Idempotency-Key.
struct StoredResponse {
    std::string request_hash;
    int status = 0;
    std::string body;
    std::string location;
};

// Filters of the list endpoints, validated by api/ before they reach the catalog.
struct SnapshotQuery {
    std::optional<std::string> instance;
    std::optional<SnapshotState> state;
    std::optional<SnapshotMode> mode;
    std::optional<std::string> q;
    unsigned limit = 100;
    std::optional<std::string> cursor;
};

struct JobQuery {
    std::optional<std::string> instance;
    std::optional<JobKind> kind;
    std::optional<JobState> state;
    unsigned limit = 100;
    std::optional<std::string> cursor;
};

}  // namespace snapvirt
