#include "daemon/schedule/scheduler.hpp"

#include "config/text.hpp"
#include "daemon/schedule/cron.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace snapvirt::daemon::schedule {

using api::ApiError;
using api::ErrorCode;

namespace {

constexpr TimeMs second_ms = 1000;
// The longest the thread sleeps without a reason: a wall-clock step is noticed within this.
constexpr TimeMs max_sleep_ms = 60 * second_ms;

ErrorInfo info_of(const ApiError& e) { return {api::code_name(e.code()), e.what()}; }

// Refusals that pass: another job holds the instance, or libvirt is away for a moment.
bool retryable(ErrorCode c) { return c == ErrorCode::instance_busy || c == ErrorCode::hypervisor_unavailable; }

std::uint64_t fnv1a(const std::string& text) {
    std::uint64_t h = 1469598103934665603ULL;
    for (unsigned char c : text) {
        h ^= c;
        h *= 1099511628211ULL;
    }
    return h;
}

// A schedule's cron expression and zone, or nullopt (logged) for a row that no longer parses.
struct Timing {
    Cron cron;
    TimeZone zone;
};
std::optional<Timing> timing_of(const Schedule& s) {
    try {
        return Timing{Cron::parse(s.cron), TimeZone::locate(s.timezone)};
    } catch (const std::exception& e) {
        spdlog::error("Schedule {} ({}) cannot run: {}", in_quotes(s.name), s.id, e.what());
        return std::nullopt;
    }
}

TimeMs period_after(const Timing& t, TimeMs slot) {
    const auto next = t.cron.next_after(slot, t.zone);
    return next ? *next - slot : 0;
}

}  // namespace

std::chrono::milliseconds jitter_offset(const std::string& schedule_id, TimeMs slot, unsigned jitter_s,
                                        TimeMs period_ms) {
    if (jitter_s == 0) return std::chrono::milliseconds(0);
    TimeMs ms = static_cast<TimeMs>(fnv1a(schedule_id + "@" + std::to_string(slot)) %
                                    (static_cast<std::uint64_t>(jitter_s) * second_ms + 1));
    // Never as late as the next slot: each slot's run starts before the next one is due.
    if (period_ms > 0 && ms >= period_ms) ms %= period_ms;
    return std::chrono::milliseconds(ms);
}

std::string expand_display_name(const Schedule& s, TimeMs slot) {
    const std::string tmpl = s.display_name_template.value_or("{schedule} {datetime}");
    const TimeZone zone = TimeZone::locate(s.timezone);
    std::string out;
    for (std::size_t i = 0; i < tmpl.size();) {
        const std::size_t close = tmpl[i] == '{' ? tmpl.find('}', i) : std::string::npos;
        if (close == std::string::npos) {
            out += tmpl[i++];
            continue;
        }
        const std::string field = tmpl.substr(i + 1, close - i - 1);
        if (field == "schedule") out += s.name;
        else if (field == "instance") out += s.instance.name;
        else if (field == "date") out += zone.date(slot);
        else if (field == "time") out += zone.time(slot);
        else if (field == "datetime") out += zone.date(slot) + " " + zone.time(slot);
        else out += tmpl.substr(i, close - i + 1);  // the API refuses others; kept as written
        i = close + 1;
    }
    return out;
}

Scheduler::Scheduler(SchedulerOptions options, Catalog& catalog, SchedulerHost& host, Clock& clock)
    : opts_(std::move(options)), catalog_(catalog), host_(host), clock_(clock) {}

Scheduler::~Scheduler() { stop(); }

void Scheduler::start() {
    if (thread_.joinable()) return;
    thread_ = std::thread([this] { loop(); });
}

void Scheduler::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void Scheduler::schedules_changed() { wake(); }

void Scheduler::wake() {
    {
        std::lock_guard lock(mu_);
        changed_ = true;
    }
    cv_.notify_all();
}

