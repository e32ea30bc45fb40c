// Job execution and crash recovery: the part of the engine that changes libvirt.
//
// Every step that changes libvirt is preceded by a write-ahead intent in the job's catalog
// row (what the guest was, what the job is about to do, whether it will start the guest
// again), so that recovery after a crash or a libvirtd outage can finish or undo it.

#include "daemon/engine.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <sys/statvfs.h>

#include <algorithm>
#include <filesystem>
#include <thread>

namespace snapvirt::daemon {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string in_quotes(const std::string& s) { return "'" + s + "'"; }

// A job ends with this error; `code` goes into job.error.code.
struct JobFailure : std::runtime_error {
    JobFailure(std::string c, const std::string& message) : std::runtime_error(message), code(std::move(c)) {}
    std::string code;
};

struct JobCancelled {};

// libvirt went away in the middle: the job is left to recovery once it is back.
struct JobOrphaned {};

bool no_space(const std::string& message) {
    return message.find("No space left") != std::string::npos || message.find("ENOSPC") != std::string::npos ||
           message.find("Disk quota exceeded") != std::string::npos;
}

// QEMU reports a full disk during savevm as a plain I/O error ("Error while writing VM state:
// Input/output error"), so a failed write is checked against the free space where it went.
bool write_error(const std::string& message) {
    return message.find("Error while writing VM state") != std::string::npos ||
           message.find("Input/output error") != std::string::npos;
}

double seconds_since(api::TimeMs start) { return static_cast<double>(now_ms() - start) / 1000.0; }

}  // namespace

// Runs one job on a worker thread. Never throws.
class Engine::JobRun {
public:
    JobRun(Engine& engine, std::shared_ptr<ActiveJob> active, JobRecord rec)
        : e_(engine),
          active_(std::move(active)),
          rec_(std::move(rec)),
          job_(rec_.job),
          params_(json::parse(rec_.params, nullptr, false)),
          uuid_(job_.instance.uuid) {
        if (!params_.is_object()) params_ = json::object();
    }

    void run() {
        job_.state = "running";
        job_.started_at = now_ms();
        job_.progress = {"starting", std::nullopt};
        save_job();
        spdlog::info("job={} {} on instance {} started.", job_.id, job_.kind, in_quotes(job_.instance.name));
        e_.report_status();
        try {
            if (job_.kind == "create")
                create();
            else if (job_.kind == "revert")
                revert();
            else
                remove();
            finish("succeeded", std::nullopt);
        } catch (const JobOrphaned&) {
            orphan();
        } catch (const JobCancelled&) {
            cancelled();
        } catch (const JobFailure& f) {
            failed(f.code, f.what());
        } catch (const hv::Error& err) {
            if (err.kind() == hv::Error::Kind::unavailable) {
                orphan();
            } else {
                const auto [code, message] = classify(err);
                failed(code, message);
            }
        } catch (const std::exception& err) {
            failed("internal", std::string("snapvirtd failed: ") + err.what());
        }
    }

private:
    // ---- bookkeeping -------------------------------------------------------------------------

    void save_job() {
        e_.catalog_.update_job(job_);
        e_.sink_.job_updated(job_);
    }

    void phase(const std::string& p) {
        job_.progress = {p, std::nullopt};
        spdlog::debug("job={} phase {}", job_.id, p);
        save_job();
        e_.test_delay(p);
    }

    void intent(json step) {
        intent_ = std::move(step);
        spdlog::debug("job={} intent {}", job_.id, intent_.dump());
        e_.catalog_.set_job_intent(job_.id, intent_.dump());
    }

    void save_snapshot(const api::Snapshot& s) {
        e_.catalog_.update_snapshot(s);
        e_.sink_.snapshot_updated(s);
    }

    api::Snapshot snapshot() {
        auto s = e_.catalog_.snapshot(job_.snapshot_id.value_or(""));
        if (!s) throw JobFailure("snapshot_not_found", "The job's snapshot is no longer in the catalog.");
        return *s;
    }

