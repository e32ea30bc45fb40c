#pragma once
// One job kind's behaviour behind one interface. Each kind is a file in this folder (create.cpp,
// revert.cpp, delete.cpp) and one row in registry.cpp; nothing else dispatches on the kind.
//
// Every step that changes libvirt is preceded by a write-ahead intent in the job's catalog row
// (what the guest was, what the job is about to do, whether it will start the guest again), so
// that recovery after a crash or a libvirtd outage can finish or undo it.

#include "api/backend.hpp"
#include "daemon/catalog.hpp"
#include "daemon/engine_metrics.hpp"
#include "daemon/engine_options.hpp"
#include "daemon/job_queue.hpp"
#include "daemon/pause_tracker.hpp"
#include "daemon/reconciler.hpp"
#include "hypervisor/hypervisor.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace snapvirt::daemon {

// What every job may use. All of it is thread-safe.
struct JobServices {
    const EngineOptions& options;
    Catalog& catalog;
    hv::Hypervisor& hv;
    api::EventSink& sink;
    JobQueue& queue;
    Reconciler& reconciler;
    PauseTracker& pauses;
    EngineMetrics& metrics;
    std::function<void(const std::string& uuid)> publish_instance;
    std::function<void()> report_status;

    // Sleeps at a test delay point ("saving", "saving.after", ...), if one is set.
    void test_delay(const std::string& point) const;
};

// A job ends with this error; `code` goes into job.error.code.
struct JobFailure : std::runtime_error {
    JobFailure(std::string c, const std::string& message) : std::runtime_error(message), code(std::move(c)) {}
    std::string code;
};

// Thrown where a job stops for a cancel; its undo() then puts things back.
struct JobCancelled {};

// One running job as its kind sees it: the record, its parameters, and the bookkeeping steps.
// Lives on one worker thread.
class JobContext {
public:
    JobContext(JobServices& services, std::shared_ptr<ActiveJob> active, JobRecord rec);

    JobServices& services() { return s_; }
    Job& job() { return rec_.job; }
    const nlohmann::json& params() const { return params_; }
    const nlohmann::json& last_intent() const { return intent_; }
    const std::string& uuid() const { return uuid_; }
    ActiveJob& active() { return *active_; }
    const std::shared_ptr<ActiveJob>& active_ptr() const { return active_; }

    void save_job();
    // Reports the phase, saves the job, and sleeps at the phase's test delay if one is set.
    void phase(JobPhase p);
    // Records what the job is about to do to libvirt, before it does it.
    void intent(nlohmann::json step);
    void save_snapshot(const Snapshot& s);
    // The job's snapshot as the catalog has it now; a JobFailure if it is gone.
    Snapshot snapshot();
    // The instance as libvirt has it now; a JobFailure if it was undefined.
    hv::DomainInfo domain();
    // A libvirt connection of the job's own, for its long calls.
    hv::Lane& lane();

private:
    JobServices& s_;
    std::shared_ptr<ActiveJob> active_;
    JobRecord rec_;
    nlohmann::json params_;
    nlohmann::json intent_;
    const std::string uuid_;
    std::unique_ptr<hv::Lane> lane_;
};

// One execution of a job of one kind; holds what the kind needs to remember between its steps.
class JobRun {
public:
    virtual ~JobRun() = default;
    // Does the work. Throws JobFailure, JobCancelled or hv::Error.
    virtual void run() = 0;
    // Puts things back after run() threw: `error` set for a failure, empty for a cancel.
    virtual void undo(const std::optional<ErrorInfo>& error) { (void)error; }
    // A write error from libvirt may mean a full disk (a save of the guest's RAM).
    virtual bool writes_guest_state() const { return false; }
    // Records the kind's own metrics of a success that took `seconds`.
    virtual void succeeded(double seconds) { (void)seconds; }
};

// What recovery of an unfinished job found: an error, or a note on what libvirt had done.
struct Recovery {
    std::optional<ErrorInfo> error;
    std::string note;
};

// The error of a job that snapvirtd's stop interrupted: `if_started` says what that left when
// the job had started; a job that never started did nothing.
ErrorInfo interrupted(bool started, const std::string& if_started);

// An unfinished job of an earlier run, with libvirt as it is now.
struct RecoveryContext {
    JobServices& services;
    Job& job;
    const nlohmann::json& params;   // an object (empty when unreadable)
    const nlohmann::json& intent;   // an object (empty when unreadable)
    bool started = false;           // it was running, not just queued
    std::string step;               // the intent's step
    std::optional<hv::DomainInfo> domain;
    std::vector<hv::SnapshotInfo> live;  // the domain's snapshots in libvirt
    std::optional<Snapshot> snapshot;    // the job's snapshot in the catalog

    bool in_libvirt(const std::string& name) const;
    std::string param(const char* key, const std::string& fallback) const;
    std::string intent_text(const char* key) const;
};

// A job kind: its phases, how it runs, how it is withdrawn while queued, how it is recovered.
struct JobKindEntry {
    JobKind kind;
    std::span<const JobPhase> phases;  // what it reports as progress, in order
    std::unique_ptr<JobRun> (*start)(JobContext& ctx);
    // Cancelled before it started: the catalog rows its submission changed are put back.
    void (*withdraw)(JobServices& services, const JobRecord& rec);
    Recovery (*recover)(RecoveryContext& ctx);
};

// Removes those of an external snapshot's `files` that exist and that neither the domain's
// definition nor any of its snapshots in libvirt names: a file a chain still uses is never
// deleted. Returns the files kept because something names them (jobs/external.cpp).
std::vector<std::string> remove_unused_files(JobServices& services, const std::string& uuid,
                                             const std::vector<std::string>& files);

// Once an instance has no snapshot left, puts each disk snapvirt anchored (external_files.hpp)
// back onto its block device: the disk's chain is committed into the device and the domain
// pivots there, then the anchor files go. Only while the guest runs (a block commit needs QEMU);
// an anchor of a guest that is off stays, and the guest works on it as before. `progress` gets
// the percent of the commit. Returns whether anything was committed (jobs/external.cpp).
bool release_anchors(JobServices& services, hv::Lane& lane, const std::string& uuid,
                     const std::function<void(int)>& progress);

// The table of kinds (registry.cpp).
const JobKindEntry& job_kind(JobKind kind);

// Runs one queued job on the calling worker thread; never throws (runner.cpp).
void run_job(JobServices& services, const std::shared_ptr<ActiveJob>& active);
// Ends the jobs that an earlier run or a libvirt outage left unfinished (recovery.cpp);
// `first`: the first recovery of this process, which is logged.
void recover_jobs(JobServices& services, bool first);

// The kinds' entries, one per file.
extern const JobKindEntry create_job;
extern const JobKindEntry revert_job;
extern const JobKindEntry delete_job;

}  // namespace snapvirt::daemon
