#pragma once
// The job queue: which instance is busy with which job, the bounded worker pool that runs
// queued jobs, edits in flight, and cancellation. One mutating job (or edit) per instance.
//
// Thread-safety: every method may be called from any thread; one mutex guards the maps and
// the queue. The runner given to start() runs on a worker thread, outside the lock.

#include "api/errors.hpp"
#include "config/model.hpp"
#include "daemon/catalog.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace snapvirt::daemon {

// A job that is queued or running: its instance's busy marker.
struct ActiveJob {
    std::string id;
    JobKind kind = JobKind::create;
    std::string instance_uuid;
    std::atomic<bool> started{false};
    std::atomic<bool> cancel_requested{false};
    std::atomic<bool> cancellable{false};  // in a step that may be abandoned (waiting for a shutdown)
    std::atomic<bool> orphaned{false};     // its outcome is for recovery to decide
};

class JobQueue {
public:
    using Runner = std::function<void(const std::shared_ptr<ActiveJob>&)>;

    JobQueue() = default;
    JobQueue(const JobQueue&) = delete;
    JobQueue& operator=(const JobQueue&) = delete;
    ~JobQueue();  // joins the workers


    // A job an earlier process left unfinished: its instance stays busy until recovery ends it.
    void adopt(const Job& job);
    void start(unsigned workers, Runner run);
    // Takes no new jobs, drops the queued ones (recovery ends them at the next start), waits up
    // to `grace` for running ones, then tells the workers to stop.
    void stop(std::chrono::seconds grace);
    // Waits for the workers to return (one inside a long libvirt call holds this up).
    void join();

    // ---- admission ---------------------------------------------------------------------------
    // Refuses at once when a job holds the instance (before anything waits on libvirt).
    void refuse_if_busy(const std::string& uuid, const std::string& instance_name);
    // Runs `prepare` while no other job or edit can start on the instance; `prepare` checks the
    // request and writes the job's rows (the job included) in one transaction. The job is then
    // queued, and `announce` runs before any worker can report it running.
    Job admit(const std::string& uuid, const std::string& instance_name, const std::function<JobRecord()>& prepare,
              const std::function<void(const Job&)>& announce);

    // An edit holds its instance like a job, for the few milliseconds it takes.
    class Edit {
    public:
        Edit(JobQueue& queue, std::string uuid) : queue_(queue), uuid_(std::move(uuid)) {}
        Edit(const Edit&) = delete;
        Edit& operator=(const Edit&) = delete;
        ~Edit();

    private:
        JobQueue& queue_;
        std::string uuid_;
    };
    // Waits briefly for another edit, refuses a busy instance, runs `check` under the lock.
    std::unique_ptr<Edit> begin_edit(const std::string& uuid, const std::string& instance_name,
                                     const std::function<void()>& check);
    // Holds a free instance like an edit while reconciliation reads its snapshots from libvirt:
    // no job or edit starts on it meanwhile (they wait the few milliseconds), so a snapshot a
    // job has just added to the catalog is never compared with a libvirt that does not have
    // it yet (it was marked missing). nullptr when a job or an edit holds the instance: that
    // one reconciles it when it ends.
    std::unique_ptr<Edit> hold_if_free(const std::string& uuid);

    // ---- cancellation ------------------------------------------------------------------------
    enum class Cancel { withdrawn, requested };
    // withdrawn: the job was still queued and is gone from the queue (the caller ends it);
    // requested: the running job stops at its next cancellable point. Throws
    // job_not_cancellable otherwise.
    Cancel cancel(const Job& job);
    // A running job enters or leaves a step that a cancel may end; leaving says whether one came.
    void enter_cancellable(ActiveJob& job);
    bool leave_cancellable(ActiveJob& job);

    // ---- the end of a job --------------------------------------------------------------------
    // Frees the job's instance, then runs `then` (e.g. publishing the job's end).
    void release(const std::shared_ptr<ActiveJob>& job, const std::function<void()>& then = {});
    void orphan(ActiveJob& job);
    std::vector<std::shared_ptr<ActiveJob>> orphans() const;

    // ---- views -------------------------------------------------------------------------------
    std::optional<std::string> busy_job(const std::string& uuid) const;
    bool busy(const std::string& uuid) const;  // a job or an edit
    struct Counts {
        std::size_t running = 0;
        std::size_t queued = 0;
    };
    Counts counts() const;
    // Grows whenever a busy marker changes.
    std::uint64_t changes() const { return changes_.load(std::memory_order_acquire); }

private:
    void worker_loop();
    void wait_for_edit(std::unique_lock<std::mutex>& lock, const std::string& uuid);
    [[noreturn]] void throw_busy(const std::string& uuid, const std::string& instance_name) const;
    void drop_locked(const std::shared_ptr<ActiveJob>& job);

    Runner run_;
    mutable std::mutex mu_;
    std::map<std::string, std::shared_ptr<ActiveJob>> busy_;    // instance uuid -> job
    std::map<std::string, std::shared_ptr<ActiveJob>> active_;  // job id -> job
    std::set<std::string> editing_;                             // instances with an edit in flight
    std::condition_variable edit_cv_;                           // an edit ended
    std::deque<std::shared_ptr<ActiveJob>> queue_;
    std::condition_variable queue_cv_;
    std::condition_variable idle_cv_;
    bool accepting_ = true;
    bool stopping_ = false;
    std::vector<std::thread> workers_;
    std::atomic<std::uint64_t> changes_{0};
};

}  // namespace snapvirt::daemon