double Scheduler::overdue_seconds() const {
    const TimeMs oldest = oldest_due_.load();
    if (oldest == 0) return 0;
    return std::max<TimeMs>(0, clock_.now() - oldest) / 1000.0;
}

void Scheduler::loop() {
    for (;;) {
        TimeMs next;
        try {
            next = tick();
        } catch (const std::exception& e) {
            // The catalog failed (disk full?): try again in a while rather than spin.
            spdlog::error("The scheduler's round failed: {}", e.what());
            next = clock_.now() + 5 * second_ms;
        }
        std::unique_lock lock(mu_);
        if (stopping_) return;
        if (!changed_) clock_.wait_until(lock, cv_, next);
        changed_ = false;
        if (stopping_) return;
    }
}

TimeMs Scheduler::tick() {
    const TimeMs now = clock_.now();
    const bool first = !started_up_;
    if (first) start_up(now);
    started_up_ = true;

    follow_runs(now);
    follow_delete(now);

    // Due runs: start each, or apply the catch-up rule where slots passed unseen.
    TimeMs next = now + max_sleep_ms;
    TimeMs oldest_due = 0;
    for (const Schedule& s : catalog_.all_schedules()) {
        if (!s.enabled) {
            pending_.erase(s.id);
            continue;
        }
        if (pending_.count(s.id)) continue;  // one run of a schedule at a time
        const auto t = timing_of(s);
        if (!t) continue;
        if (!s.next_run_at) {
            set_next_run(s, t->cron.next_after(now, t->zone));
            continue;
        }
        const TimeMs slot = *s.next_run_at;
        const TimeMs period = period_after(*t, slot);
        const TimeMs due = slot + jitter_offset(s.id, slot, s.jitter_s, period).count();
        if (slot > now) {
            next = std::min(next, due);
            continue;
        }
        const TimeMs newest = t->cron.last_at_or_before(now, slot - 1, t->zone).value_or(slot);
        const TimeMs next_slot = t->cron.next_after(std::max(now, newest), t->zone).value_or(now + period);
        if (!first && newest == slot) {
            // The ordinary case: this slot, at its time plus its jitter.
            if (now < due) {
                next = std::min(next, due);
                continue;
            }
            const TimeMs window_end = now + static_cast<TimeMs>(opts_.schedules.busy_window_s) * second_ms;
            pending_[s.id] = Pending{slot, due, std::min(window_end, slot + period), now, false};
            set_next_run(s, t->cron.next_after(slot, t->zone));
            continue;
        }
        // snapvirtd was down (or the host asleep) across one or more slots: the newest runs once,
        // now, if it is young enough; otherwise one missed run is recorded. Never a burst.
        const TimeMs newest_period = period_after(*t, newest);
        const TimeMs window = opts_.schedules.catch_up_window_s
                                  ? static_cast<TimeMs>(opts_.schedules.catch_up_window_s) * second_ms
                                  : newest_period;
        if (now - newest <= window) {
            spdlog::info("Schedule {} of instance {} missed its run at {} while snapvirtd was away; running it now.",
                         in_quotes(s.name), in_quotes(s.instance.name), newest);
            const TimeMs window_end = now + static_cast<TimeMs>(opts_.schedules.busy_window_s) * second_ms;
            pending_[s.id] = Pending{newest, newest, std::min(window_end, newest + newest_period), now, false};
        } else {
            spdlog::info("Schedule {} of instance {} missed its run at {}, too long ago to catch up.",
                         in_quotes(s.name), in_quotes(s.instance.name), newest);
            record(s, ScheduleRun{newest, now, std::nullopt, ScheduleOutcome::missed, std::nullopt}, true);
        }
        set_next_run(s, next_slot);
    }

    try_pending(now);
    retention(now);

    for (const auto& [id, p] : pending_) {
        next = std::min(next, p.next_try);
        oldest_due = oldest_due == 0 ? p.due : std::min(oldest_due, p.due);
    }
    oldest_due_ = oldest_due;
    if (!running_.empty() || delete_job_) next = std::min(next, now + opts_.job_poll.count());
    if (delete_retry_at_ > now) next = std::min(next, delete_retry_at_);
    return std::max(next, now + 1);
}