    hv::DomainInfo domain() {
        auto d = e_.hv_.find_domain(uuid_);
        if (!d)
            throw JobFailure("instance_not_found",
                             "Instance " + in_quotes(job_.instance.name) + " was undefined while the job waited.");
        return *d;
    }

    // Decides, just before the snapshot is made, whether its display name must be written into
    // libvirt afterwards: when it is not the default (the snapshot's name), or when the snapshot
    // will capture snapvirt metadata from the domain's definition (which a revert outside
    // snapvirt may have copied from an older snapshot) and so must never inherit it. When
    // unsure, write.
    void decide_metadata_write(const hv::SnapshotSpec& spec) {
        if (spec.display_name != spec.name) {
            write_metadata_ = true;
            return;
        }
        try {
            write_metadata_ = e_.hv_.has_domain_metadata(uuid_);
        } catch (const hv::Error& err) {
            if (err.kind() == hv::Error::Kind::unavailable) throw;
            write_metadata_ = true;
        }
    }

    hv::Lane& lane() {
        if (!lane_) lane_ = e_.hv_.open_lane();
        return *lane_;
    }

    // The storage of the instance's file-backed disks that has less free space than a memory
    // snapshot needs (its RAM), described for people; empty when all have room.
    std::string short_storage() {
        std::string out;
        try {
            const auto dom = e_.hv_.find_domain(uuid_);
            const std::uint64_t needed = dom ? dom->memory_mib * 1024 * 1024 : 0;
            for (const auto& d : e_.hv_.domain_config(uuid_).disks) {
                if (d.device != "disk" || d.type != "file" || d.source.empty()) continue;
                const std::string dir = std::filesystem::path(d.source).parent_path().string();
                struct statvfs fs {};
                if (::statvfs(dir.c_str(), &fs) != 0) continue;
                const std::uint64_t free_bytes = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
                if (free_bytes >= needed) continue;
                out += (out.empty() ? "" : ", ") + std::string("disk ") + in_quotes(d.target) + " on " + dir + " (" +
                       std::to_string(free_bytes / (1024 * 1024)) + " MiB free, " +
                       std::to_string(needed / (1024 * 1024)) + " MiB of RAM to save)";
            }
        } catch (const hv::Error&) {
        }
        return out;
    }

    // Classifies a libvirt failure: code and a message that says what to do about it.
    std::pair<std::string, std::string> classify(const hv::Error& err) {
        const std::string what = err.what();
        if (no_space(what) || (job_.kind == "create" && write_error(what))) {
            const std::string storage = short_storage();
            if (no_space(what) || !storage.empty())
                return {"no_space", "There is not enough free space for the snapshot of instance " +
                                        in_quotes(job_.instance.name) + (storage.empty() ? "" : ": " + storage) +
                                        ". The guest keeps running and nothing was kept. libvirt said: " + what};
        }
        if (err.kind() == hv::Error::Kind::timeout) return {"hypervisor_timeout", what};
        return {job_.kind + "_failed", what};
    }

    void finish(const std::string& state, std::optional<api::ErrorInfo> error) {
        job_.state = state;
        job_.error = std::move(error);
        job_.finished_at = now_ms();
        job_.progress.phase = state;
        job_.progress.percent = state == "succeeded" ? std::optional<int>(100) : std::nullopt;
        {
            std::lock_guard lock(e_.metrics_mu_);
            ++e_.outcomes_[job_.kind + "/" + state];
            if (state == "succeeded") {
                const double secs = seconds_since(job_.started_at.value_or(job_.created_at));
                if (job_.kind == "create")
                    (params_.value("mode", "") == "memory" ? e_.create_memory_seconds_ : e_.create_stopped_seconds_)
                        .observe(secs);
                if (job_.kind == "revert") e_.revert_seconds_.observe(secs);
            }
        }
        if (job_.error)
            spdlog::warn("job={} {} on instance {} {}: {}", job_.id, job_.kind, in_quotes(job_.instance.name), state,
                         job_.error->message);
        else
            spdlog::info("job={} {} on instance {} {}.", job_.id, job_.kind, in_quotes(job_.instance.name), state);
        // The instance is free before anyone can see the job ended: a client that reacts to
        // the end at once must not be refused as busy with this very job.
        e_.release(active_, [this] { save_job(); });
        e_.report_status();
    }

