#pragma once
// The engine: implements the API's Backend on top of the catalog and the hypervisor. It owns
// the jobs (a bounded worker pool, one mutating job per instance), reconciliation with
// libvirt, and crash recovery.
//
// Thread-safety: Backend methods are called from the HTTP server's threads; EventListener
// methods from libvirt's event thread (they only queue work). Internal state is guarded by
// mu_; catalog and hypervisor are thread-safe themselves.

#include "api/backend.hpp"
#include "api/metrics.hpp"
#include "daemon/catalog.hpp"
#include "hypervisor/hypervisor.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace snapvirt::daemon {

struct EngineOptions {
    unsigned workers = 4;
    unsigned max_snapshots_per_instance = 10;  // 0 = unlimited
    unsigned shutdown_timeout_s = 120;
    std::chrono::seconds reconcile_interval{60};
    unsigned history_days = 30;
    std::chrono::milliseconds poll_interval{200};
    // Test-only pauses at named points of a job ("saving", "saving.after", ...), from the
    // environment variable SNAPVIRT_TEST_DELAYS="point=ms,point=ms".
    std::map<std::string, int> test_delays;
    // Called with a one-line summary when the connection or the running jobs change (the
    // daemon passes it to systemd as STATUS=).
    std::function<void(const std::string&)> status;
};

std::map<std::string, int> parse_test_delays(const char* spec);

class Engine final : public api::Backend, public hv::EventListener {
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
    void request_reconcile();
    // True once the first reconciliation after start-up finished.
    bool reconciled_once() const { return reconciled_once_; }

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
    api::Readiness readiness() override;
    std::optional<api::StoredResponse> find_idempotent(const std::string& key) override;
    void remember_idempotent(const std::string& key, const api::StoredResponse& response) override;
    api::Scope authenticate(const std::string& token) override;
    std::uint64_t generation() override;

    // hv::EventListener
    void on_connection_changed(bool connected, const std::string& reason) override;
    void on_lifecycle(const hv::LifecycleEvent& event) override;

private:
    // A job that is queued or running: the instance's busy marker.
    struct ActiveJob {
        std::string id;
        std::string kind;
        std::string instance_uuid;
        std::atomic<bool> started{false};
        std::atomic<bool> cancel_requested{false};
        std::atomic<bool> waiting_for_shutdown{false};
        std::atomic<bool> orphaned{false};  // its outcome is for recovery to decide
    };

    // Work for the maintenance thread.
    struct Task {
        enum class Kind { recover, reconcile_all, reconcile_instance, refresh_instance } kind;
        std::string uuid;
        bool operator<(const Task& o) const { return std::tie(kind, uuid) < std::tie(o.kind, o.uuid); }
    };

    class JobRun;  // one job's execution (engine_jobs.cpp)

    api::CreateSnapshotResult submit_create(const std::string& instance, const api::CreateSnapshotRequest& request);

    // Resolution and views.
    std::string resolve_instance_uuid(const std::string& name_or_uuid, bool ask_hypervisor);
    api::Instance decorate(api::Instance i);
    std::optional<api::Instance> instance_view(const std::string& uuid);
    void publish_instance(const std::string& uuid);
    void require_connected() const;
    [[noreturn]] void throw_busy(const std::string& uuid, const std::string& instance_name);
    std::string busy_job_locked(const std::string& uuid) const;
    void wait_for_edit(std::unique_lock<std::mutex>& lock, const std::string& uuid);
    // Throws unless a new job may start on the instance now (accepting, no job, no edit).
    void check_free_locked(std::unique_lock<std::mutex>& lock, const std::string& uuid,
                           const std::string& instance_name);
    InstanceRow upsert_domain(const hv::DomainInfo& d);

    // Jobs.
    api::Job submit_locked(const std::string& kind, const std::string& uuid, const std::string& instance_name,
                           const std::optional<std::string>& snapshot_id, const std::string& params);
    void worker_loop();
    void run_job(const std::shared_ptr<ActiveJob>& active);
    // Frees the job's instance, then runs `then` (e.g. publishing the job's end).
    void release(const std::shared_ptr<ActiveJob>& active, const std::function<void()>& then = {});
    void test_delay(const std::string& point) const;

    // Maintenance.
    void enqueue(Task task);
    void maintenance_loop();
    void recover_jobs();
    void recover_job(JobRecord rec);
    void reconcile_all();
    void reconcile_instance(const std::string& uuid);
    // Brings one instance's catalog rows in line with libvirt (no busy check: jobs call it).
    // `described`: the domain as just read from libvirt, if the caller has it.
    void sync_instance(const std::string& uuid, const hv::DomainInfo* described = nullptr);
    void refresh_instance(const std::string& uuid);
    void mark_instance_gone(const std::string& uuid);
    void forget_old();

    // Pause tracking for guest_paused_ms.
    void watch_pauses(const std::string& uuid);
    std::optional<std::uint64_t> paused_ms(const std::string& uuid, std::chrono::milliseconds wait);

    EngineOptions opts_;
    Catalog& catalog_;
    hv::Hypervisor& hv_;
    api::EventSink& sink_;

    mutable std::mutex mu_;
    std::map<std::string, std::shared_ptr<ActiveJob>> busy_;      // instance uuid -> job
    std::map<std::string, std::shared_ptr<ActiveJob>> active_;    // job id -> job
    std::set<std::string> editing_;                               // instances with an edit in flight
    std::condition_variable edit_cv_;                             // an edit ended
    std::deque<std::shared_ptr<ActiveJob>> queue_;
    std::condition_variable queue_cv_;
    std::condition_variable idle_cv_;
    bool accepting_ = true;
    bool stopping_ = false;
    std::vector<std::thread> workers_;

    std::mutex tasks_mu_;
    std::condition_variable tasks_cv_;
    std::set<Task> tasks_;
    bool tasks_stop_ = false;
    std::atomic<bool> recovered_{false};
    std::atomic<bool> reconciled_once_{false};
    std::atomic<bool> settle_requested_{false};  // libvirt just came back: reconcile again soon
    int settling_rounds_ = 0;  // quick reconciliations still to run (maintenance thread only)
    // Bumped when a view changes without a catalog write: busy markers, libvirt reachability.
    std::atomic<std::uint64_t> view_changes_{0};
    std::thread maintenance_;

    struct PauseRecord {
        std::optional<std::chrono::steady_clock::time_point> suspended;
        std::optional<std::chrono::steady_clock::time_point> resumed;
    };
    std::mutex pause_mu_;
    std::condition_variable pause_cv_;
    std::map<std::string, PauseRecord> pauses_;

    // Token cache: reloaded when the database changed (e.g. `snapvirtd token create`).
    std::mutex tokens_mu_;
    std::int64_t tokens_version_ = -1;
    std::chrono::steady_clock::time_point tokens_checked_{};
    std::vector<std::pair<std::string, std::string>> token_hashes_;

    // Metrics.
    std::mutex metrics_mu_;
    std::map<std::string, std::uint64_t> outcomes_;  // "kind/state" of jobs finished by this process
    api::Histogram create_memory_seconds_{{0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300}};
    api::Histogram create_stopped_seconds_{{0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300}};
    api::Histogram revert_seconds_{{0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300}};
    api::Histogram guest_paused_seconds_{{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}};
};

}  // namespace snapvirt::daemon
