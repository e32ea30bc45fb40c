#pragma once
// The engine: the API's Backend, as a thin façade over the rooms that do the work —
//   JobQueue (daemon/job_queue.*)        which instance is busy, the workers, cancellation
//   job kinds (daemon/jobs/)             what each kind of job does, and its crash recovery
//   Reconciler (daemon/reconciler.*)     the catalog kept in line with libvirt
//   PauseTracker, TokenCache, EngineMetrics, HostFactsCache
// It resolves names, checks requests, writes the rows a job starts from, and turns the
// catalog's and the hypervisor's errors into the API's.
//
// Thread-safety: Backend methods are called from the HTTP server's threads; EventListener
// methods from libvirt's event thread (they only queue work). The rooms guard themselves.

#include "api/backend.hpp"
#include "daemon/api_errors.hpp"
#include "daemon/catalog.hpp"
#include "daemon/engine_metrics.hpp"
#include "daemon/engine_options.hpp"
#include "daemon/host_facts.hpp"
#include "daemon/job_queue.hpp"
#include "daemon/jobs/job.hpp"
#include "daemon/pause_tracker.hpp"
#include "daemon/reconciler.hpp"
#include "daemon/schedule/scheduler.hpp"
#include "daemon/token_cache.hpp"
#include "hypervisor/hypervisor.hpp"

#include <atomic>
#include <chrono>
#include <string>

namespace snapvirt::daemon {

class Engine final : public api::Backend,
                     public hv::EventListener,
                     private ReconcilerHost,
                     private schedule::SchedulerHost {
public:
    Engine(EngineOptions options, Catalog& catalog, hv::Hypervisor& hypervisor, api::EventSink& sink);
    ~Engine() override;

    // Starts the workers and the maintenance thread; unfinished jobs of an earlier run are
    // recovered as soon as libvirt is reachable.
    void start();
    // Takes no new jobs, waits up to `grace` for running ones, then tells all threads to stop;
    // the destructor joins them. A process that exits (without destroying the engine) while a
    // job still runs leaves that job to crash recovery at the next start.
    void stop(std::chrono::seconds grace);
    // Appends the engine's Prometheus metric families.
    void collect_metrics(std::string& out);
    // Sends the one-line status summary to options.status.
    void report_status();
    // Asks for a reconciliation of every instance now (tests, SIGHUP).
    void request_reconcile() { reconciler_.reconcile_all_soon(); }
    // True once the first reconciliation after start-up finished.
    bool reconciled_once() const { return reconciler_.reconciled_once(); }

    // api::Backend
    std::vector<api::Instance> list_instances() override;
    api::Instance get_instance(const std::string& name_or_uuid) override;
    std::vector<api::Snapshot> list_instance_snapshots(const std::string& name_or_uuid) override;
    api::Page<api::Snapshot> list_snapshots(const api::SnapshotQuery& query) override;
    api::Snapshot get_snapshot(const std::string& id) override;
    api::CreateSnapshotResult create_snapshot(const std::string& instance,
                                              const api::CreateSnapshotRequest& request) override;
    api::Snapshot edit_snapshot(const std::string& id, const api::EditSnapshotRequest& request) override;
    api::Job revert_snapshot(const std::string& id, const api::RevertRequest& request) override;
    api::Job delete_snapshot(const std::string& id, bool children) override;
    api::Page<api::Job> list_jobs(const api::JobQuery& query) override;
    api::Job get_job(const std::string& id) override;
    api::Job cancel_job(const std::string& id) override;
    // Schedules (engine_schedules.cpp).
    std::vector<api::Schedule> list_instance_schedules(const std::string& name_or_uuid) override;
    api::Page<api::Schedule> list_schedules(const api::ScheduleQuery& query) override;
    api::Schedule get_schedule(const std::string& id) override;
    api::Schedule create_schedule(const std::string& instance, const api::ScheduleRequest& request) override;
    api::Schedule edit_schedule(const std::string& id, const api::ScheduleRequest& request) override;
    void delete_schedule(const std::string& id, bool with_snapshots) override;
    api::Readiness readiness() override;
    api::Host host() override { return host_facts_.view(!hv_.connected()); }
    std::optional<api::StoredResponse> find_idempotent(const std::string& key) override;
    void remember_idempotent(const std::string& key, const api::StoredResponse& response) override;
    api::Scope authenticate(const std::string& token) override { return tokens_.authenticate(token); }
    std::uint64_t generation() override;

    // hv::EventListener
    void on_connection_changed(bool connected, const std::string& reason) override;
    void on_lifecycle(const hv::LifecycleEvent& event) override;

private:
    // ReconcilerHost
    std::unique_ptr<JobQueue::Edit> hold_if_free(const std::string& uuid) override { return queue_.hold_if_free(uuid); }
    bool job_holds(const std::string& uuid) override { return queue_.busy_job(uuid).has_value(); }
    void publish_instance(const std::string& uuid) override;
    void recover_jobs() override;
    void refresh_host() override { host_facts_.store(hv_.host_facts()); }

    // The scheduler (engine_scheduling.cpp) looks at the schedules again: one was made,
    // changed or deleted.
    void schedules_changed();
    // schedule::SchedulerHost (engine_scheduling.cpp)
    std::optional<Job> submit_run(const Schedule& schedule, TimeMs slot, const std::string& display_name) override;
    Job submit_retention_delete(const std::string& snapshot_id) override;
    std::optional<Job> find_job(const std::string& id) override;
    void publish_schedule(const std::string& schedule_id) override;
    void publish_run(const Schedule& schedule, const ScheduleRun& run) override;
    static schedule::SchedulerOptions scheduler_options(const EngineOptions& options);

    // Schedules (engine_schedules.cpp): what api/ cannot check of a schedule as it will be
    // stored, and its next run from now.
    void check_schedule(const Schedule& s, const api::ScheduleRequest& request);
    std::optional<TimeMs> next_run(const Schedule& s, TimeMs now) const;

    // Views (engine.cpp).
    std::string resolve_instance_uuid(const std::string& name_or_uuid, bool ask_hypervisor);
    api::Instance decorate(api::Instance i);
    std::optional<api::Instance> instance_view(const std::string& uuid);
    void require_connected() const;

    // Requests (engine_requests.cpp).
    api::CreateSnapshotResult submit_create(const std::string& instance, const api::CreateSnapshotRequest& request);
    void record_run(const std::string& schedule_id, TimeMs slot, const Job& job);
    std::optional<SnapshotMethod> existing_method(const std::string& instance_uuid);
    hv::Version libvirt_version();
    std::string choose_name(const hv::DomainInfo& dom, const std::optional<std::string>& requested);
    JobRecord new_job(JobKind kind, const InstanceRef& instance, const std::string& snapshot_id,
                      const nlohmann::json& params);

    EngineOptions opts_;
    Catalog& catalog_;
    hv::Hypervisor& hv_;
    api::EventSink& sink_;
    EngineMetrics metrics_;
    PauseTracker pauses_;
    TokenCache tokens_;
    JobQueue queue_;
    Reconciler reconciler_;
    JobServices services_;
    HostFactsCache host_facts_;
    schedule::SystemClock clock_;
    schedule::Scheduler scheduler_;  // last: its thread uses the members above
    std::atomic<bool> recovered_once_{false};
    // Bumped when libvirt's reachability changes (instances turn stale or fresh).
    std::atomic<std::uint64_t> view_changes_{0};
};

}  // namespace snapvirt::daemon