    // ---- create ------------------------------------------------------------------------------

    void create() {
        api::Snapshot snap = snapshot();
        const hv::DomainInfo before = domain();
        hv::SnapshotSpec spec;
        spec.name = snap.name;
        spec.description = snap.description;
        spec.display_name = snap.display_name;
        created_name_ = snap.name;
        guest_was_ = hv::to_string(before.state);

        if (snap.mode == "memory") {
            if (before.state != hv::DomainState::running && before.state != hv::DomainState::paused)
                throw JobFailure("instance_not_running", "Instance " + in_quotes(job_.instance.name) + " is " +
                                                             guest_was_ + "; a snapshot with RAM needs it running.");
            spec.with_memory = true;
            intent({{"step", "save"}, {"snapshot", snap.name}, {"guest_was", guest_was_}});
            phase("saving");
            const bool was_paused = before.state == hv::DomainState::paused;
            decide_metadata_write(spec);
            e_.watch_pauses(uuid_);
            const auto t0 = Clock::now();
            try {
                lane().create_snapshot(uuid_, spec);
            } catch (...) {
                e_.paused_ms(uuid_, std::chrono::milliseconds(0));
                throw;
            }
            const auto call_ms = static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
            auto paused = e_.paused_ms(uuid_, was_paused ? std::chrono::milliseconds(0) : std::chrono::seconds(3));
            // Events lost (or a guest paused already): the whole save is the honest upper bound.
            snap.guest_paused_ms = paused.value_or(call_ms);
            {
                std::lock_guard lock(e_.metrics_mu_);
                e_.guest_paused_seconds_.observe(static_cast<double>(*snap.guest_paused_ms) / 1000.0);
            }
            snapshot_taken_ = true;
            e_.test_delay("saving.after");
        } else {
            create_stopped(snap, spec, before);
        }

        phase("finishing");
        if (write_metadata_) {
            try {
                e_.hv_.set_snapshot_metadata(uuid_, spec.name, spec.description, spec.display_name);
            } catch (const hv::Error& err) {
                if (err.kind() == hv::Error::Kind::unavailable) throw;
                spdlog::warn("job={} could not store the display name in libvirt: {}", job_.id, err.what());
            }
        }
        snap.state = "ready";
        snap.is_current = true;
        save_snapshot(snap);
        e_.sync_instance(uuid_);
    }