// ---- start-up ----------------------------------------------------------------------------------

void Scheduler::start_up(TimeMs now) {
    // Runs a crash left `running`: recovery ends every job, so each gets its job's outcome
    // (follow_runs looks at them from now on).
    for (const auto& [schedule_id, run] : catalog_.running_schedule_runs()) {
        if (run.job_id) {
            running_[*run.job_id] = Tracked{schedule_id, run.slot};
            continue;
        }
        if (auto s = catalog_.schedule(schedule_id)) {
            ScheduleRun ended = run;
            ended.at = now;
            ended.outcome = ScheduleOutcome::failed;
            ended.error = ErrorInfo{"interrupted", "snapvirtd stopped before the run's job was made."};
            record(*s, ended, false);
        }
    }
    // A disabled schedule keeps its snapshots: only enabled ones are looked at here (retention a
    // run owes still follows that run, also if the schedule was disabled meanwhile).
    for (const Schedule& s : catalog_.all_schedules())
        if (s.enabled && (s.keep_last || s.max_age)) retention_due_.insert(s.id);
}

// ---- runs --------------------------------------------------------------------------------------

void Scheduler::follow_runs(TimeMs now) {
    for (auto it = running_.begin(); it != running_.end();) {
        const auto job = host_.find_job(it->first);
        if (job && !terminal(job->state)) {
            ++it;
            continue;
        }
        const Tracked tracked = it->second;
        const std::string job_id = it->first;
        it = running_.erase(it);
        const auto s = catalog_.schedule(tracked.schedule_id);
        if (!s) continue;  // deleted meanwhile, and its runs with it
        ScheduleRun run{tracked.slot, now, job_id, ScheduleOutcome::failed, std::nullopt};
        if (!job) {
            run.error = ErrorInfo{api::code_name(ErrorCode::internal), "The run's job " + in_quotes(job_id) + " is gone from the catalog."};
        } else if (job->state == JobState::succeeded) {
            run.outcome = ScheduleOutcome::succeeded;
            if (job->snapshot_id) just_taken_[s->id] = *job->snapshot_id;
            retention_due_.insert(s->id);
        } else if (job->error) {
            run.error = job->error;
        } else {
            run.error = ErrorInfo{to_string(job->state), "The run's job was " + std::string(to_string(job->state)) + "."};
        }
        record(*s, run, false);
    }
}

void Scheduler::try_pending(TimeMs now) {
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (now < it->second.next_try) {
            ++it;
            continue;
        }
        const auto s = catalog_.schedule(it->first);
        if (!s || !s->enabled || try_submit(*s, it->second, now)) {
            it = pending_.erase(it);
        } else {
            ++it;
        }
    }
}

