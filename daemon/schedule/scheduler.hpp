#pragma once
// The scheduler: what makes schedules run (docs/api.md, "Schedules"). One thread wakes at the
// earliest due time (a schedule's next slot plus its jitter, a retry, a job to look at) or when
// the schedules change, and in each round:
//   - gives runs whose job ended their outcome (succeeded or failed), then retention;
//   - submits the runs that are due, through the host's ordinary create path (the run's row is
//     written with its job, so a slot runs at most once); busy or libvirt unreachable → retry
//     every busy_retry_s until the window passes → missed; not in a state for the mode →
//     skipped; snapshot_limit_reached → the schedule's own oldest snapshots make room first;
//   - deletes expired snapshots of the schedules (and those DELETE ?snapshots=true left behind),
//     one delete job at a time, oldest first.
// At start-up it resolves runs a crash left running, runs each schedule once to catch up after
// downtime (or records one missed run), and applies retention to every schedule.
//
// Thread-safety: schedules_changed(), wake(), metrics reads and stop() may be called from any
// thread. tick() runs on the scheduler's thread (or, in unit tests, on the test's thread with
// the thread not started); its state is that thread's alone.

#include "api/errors.hpp"
#include "config/config.hpp"
#include "config/model.hpp"
#include "daemon/catalog.hpp"
#include "daemon/schedule/clock.hpp"

#include <array>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

namespace snapvirt::daemon::schedule {

// What the scheduler needs from the engine.
class SchedulerHost {
public:
    virtual ~SchedulerHost() = default;
    // Submits the run of `slot` as an ordinary create job (the request's schedule_id and
    // schedule_slot set, so its run row is written with its job). Returns the job; nullopt when
    // that slot was already recorded (it must not run again). Throws api::ApiError for a refusal
    // (instance_busy, instance_not_running, snapshot_limit_reached, hypervisor_unavailable, ...).
    virtual std::optional<Job> submit_run(const Schedule& schedule, TimeMs slot, const std::string& display_name) = 0;
    // Submits the delete job of one snapshot (its children are re-parented). Throws api::ApiError.
    virtual Job submit_retention_delete(const std::string& snapshot_id) = 0;
    virtual std::optional<Job> find_job(const std::string& id) = 0;
    // Publishes schedule.updated (the schedule as the catalog has it now).
    virtual void publish_schedule(const std::string& schedule_id) = 0;
    // Publishes schedule.run.
    virtual void publish_run(const Schedule& schedule, const ScheduleRun& run) = 0;
};

struct SchedulerOptions {
    config::ScheduleConfig schedules;
    unsigned max_snapshots_per_instance = 0;  // 0 = unlimited
    // How often jobs the scheduler waits for are looked at when no wake() came.
    std::chrono::milliseconds job_poll{1000};
};

// The fixed start offset of a schedule's run at one slot, in [0, jitter_s] seconds, and less
// than `period_ms` (so a run never starts after its next slot).
std::chrono::milliseconds jitter_offset(const std::string& schedule_id, TimeMs slot, unsigned jitter_s,
                                        TimeMs period_ms);
// The display name of a run before " #2"... is added: the template's fields in the schedule's zone.
std::string expand_display_name(const Schedule& schedule, TimeMs slot);

class Scheduler {
public:
    Scheduler(SchedulerOptions options, Catalog& catalog, SchedulerHost& host, Clock& clock);
    ~Scheduler();  // stops and joins

    void start();
    void stop();

    // A schedule was made, changed or deleted: look at them again now.
    void schedules_changed();
    // A job may have ended: look now rather than at the next poll.
    void wake();

    // One round: everything that is due now. Returns when the next round is due (for the thread;
    // tests call it directly with the thread not started).
    TimeMs tick();

    // Metrics.
    std::uint64_t runs(ScheduleOutcome outcome) const { return outcomes_[static_cast<std::size_t>(outcome)]; }
    // Seconds the oldest due run of an enabled schedule has waited to start; 0 if none.
    double overdue_seconds() const;

private:
    // A run that is due but has no job yet: waiting for its instance or for room.
    struct Pending {
        TimeMs slot = 0;
        TimeMs due = 0;       // when it first tried
        TimeMs deadline = 0;  // missed after this
        TimeMs next_try = 0;
        bool making_room = false;
    };
    struct Tracked {  // a run whose job is queued or running
        std::string schedule_id;
        TimeMs slot = 0;
    };

    void loop();
    void start_up(TimeMs now);
    void follow_runs(TimeMs now);
    void plan_due_runs(TimeMs now);
    void try_pending(TimeMs now);
    bool try_submit(const Schedule& s, Pending& p, TimeMs now);  // true: the pending run is done
    bool make_room(const Schedule& s, TimeMs now);                // true: a delete is on its way
    void follow_delete(TimeMs now);
    void retention(TimeMs now);
    bool submit_delete(const Snapshot& snap, TimeMs now);
    std::vector<Snapshot> expired(const Schedule& s, TimeMs now);

    void record(const Schedule& s, ScheduleRun run, bool insert);
    void set_next_run(const Schedule& basis, std::optional<TimeMs> next);
    std::string choose_display_name(const Schedule& s, TimeMs slot);
    TimeMs due_time(const Schedule& s) const;

    SchedulerOptions opts_;
    Catalog& catalog_;
    SchedulerHost& host_;
    Clock& clock_;

    // The scheduler thread's own state.
    bool started_up_ = false;
    std::map<std::string, Pending> pending_;           // by schedule id
    std::map<std::string, Tracked> running_;           // by job id
    std::set<std::string> retention_due_;              // schedule ids
    std::map<std::string, std::string> just_taken_;    // schedule id → the snapshot its last run took
    std::optional<std::string> delete_job_;            // the retention delete in flight
    TimeMs delete_retry_at_ = 0;                       // an instance was busy: not before this
    std::set<std::string> skip_snapshots_;             // could not be deleted this round

    std::array<std::atomic<std::uint64_t>, 5> outcomes_{};
    std::atomic<TimeMs> oldest_due_{0};  // 0: none

    std::mutex mu_;
    std::condition_variable cv_;
    bool changed_ = false;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace snapvirt::daemon::schedule