    void create_stopped(api::Snapshot& snap, const hv::SnapshotSpec& spec, const hv::DomainInfo& before) {
        const bool was_running = before.state == hv::DomainState::running || before.state == hv::DomainState::paused;
        const bool was_paused = before.state == hv::DomainState::paused;
        const bool restart = was_running && !params_.value("keep_stopped", false);
        const bool force_stop = params_.value("force_stop", false);
        const unsigned timeout_s = params_.value("shutdown_timeout_s", e_.opts_.shutdown_timeout_s);
        restart_ = restart;
        restart_paused_ = was_paused;

        if (was_running) {
            intent({{"step", "shutdown"}, {"snapshot", snap.name}, {"guest_was", guest_was_}, {"restart", restart}});
            {
                std::lock_guard lock(e_.mu_);
                active_->waiting_for_shutdown = true;
            }
            phase("shutting_down");
            e_.hv_.shutdown(uuid_);
            const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
            bool off = false;
            while (!active_->cancel_requested) {
                if (domain().state == hv::DomainState::shutoff) {
                    off = true;
                    break;
                }
                const auto now = Clock::now();
                if (now >= deadline) break;
                // Never past the deadline: a guest that ignores ACPI is forced off right on time.
                std::this_thread::sleep_for(std::min<Clock::duration>(e_.opts_.poll_interval, deadline - now));
            }
            bool cancel;
            {
                std::lock_guard lock(e_.mu_);
                active_->waiting_for_shutdown = false;
                cancel = active_->cancel_requested;
            }
            if (cancel) {
                // The guest may have gone down as the cancel came in; it was running, so it runs again.
                if (domain().state == hv::DomainState::shutoff) e_.hv_.start(uuid_, was_paused);
                throw JobCancelled{};
            }
            if (!off) {
                if (!force_stop)
                    throw JobFailure("shutdown_timeout",
                                     "Instance " + in_quotes(job_.instance.name) + " did not shut down within " +
                                         std::to_string(timeout_s) +
                                         " s and is still running; nothing was snapshotted. Set force_stop to power it "
                                         "off after the timeout.");
                intent({{"step", "destroy"}, {"snapshot", snap.name}, {"guest_was", guest_was_}, {"restart", restart}});
                phase("stopping");
                e_.hv_.destroy(uuid_);
            }
            stopped_by_job_ = true;
        }

        intent({{"step", "snapshot"},
                {"snapshot", snap.name},
                {"guest_was", guest_was_},
                {"restart", restart},
                {"stopped_by_job", stopped_by_job_}});
        phase("snapshotting");
        decide_metadata_write(spec);
        lane().create_snapshot(uuid_, spec);
        snapshot_taken_ = true;
        e_.test_delay("snapshotting.after");

        if (restart) {
            intent({{"step", "start"}, {"snapshot", snap.name}, {"guest_was", guest_was_}, {"restart", true},
                    {"stopped_by_job", true}});
            phase("starting");
            e_.hv_.start(uuid_, was_paused);
            restarted_ = true;
        }
        (void)snap;
    }

    // Undoes what a failed or cancelled create did: no snapshot half-made, the guest as it was.
    void undo_create() {
        try {
            if (created_name_.empty()) return;
            auto d = e_.hv_.find_domain(uuid_);
            if (d && d->state == hv::DomainState::paused && guest_was_ != "paused" &&
                (d->paused_for_save || intent_.value("step", "") == "save")) {
                spdlog::warn("job={} resumes instance {}, left paused by the failed save.", job_.id,
                             in_quotes(job_.instance.name));
                e_.hv_.resume(uuid_);
            }
            if (d) {
                for (const auto& s : e_.hv_.list_snapshots(uuid_)) {
                    if (s.name != created_name_) continue;
                    spdlog::warn("job={} removes the partial snapshot {} from libvirt.", job_.id, in_quotes(s.name));
                    lane().delete_snapshot(uuid_, s.name, false, false);
                }
            }
            if (d && stopped_by_job_ && restart_ && !restarted_ && d->state == hv::DomainState::shutoff)
                e_.hv_.start(uuid_, restart_paused_);
        } catch (const hv::Error& err) {
            spdlog::warn("job={} could not undo everything: {}", job_.id, err.what());
        }
        if (auto s = e_.catalog_.snapshot(job_.snapshot_id.value_or(""))) {
            e_.catalog_.delete_snapshot(s->id);
            e_.sink_.snapshot_deleted(*s);
        }
    }

    // ---- revert ------------------------------------------------------------------------------

    void revert() {
        api::Snapshot snap = snapshot();
        const hv::DomainInfo before = domain();
        const std::string start = params_.value("start", "auto");
        hv::RevertSpec spec;
        spec.force = params_.value("force", false);
        if (start == "running") spec.start = hv::RevertStart::running;
        if (start == "paused") spec.start = hv::RevertStart::paused;
        // "stopped": a memory snapshot comes back paused and is then powered off (its disks are
        // as they were at the snapshot); a stopped snapshot comes back off by itself.
        if (start == "stopped" && snap.mode != "stopped") spec.start = hv::RevertStart::paused;
        intent({{"step", "revert"},
                {"snapshot", snap.name},
                {"guest_was", hv::to_string(before.state)},
                {"current_before", before.current_snapshot.value_or("")}});
        phase("reverting");
        lane().revert_snapshot(uuid_, snap.name, spec);
        e_.test_delay("reverting.after");
        try {
            e_.hv_.clear_domain_metadata(uuid_);
        } catch (const hv::Error& err) {
            if (err.kind() == hv::Error::Kind::unavailable) throw;
            spdlog::debug("job={} kept the domain's snapvirt metadata: {}", job_.id, err.what());
        }
        if (start == "stopped" && domain().state != hv::DomainState::shutoff) {
            phase("stopping");
            e_.hv_.destroy(uuid_);
        }
        snap.state = "ready";
        save_snapshot(snap);
        e_.sync_instance(uuid_);
    }