bool Scheduler::try_submit(const Schedule& s, Pending& p, TimeMs now) {
    if (catalog_.schedule_run(s.id, p.slot)) return true;  // recorded already: never twice
    try {
        const auto job = host_.submit_run(s, p.slot, choose_display_name(s, p.slot));
        if (!job) return true;
        running_[job->id] = Tracked{s.id, p.slot};
        spdlog::info("job={} schedule {} of instance {}: run for {} submitted.", job->id, in_quotes(s.name),
                     in_quotes(s.instance.name), p.slot);
        if (auto run = catalog_.schedule_run(s.id, p.slot)) host_.publish_run(s, *run);
        host_.publish_schedule(s.id);
        return true;
    } catch (const ApiError& e) {
        const ErrorCode code = e.code();
        if (code == ErrorCode::schedule_not_found) return true;  // deleted meanwhile: nothing to record
        if (retryable(code)) {
            if (now >= p.deadline) {
                const ErrorInfo why = info_of(e);
                record(s, ScheduleRun{p.slot, now, std::nullopt, ScheduleOutcome::missed, why}, true);
                return true;
            }
            // While room is being made, the delete holds the instance: look again as soon as it ends.
            p.next_try = p.making_room && delete_job_
                             ? now
                             : std::min(now + static_cast<TimeMs>(opts_.schedules.busy_retry_s) * second_ms,
                                        p.deadline);
            return false;
        }
        if (code == ErrorCode::instance_not_running || code == ErrorCode::instance_not_found) {
            record(s, ScheduleRun{p.slot, now, std::nullopt, ScheduleOutcome::skipped, info_of(e)}, true);
            return true;
        }
        if (code == ErrorCode::snapshot_limit_reached && now < p.deadline && make_room(s, now)) {
            p.making_room = true;
            p.next_try = now;  // again when the delete ended (the job poll wakes the thread)
            return false;
        }
        record(s, ScheduleRun{p.slot, now, std::nullopt, ScheduleOutcome::failed, info_of(e)}, true);
        return true;
    } catch (const std::exception& e) {
        spdlog::error("Schedule {} could not submit its run: {}", in_quotes(s.name), e.what());
        record(s, ScheduleRun{p.slot, now, std::nullopt, ScheduleOutcome::failed, ErrorInfo{api::code_name(ErrorCode::internal), e.what()}},
               true);
        return true;
    }
}

// The instance has max_snapshots_per_instance snapshots: deletes the schedule's own oldest, but
// leaves it at least keep_last - 1 (the run makes keep_last). False if that cannot make room.
bool Scheduler::make_room(const Schedule& s, TimeMs now) {
    if (delete_job_) return true;  // one delete at a time; look again when it ended
    const unsigned limit = opts_.max_snapshots_per_instance;
    if (limit == 0) return false;
    const auto count = static_cast<std::int64_t>(catalog_.count_snapshots(s.instance.uuid));
    const std::int64_t need = count + 1 - static_cast<std::int64_t>(limit);
    if (need <= 0) return true;  // room appeared meanwhile
    const auto own = catalog_.schedule_snapshots(s.id);
    const std::int64_t floor = s.keep_last ? static_cast<std::int64_t>(*s.keep_last) - 1 : 0;
    std::vector<Snapshot> deletable;
    for (const auto& snap : own)
        if (!in_flight(snap.state)) deletable.push_back(snap);
    const std::int64_t may_delete =
        std::min<std::int64_t>(static_cast<std::int64_t>(deletable.size()),
                               std::max<std::int64_t>(0, static_cast<std::int64_t>(own.size()) - floor));
    if (may_delete < need) return false;
    spdlog::info("Schedule {}: instance {} is at its snapshot limit; deleting the schedule's oldest snapshot {}.",
                 in_quotes(s.name), in_quotes(s.instance.name), in_quotes(deletable.front().name));
    submit_delete(deletable.front(), now);
    return true;
}

// ---- retention ---------------------------------------------------------------------------------

void Scheduler::follow_delete(TimeMs) {
    if (!delete_job_) return;
    const auto job = host_.find_job(*delete_job_);
    if (!job || terminal(job->state)) delete_job_.reset();
}

std::vector<Snapshot> Scheduler::expired(const Schedule& s, TimeMs now) {
    const auto all = catalog_.schedule_snapshots(s.id);
    std::optional<std::chrono::milliseconds> max_age;
    if (s.max_age) max_age = parse_max_age(*s.max_age);
    const auto just = just_taken_.find(s.id);
    std::vector<Snapshot> out;
    for (std::size_t i = 0; i < all.size(); ++i) {
        const Snapshot& snap = all[i];
        const bool beyond = s.keep_last && i + *s.keep_last < all.size();
        const bool old = max_age && snap.created_at < now - max_age->count();
        if (!beyond && !old) continue;
        if (in_flight(snap.state)) continue;
        if (just != just_taken_.end() && just->second == snap.id) continue;
        out.push_back(snap);
    }
    return out;
}

