// The engine's side of the scheduler (daemon/schedule/scheduler.*): its options, and the
// SchedulerHost it implements — a run is an ordinary create through submit_create, a retention
// delete an ordinary delete job.

#include "daemon/engine.hpp"

namespace snapvirt::daemon {

schedule::SchedulerOptions Engine::scheduler_options(const EngineOptions& options) {
    schedule::SchedulerOptions o;
    o.schedules = options.schedules;
    o.max_snapshots_per_instance = options.max_snapshots_per_instance;
    return o;
}

void Engine::schedules_changed() { scheduler_.schedules_changed(); }

std::optional<Job> Engine::submit_run(const Schedule& schedule, TimeMs slot, const std::string& display_name) {
    api::CreateSnapshotRequest request;
    request.mode = schedule.mode;
    request.display_name = display_name;
    if (schedule.mode == SnapshotMode::stopped) {
        request.shutdown_timeout_s = schedule.stopped.shutdown_timeout_s;
        request.force_stop = schedule.stopped.force_stop;
        request.keep_stopped = schedule.stopped.keep_stopped;
    }
    request.schedule_id = schedule.id;
    request.schedule_slot = slot;
    try {
        return translating_errors([&] { return submit_create(schedule.instance.uuid, request); }).job;
    } catch (...) {
        // The create's transaction refuses a slot that has its run already (a crash between a
        // run and next_run_at's update): that slot must not run again.
        if (catalog_.schedule_run(schedule.id, slot)) return std::nullopt;
        throw;
    }
}

Job Engine::submit_retention_delete(const std::string& snapshot_id) {
    return translating_errors([&] { return delete_snapshot(snapshot_id, false); });
}

std::optional<Job> Engine::find_job(const std::string& id) {
    if (auto rec = catalog_.job(id)) return rec->job;
    return std::nullopt;
}

void Engine::publish_schedule(const std::string& schedule_id) {
    if (auto s = catalog_.schedule(schedule_id)) sink_.schedule_updated(*s);
}

void Engine::publish_run(const Schedule& schedule, const ScheduleRun& run) { sink_.schedule_run(schedule, run); }

}  // namespace snapvirt::daemon