    // ---- delete ------------------------------------------------------------------------------

    void remove() {
        api::Snapshot root = snapshot();
        const bool children = params_.value("children", false);
        const json previous = params_.value("previous_states", json::object());
        auto was = [&](const std::string& id) { return previous.value(id, std::string("ready")); };
        std::vector<api::Snapshot> targets{root};
        if (children) {
            const auto all = e_.catalog_.instance_snapshots(uuid_);
            for (std::size_t i = 0; i < targets.size(); ++i)
                for (const auto& s : all)
                    if (s.parent_id && *s.parent_id == targets[i].id) targets.push_back(s);
        }
        intent({{"step", "delete"}, {"snapshot", root.name}, {"children", children}});
        phase("deleting");
        auto delete_in_libvirt = [&](const std::string& name, bool subtree) {
            try {
                lane().delete_snapshot(uuid_, name, subtree, false);
            } catch (const hv::Error& err) {
                if (err.kind() != hv::Error::Kind::snapshot_not_found &&
                    err.kind() != hv::Error::Kind::domain_not_found)
                    throw;
            }
        };
        if (was(root.id) != "missing") {
            delete_in_libvirt(root.name, children);
        } else if (children) {
            // The root is gone from libvirt; its descendants may not be. Leaves first.
            for (auto it = targets.rbegin(); it != targets.rend(); ++it)
                if (it->id != root.id && was(it->id) != "missing") delete_in_libvirt(it->name, false);
        }
        e_.test_delay("deleting.after");
        e_.catalog_.write_transaction([&] {
            if (!children) {
                for (auto s : e_.catalog_.instance_snapshots(uuid_)) {
                    if (!s.parent_id || *s.parent_id != root.id) continue;
                    s.parent_id = root.parent_id;
                    e_.catalog_.update_snapshot(s);
                }
            }
            for (const auto& t : targets) e_.catalog_.delete_snapshot(t.id);
        });
        for (const auto& t : targets) e_.sink_.snapshot_deleted(t);
        if (e_.hv_.find_domain(uuid_)) e_.sync_instance(uuid_);
    }

    // ---- endings -----------------------------------------------------------------------------

    void failed(const std::string& code, const std::string& message) {
        if (job_.kind == "create") undo_create();
        if (job_.kind == "revert") {
            if (auto s = e_.catalog_.snapshot(job_.snapshot_id.value_or(""))) {
                s->state = "ready";
                save_snapshot(*s);
            }
        }
        if (job_.kind == "delete") {
            const json previous = params_.value("previous_states", json::object());
            for (const auto& [id, state] : previous.items()) {
                auto s = e_.catalog_.snapshot(id);
                if (!s) continue;
                s->state = "error";
                s->error = api::ErrorInfo{code, message};
                save_snapshot(*s);
            }
        }
        finish("failed", api::ErrorInfo{code, message});
    }

    void cancelled() {
        undo_create();
        finish("cancelled", std::nullopt);
    }

    // libvirt is gone: the outcome is unknown until it is back. The job stays running (and
    // the instance busy) and recovery decides once libvirt answers again.
    void orphan() {
        job_.progress = {"waiting_for_libvirt", std::nullopt};
        save_job();
        spdlog::warn("job={} lost libvirt in the middle; it is finished by recovery once libvirt is back.", job_.id);
        std::lock_guard lock(e_.mu_);
        active_->orphaned = true;
    }