void Scheduler::retention(TimeMs now) {
    if (delete_job_ || now < delete_retry_at_) return;
    std::vector<Snapshot> candidates;
    for (const auto& snap : catalog_.orphaned_schedule_snapshots())
        if (!in_flight(snap.state)) candidates.push_back(snap);
    for (auto it = retention_due_.begin(); it != retention_due_.end();) {
        const auto s = catalog_.schedule(*it);
        auto more = s ? expired(*s, now) : std::vector<Snapshot>{};
        if (more.empty()) {
            it = retention_due_.erase(it);
            continue;
        }
        candidates.insert(candidates.end(), more.begin(), more.end());
        ++it;
    }
    bool waiting = false;
    for (const auto& snap : candidates) {
        if (skip_snapshots_.count(snap.id)) continue;
        waiting = true;
        if (submit_delete(snap, now)) return;
    }
    if (waiting) delete_retry_at_ = now + static_cast<TimeMs>(opts_.schedules.busy_retry_s) * second_ms;
}

bool Scheduler::submit_delete(const Snapshot& snap, TimeMs) {
    try {
        const Job job = host_.submit_retention_delete(snap.id);
        delete_job_ = job.id;
        spdlog::info("job={} retention: deleting snapshot {} of instance {}.", job.id, in_quotes(snap.name),
                     in_quotes(snap.instance.name));
        return true;
    } catch (const ApiError& e) {
        if (retryable(e.code()) || e.code() == ErrorCode::snapshot_not_ready || e.code() == ErrorCode::snapshot_not_found)
            return false;  // later (or it is gone already)
        spdlog::warn("Retention could not delete snapshot {} of instance {}: {}", in_quotes(snap.name),
                     in_quotes(snap.instance.name), e.what());
        skip_snapshots_.insert(snap.id);
        return false;
    }
}

// ---- bookkeeping -------------------------------------------------------------------------------

void Scheduler::record(const Schedule& s, ScheduleRun run, bool insert) {
    try {
        if (insert) catalog_.insert_schedule_run(s.id, run);
        else catalog_.update_schedule_run(s.id, run);
    } catch (const CatalogError& e) {
        if (insert && e.kind() == CatalogError::Kind::conflict) return;  // that slot has its run already
        throw;
    }
    ++outcomes_[static_cast<std::size_t>(run.outcome)];
    spdlog::log(run.outcome == ScheduleOutcome::succeeded ? spdlog::level::info : spdlog::level::warn,
                "Schedule {} of instance {}: the run for {} {}{}", in_quotes(s.name), in_quotes(s.instance.name),
                run.slot, to_string(run.outcome), run.error ? " (" + run.error->code + ": " + run.error->message + ")" : "");
    host_.publish_run(s, run);
    host_.publish_schedule(s.id);
}

void Scheduler::set_next_run(const Schedule& basis, std::optional<TimeMs> next) {
    const std::string& schedule_id = basis.id;
    // Read and written under the catalog's write lock: an edit through the API is never undone,
    // only next_run_at changes. A schedule disabled meanwhile keeps next_run_at null.
    bool changed = false;
    catalog_.write_transaction([&] {
        auto s = catalog_.schedule(schedule_id);
        // An edit of the timing meanwhile computed its own next_run_at: keep that one.
        if (!s || !s->enabled || s->next_run_at == next || s->cron != basis.cron || s->timezone != basis.timezone)
            return;
        s->next_run_at = next;
        catalog_.update_schedule(*s);
        changed = true;
    });
    if (changed) host_.publish_schedule(schedule_id);
}

std::string Scheduler::choose_display_name(const Schedule& s, TimeMs slot) {
    const std::string base = expand_display_name(s, slot);
    std::string name = base;
    for (int n = 2; catalog_.display_name_taken(s.instance.uuid, name); ++n) name = base + " #" + std::to_string(n);
    return name;
}

}  // namespace snapvirt::daemon::schedule
