#pragma once
// What the HTTP API needs from the rest of the daemon. api/ calls it; daemon/ implements it.
// Failures are thrown as api::ApiError with the contract's codes.

#include "api/errors.hpp"
#include "api/model.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace snapvirt::api {

// Where the backend reports changes; the event stream and job long-polls listen here.
// Implementations are thread-safe and never block the caller.
class EventSink {
public:
    virtual ~EventSink() = default;
    virtual void job_updated(const Job& job) = 0;
    virtual void snapshot_created(const Snapshot& snapshot) = 0;
    virtual void snapshot_updated(const Snapshot& snapshot) = 0;
    virtual void snapshot_deleted(const Snapshot& snapshot) = 0;
    virtual void instance_updated(const Instance& instance) = 0;
    // A schedule was made, changed (next_run_at and last_run included) or deleted.
    virtual void schedule_created(const Schedule& schedule) = 0;
    virtual void schedule_updated(const Schedule& schedule) = 0;
    virtual void schedule_deleted(const Schedule& schedule) = 0;
    // A run got an outcome (running included).
    virtual void schedule_run(const Schedule& schedule, const ScheduleRun& run) = 0;
};

enum class Scope { none = 0, read = 1, write = 2 };

// Thread-safety: every method may be called from several threads at once. Methods marked
// "blocking" may wait on the hypervisor and are never called on an I/O thread.
class Backend {
public:
    virtual ~Backend() = default;

    virtual std::vector<Instance> list_instances() = 0;
    virtual Instance get_instance(const std::string& name_or_uuid) = 0;                      // blocking
    virtual std::vector<Snapshot> list_instance_snapshots(const std::string& name_or_uuid) = 0;
    virtual Page<Snapshot> list_snapshots(const SnapshotQuery& query) = 0;
    virtual Snapshot get_snapshot(const std::string& id) = 0;
    virtual CreateSnapshotResult create_snapshot(const std::string& instance,
                                                 const CreateSnapshotRequest& request) = 0;  // blocking
    virtual Snapshot edit_snapshot(const std::string& id, const EditSnapshotRequest& request) = 0;  // blocking
    virtual Job revert_snapshot(const std::string& id, const RevertRequest& request) = 0;
    virtual Job delete_snapshot(const std::string& id, bool children) = 0;
    virtual Page<Job> list_jobs(const JobQuery& query) = 0;
    virtual Job get_job(const std::string& id) = 0;
    virtual Job cancel_job(const std::string& id) = 0;
    // Schedules (docs/api.md, "Schedules"). create/edit validate what api/ cannot (the cron
    // expression, the time zone, the limits) and throw invalid_request naming the field.
    virtual std::vector<Schedule> list_instance_schedules(const std::string& name_or_uuid) = 0;
    virtual Page<Schedule> list_schedules(const ScheduleQuery& query) = 0;
    virtual Schedule get_schedule(const std::string& id) = 0;
    virtual Schedule create_schedule(const std::string& instance, const ScheduleRequest& request) = 0;  // blocking
    virtual Schedule edit_schedule(const std::string& id, const ScheduleRequest& request) = 0;
    // with_snapshots: the schedule's snapshots are deleted too (by retention, one job at a time).
    virtual void delete_schedule(const std::string& id, bool with_snapshots) = 0;

    virtual Readiness readiness() = 0;
    // The host's facts as last read from libvirt; never waits for libvirt.
    virtual Host host() = 0;

    // Idempotency-Key memory (24 h).
    virtual std::optional<StoredResponse> find_idempotent(const std::string& key) = 0;
    virtual void remember_idempotent(const std::string& key, const StoredResponse& response) = 0;

    // Bearer tokens: the scope a token grants, or Scope::none.
    virtual Scope authenticate(const std::string& token) = 0;

    // A number that changes whenever anything the cacheable reads answer from changes; answers
    // computed at one generation may be reused while it stays the same. 0: never reuse.
    virtual std::uint64_t generation() { return 0; }
};

}  // namespace snapvirt::api