    Engine& e_;
    std::shared_ptr<ActiveJob> active_;
    JobRecord rec_;
    api::Job& job_;
    json params_;
    json intent_;
    const std::string uuid_;
    std::unique_ptr<hv::Lane> lane_;
    std::string created_name_;
    std::string guest_was_;
    bool snapshot_taken_ = false;
    bool write_metadata_ = true;
    bool stopped_by_job_ = false;
    bool restart_ = false;
    bool restart_paused_ = false;
    bool restarted_ = false;
};

// ---- the worker pool ---------------------------------------------------------------------------

void Engine::worker_loop() {
    for (;;) {
        std::shared_ptr<ActiveJob> a;
        {
            std::unique_lock lock(mu_);
            queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (stopping_) return;
            a = queue_.front();
            queue_.pop_front();
            a->started = true;
        }
        run_job(a);
    }
}

void Engine::run_job(const std::shared_ptr<ActiveJob>& active) {
    auto rec = catalog_.job(active->id);
    if (!rec || rec->job.state != "queued") {
        release(active);
        return;
    }
    JobRun(*this, active, std::move(*rec)).run();
}

void Engine::release(const std::shared_ptr<ActiveJob>& active, const std::function<void()>& then) {
    {
        std::lock_guard lock(mu_);
        auto it = busy_.find(active->instance_uuid);
        if (it != busy_.end() && it->second == active) busy_.erase(it);
        active_.erase(active->id);
        view_changes_.fetch_add(1, std::memory_order_acq_rel);
    }
    idle_cv_.notify_all();
    if (then) then();
    publish_instance(active->instance_uuid);
}

void Engine::test_delay(const std::string& point) const {
    auto it = opts_.test_delays.find(point);
    if (it == opts_.test_delays.end() || it->second <= 0) return;
    spdlog::warn("test delay: {} ms at '{}'", it->second, point);
    std::this_thread::sleep_for(std::chrono::milliseconds(it->second));
}

// ---- crash recovery ----------------------------------------------------------------------------

void Engine::recover_jobs() {
    std::vector<std::shared_ptr<ActiveJob>> orphans;
    {
        std::lock_guard lock(mu_);
        for (const auto& [id, a] : active_)
            if (a->orphaned) orphans.push_back(a);
    }
    for (const auto& a : orphans) {
        auto rec = catalog_.job(a->id);
        if (!rec || rec->job.terminal()) {
            release(a);
            continue;
        }
        try {
            recover_job(*rec);
        } catch (const hv::Error& err) {
            if (err.kind() == hv::Error::Kind::unavailable) throw;  // again at the next connection
            spdlog::error("job={} recovery failed: {}", a->id, err.what());
            rec->job.state = "failed";
            rec->job.finished_at = now_ms();
            rec->job.recovered = true;
            rec->job.error = api::ErrorInfo{"interrupted", std::string("Recovery after a restart failed: ") + err.what()};
            catalog_.update_job(rec->job);
            sink_.job_updated(rec->job);
        }
        release(a);
    }
    if (!recovered_) spdlog::info("Recovery done: {} unfinished job(s) brought to an end.", orphans.size());
    recovered_ = true;
}

