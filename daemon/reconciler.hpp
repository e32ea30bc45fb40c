#pragma once
// The reconciler: keeps the catalog in line with libvirt. A maintenance thread reads the host's
// facts (versions, name) for the engine's cache when libvirt (re)connects and each round, imports
// snapshots made behind snapvirt's back, marks vanished ones missing, follows domain events,
// runs crash recovery first after every (re)connection, forgets old history, and gives idle
// memory back.
//
// Thread-safety: requests (reconcile_all, on_lifecycle, on_connected) only queue work for the
// maintenance thread. sync_instance() and upsert_domain() may be called from any thread (jobs
// call them); the catalog and the hypervisor are thread-safe themselves.

#include "api/backend.hpp"
#include "daemon/catalog.hpp"
#include "daemon/job_queue.hpp"
#include "daemon/engine_options.hpp"
#include "hypervisor/hypervisor.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace snapvirt::daemon {

// The files reverting to an external snapshot needs (docs/api.md, "Snapshot states"): its
// memory state and the images its own domain definition names for its disks, with their
// backing chains (`live.state_files`), and for a stopped one the NVRAM copy the revert puts back.
// Nothing for an internal snapshot. Its overlays never count: libvirt 11.3 deletes the overlay
// of the snapshot it reverts away from, and renames a reverted-to leaf's, while it stays healthy.
std::vector<std::string> files_to_revert(const Snapshot& row, const hv::SnapshotInfo& live);
// The first of those files that does not exist (a stat() each), none if all are there. A file
// that cannot be looked at (permissions) counts as there.
std::optional<std::string> vanished_file(const Snapshot& row, const hv::SnapshotInfo& live);

// What the reconciler needs from the rest of the engine.
class ReconcilerHost {
public:
    virtual ~ReconcilerHost() = default;
    // Holds the instance while its snapshots are read from libvirt, so that no job or edit
    // changes them meanwhile; nullptr when a job or an edit owns it (and reconciles it itself
    // when it ends).
    virtual std::unique_ptr<JobQueue::Edit> hold_if_free(const std::string& uuid) = 0;
    // A job (queued, running or waiting for recovery) owns the instance.
    virtual bool job_holds(const std::string& uuid) = 0;
    virtual void publish_instance(const std::string& uuid) = 0;
    // Ends the jobs an earlier run (or a libvirt outage) left unfinished. Throws hv::Error
    // (unavailable) to be called again at the next connection.
    virtual void recover_jobs() = 0;
    // Reads the host's facts (versions, name) from libvirt into the engine's cache.
    virtual void refresh_host() = 0;
};

class Reconciler {
public:
    Reconciler(const EngineOptions& options, Catalog& catalog, hv::Hypervisor& hypervisor, api::EventSink& sink,
               ReconcilerHost& host);
    ~Reconciler();  // joins the maintenance thread

    void start();
    void stop();
    void join();

    // Requests, served by the maintenance thread.
    void on_connected();  // read the host, recover, reconcile, then reconcile again soon a few times
    void reconcile_all_soon();
    void on_lifecycle(const hv::LifecycleEvent& event);

    // True once the first reconciliation after start-up finished.
    bool reconciled_once() const { return reconciled_once_; }

    // Brings one instance's catalog rows in line with libvirt (no busy check: jobs call it).
    // `described`: the domain as just read from libvirt, if the caller has it.
    void sync_instance(const std::string& uuid, const hv::DomainInfo* described = nullptr);
    // Writes the domain's row when it changed, and publishes it.
    InstanceRow upsert_domain(const hv::DomainInfo& d);

private:
    struct Task {
        // In the order they run: the host's facts first, then recovery, then the catalog.
        enum class Kind { read_host, recover, reconcile_all, reconcile_instance, refresh_instance } kind;
        std::string uuid;
        bool operator<(const Task& o) const { return std::tie(kind, uuid) < std::tie(o.kind, o.uuid); }
    };
    void enqueue(Task task);
    void loop();
    void run(const Task& task);
    void reconcile_all();
    void reconcile_instance(const std::string& uuid);
    void refresh_instance(const std::string& uuid);
    void mark_instance_gone(const std::string& uuid);
    void forget_old();

    const EngineOptions& opts_;
    Catalog& catalog_;
    hv::Hypervisor& hv_;
    api::EventSink& sink_;
    ReconcilerHost& host_;

    std::mutex mu_;
    std::condition_variable cv_;
    std::set<Task> tasks_;
    bool stop_ = false;
    std::atomic<bool> recovered_{false};
    std::atomic<bool> reconciled_once_{false};
    std::atomic<bool> settle_requested_{false};  // libvirt just came back: reconcile again soon
    int settling_rounds_ = 0;  // quick reconciliations still to run (maintenance thread only)
    std::thread thread_;
};

}  // namespace snapvirt::daemon