void Engine::recover_job(JobRecord rec) {
    api::Job& job = rec.job;
    const json params = json::parse(rec.params, nullptr, false);
    const json intent = json::parse(rec.intent, nullptr, false);
    auto p = [&](const char* key, auto fallback) { return params.is_object() ? params.value(key, fallback) : fallback; };
    auto step_of = [&](const char* key, auto fallback) {
        return intent.is_object() ? intent.value(key, fallback) : fallback;
    };
    const std::string uuid = job.instance.uuid;
    const bool started = job.state == "running";
    const std::string step = step_of("step", std::string());
    auto dom = hv_.find_domain(uuid);
    std::vector<hv::SnapshotInfo> live;
    if (dom) live = hv_.list_snapshots(uuid);
    auto in_libvirt = [&](const std::string& name) {
        return std::any_of(live.begin(), live.end(), [&](const auto& s) { return s.name == name; });
    };
    auto snap = catalog_.snapshot(job.snapshot_id.value_or(""));
    std::optional<api::ErrorInfo> error;
    std::string note;

    if (job.kind == "create") {
        const std::string name = p("name", std::string());
        if (started && dom && !name.empty() && in_libvirt(name)) {
            if (snap) {
                snap->state = "ready";
                {
                    const std::string display = p("display_name", name);
                    try {
                        hv_.set_snapshot_metadata(uuid, name, snap->description, display);
                    } catch (const hv::Error& err) {
                        if (err.kind() == hv::Error::Kind::unavailable) throw;
                    }
                }
                catalog_.update_snapshot(*snap);
                sink_.snapshot_updated(*snap);
            }
            note = "libvirt had completed the snapshot";
        } else {
            if (snap) {
                catalog_.delete_snapshot(snap->id);
                sink_.snapshot_deleted(*snap);
            }
            error = api::ErrorInfo{"interrupted", started ? "snapvirtd stopped before the snapshot was taken; nothing was kept."
                                                          : "snapvirtd stopped before the job started; nothing was done."};
        }
        if (dom) {
            const std::string guest_was = step_of("guest_was", std::string());
            // A save interrupted by a restart can leave the guest paused for any reason libvirt
            // recorded (save, snapshot, or unknown once libvirtd itself restarted).
            const bool paused_by_save = dom->state == hv::DomainState::paused &&
                                        (dom->paused_for_save || step == "save");
            if (paused_by_save && guest_was != "paused") {
                spdlog::warn("job={} recovery resumes instance '{}', left paused by an interrupted save.", job.id, dom->name);
                hv_.resume(uuid);
            }
            const bool job_stopped_it = step == "destroy" || step == "snapshot" || step == "start" ||
                                        (step == "shutdown" && guest_was != "shutoff");
            if (job_stopped_it && step_of("restart", false) && dom->state == hv::DomainState::shutoff) {
                spdlog::warn("job={} recovery starts instance '{}' again, as the job meant to.", job.id, dom->name);
                hv_.start(uuid, guest_was == "paused");
            }
        }
    } else if (job.kind == "revert") {
        const std::string current_before = step_of("current_before", std::string());
        if (snap) {
            snap->state = "ready";
            catalog_.update_snapshot(*snap);
            sink_.snapshot_updated(*snap);
        }
        if (started && dom && snap && dom->current_snapshot == snap->name && current_before != snap->name)
            note = "libvirt had completed the revert";
        else
            error = api::ErrorInfo{"interrupted", started ? "snapvirtd stopped during the revert; whether the instance "
                                                            "reverted is unknown — check it before relying on it."
                                                          : "snapvirtd stopped before the job started; nothing was done."};
    } else {
        const json previous = p("previous_states", json::object());
        bool root_gone = false;
        for (const auto& [id, state] : previous.items()) {
            auto s = catalog_.snapshot(id);
            if (!s) continue;
            if (started && (!dom || !in_libvirt(s->name))) {
                catalog_.delete_snapshot(s->id);
                sink_.snapshot_deleted(*s);
                if (s->id == job.snapshot_id) root_gone = true;
            } else {
                s->state = state.get<std::string>();
                catalog_.update_snapshot(*s);
                sink_.snapshot_updated(*s);
            }
        }
        if (root_gone)
            note = "libvirt had completed the delete";
        else
            error = api::ErrorInfo{"interrupted", started ? "snapvirtd stopped before libvirt deleted the snapshot; it "
                                                            "is still there."
                                                          : "snapvirtd stopped before the job started; nothing was done."};
    }

    job.recovered = true;
    job.finished_at = now_ms();
    job.state = error ? "failed" : "succeeded";
    job.error = error;
    job.progress = {job.state, error ? std::nullopt : std::optional<int>(100)};
    catalog_.update_job(job);
    sink_.job_updated(job);
    {
        std::lock_guard lock(metrics_mu_);
        ++outcomes_[job.kind + "/" + job.state];
    }
    spdlog::warn("job={} {} recovered as {}{}{}.", job.id, job.kind, job.state, note.empty() ? "" : ": ", note);
    if (dom) sync_instance(uuid);
}

}  // namespace snapvirt::daemon
