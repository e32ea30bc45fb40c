// Job kind "create": takes a memory snapshot (a running guest saved with its RAM) or a stopped
// snapshot (the guest shut down, its disks snapshotted, and started again unless asked not to).

#include "daemon/jobs/job.hpp"

#include "config/text.hpp"
#include "daemon/external_files.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <thread>

namespace snapvirt::daemon {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

bool runs(hv::DomainState s) { return s == hv::DomainState::running || s == hv::DomainState::paused; }

class CreateRun final : public JobRun {
public:
    explicit CreateRun(JobContext& ctx) : ctx_(ctx), s_(ctx.services()), uuid_(ctx.uuid()) {}

    void run() override {
        Snapshot snap = ctx_.snapshot();
        const hv::DomainInfo before = ctx_.domain();
        hv::SnapshotSpec spec;
        spec.name = snap.name;
        spec.description = snap.description;
        spec.display_name = snap.display_name;
        spec.mode = snap.mode;
        spec.method = snap.method;
        if (snap.method == SnapshotMethod::external) prepare_external(spec);
        mode_ = snap.mode;
        method_ = snap.method;
        created_name_ = snap.name;
        guest_was_ = before.state;
        if (snap.mode == SnapshotMode::memory)
            save(snap, spec, before);
        else
            create_stopped(snap, spec, before);

        ctx_.phase(JobPhase::finishing);
        if (snap.method == SnapshotMethod::external) snap.size_bytes = allocated_bytes(snap.files);
        if (write_metadata_) {
            try {
                s_.hv.set_snapshot_metadata(uuid_, spec.name, spec.description, spec.display_name);
            } catch (const hv::Error& err) {
                if (err.kind() == hv::Error::Kind::unavailable) throw;
                spdlog::warn("job={} could not store the display name in libvirt: {}", ctx_.job().id, err.what());
            }
        }
        snap.state = SnapshotState::ready;
        snap.is_current = true;
        ctx_.save_snapshot(snap);
        s_.reconciler.sync_instance(uuid_);
    }

    // Undoes what a failed or cancelled create did: no snapshot half-made, the guest as it was.
    void undo(const std::optional<ErrorInfo>&) override {
        try {
            if (created_name_.empty()) return;
            auto d = s_.hv.find_domain(uuid_);
            if (d && d->state == hv::DomainState::paused && guest_was_ != hv::DomainState::paused &&
                (d->paused_for_save || ctx_.last_intent().value("step", "") == "save")) {
                spdlog::warn("job={} resumes instance {}, left paused by the failed save.", ctx_.job().id,
                             in_quotes(ctx_.job().instance.name));
                s_.hv.resume(uuid_);
            }
            if (d) {
                for (const auto& s : s_.hv.list_snapshots(uuid_)) {
                    if (s.name != created_name_) continue;
                    spdlog::warn("job={} removes the partial snapshot {} from libvirt.", ctx_.job().id, in_quotes(s.name));
                    ctx_.lane().delete_snapshot(uuid_, s.name, false, false);
                }
            }
            if (d && stopped_by_job_ && restart_ && !restarted_ && d->state == hv::DomainState::shutoff)
                s_.hv.start(uuid_, restart_paused_);
        } catch (const hv::Error& err) {
            spdlog::warn("job={} could not undo everything: {}", ctx_.job().id, err.what());
        }
        if (auto s = s_.catalog.snapshot(ctx_.job().snapshot_id.value_or(""))) {
            try {
                remove_unused_files(s_, uuid_, s->files);
            } catch (const hv::Error& err) {
                spdlog::warn("job={} could not check which of the snapshot's files are unused: {}", ctx_.job().id,
                             err.what());
            }
            s_.catalog.delete_snapshot(s->id);
            s_.sink.snapshot_deleted(*s);
        }
    }

    bool writes_guest_state() const override { return true; }

    void succeeded(double seconds) override { s_.metrics.create_took(mode_, method_, seconds); }

private:
    // The external snapshot's files as the request planned them; their directories made.
    void prepare_external(hv::SnapshotSpec& spec) {
        const json& p = ctx_.params();
        spec.memory_file = p.value("memory_file", "");
        for (const auto& o : p.value("overlays", json::array()))
            spec.overlays.emplace_back(o.at(0).get<std::string>(), o.at(1).get<std::string>());
        nvram_ = p.value("nvram", "");
        nvram_copy_ = p.value("nvram_copy", "");
        for (const auto& a : p.value("anchors", json::array()))
            anchors_.emplace_back(a.at(0).get<std::string>(), a.at(1).get<std::string>());
        ExternalPlan plan;
        plan.memory_file = spec.memory_file;
        plan.overlays = spec.overlays;
        plan.nvram_copy = nvram_copy_;
        plan.anchors = anchors_;
        make_directories(plan);
    }

    // Block devices get their anchor (external_files.hpp) right before the snapshot: a disk-only
    // external snapshot of just those disks that libvirt keeps no record of. A disk anchored
    // already (by an earlier snapshot) is an image file now and was planned none.
    void anchor(const Snapshot& snap) {
        if (anchors_.empty()) return;
        hv::SnapshotSpec spec;
        spec.name = "snapvirt-anchor-" + snap.id;
        spec.mode = SnapshotMode::stopped;  // disk-only, whether the guest runs or not
        spec.method = SnapshotMethod::external;
        spec.keep_metadata = false;
        spec.overlays = anchors_;
        for (const auto& d : s_.hv.domain_config(uuid_).disks) {
            const bool anchored = std::any_of(anchors_.begin(), anchors_.end(),
                                              [&](const auto& a) { return a.first == d.target; });
            if (d.snapshotted() && !anchored) spec.left_out.push_back(d.target);
        }
        // The step's intent covers it: recovery keeps an anchor a disk chain uses, removes one none does.
        ctx_.lane().create_snapshot(uuid_, spec);
        s_.test_delay("anchor.after");
    }

    // A UEFI guest's NVRAM at the snapshot's moment, kept beside the snapshot (libvirt does
    // not put it back on every revert; docs/api.md, "Snapshot methods").
    void copy_nvram() {
        if (nvram_.empty() || nvram_copy_.empty()) return;
        std::filesystem::copy_file(nvram_, nvram_copy_, std::filesystem::copy_options::overwrite_existing);
    }

    json intent_of(const char* step, const Snapshot& snap) const {
        return {{"step", step}, {"snapshot", snap.name}, {"guest_was", hv::to_string(guest_was_)}};
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
            write_metadata_ = s_.hv.has_domain_metadata(uuid_);
        } catch (const hv::Error& err) {
            if (err.kind() == hv::Error::Kind::unavailable) throw;
            write_metadata_ = true;
        }
    }

    // A memory snapshot: libvirt pauses the guest, saves its RAM and disks, and resumes it.
    void save(Snapshot& snap, const hv::SnapshotSpec& spec, const hv::DomainInfo& before) {
        if (!runs(before.state))
            throw JobFailure("instance_not_running", "Instance " + in_quotes(ctx_.job().instance.name) + " is " +
                                                         hv::to_string(before.state) +
                                                         "; a snapshot with RAM needs it running.");
        ctx_.intent(intent_of("save", snap));
        ctx_.phase(JobPhase::saving);
        anchor(snap);
        const bool was_paused = before.state == hv::DomainState::paused;
        decide_metadata_write(spec);
        s_.pauses.watch(uuid_);
        const auto t0 = Clock::now();
        try {
            // External: the memory file is written back while the guest still runs.
            std::optional<Writeback> writeback;
            if (spec.method == SnapshotMethod::external && !spec.memory_file.empty() && s_.options.external_writeback_ms > 0)
                writeback.emplace(spec.memory_file, std::chrono::milliseconds(s_.options.external_writeback_ms));
            ctx_.lane().create_snapshot(uuid_, spec);
        } catch (...) {
            s_.pauses.paused_ms(uuid_, std::chrono::milliseconds(0));
            throw;
        }
        copy_nvram();
        const auto call_ms = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
        auto paused = s_.pauses.paused_ms(uuid_, was_paused ? std::chrono::milliseconds(0) : std::chrono::seconds(3));
        // Events lost (or a guest paused already): the whole save is the honest upper bound.
        snap.guest_paused_ms = paused.value_or(call_ms);
        s_.metrics.guest_paused(snap.method, static_cast<double>(*snap.guest_paused_ms) / 1000.0);
        s_.test_delay(std::string(to_string(JobPhase::saving)) + ".after");
    }

    // Asks the guest to shut down and waits for it; forces it off after the timeout when asked
    // to. A cancel may end the wait.
    void shut_down(const Snapshot& snap, bool restart) {
        const bool force_stop = ctx_.params().value("force_stop", false);
        const unsigned timeout_s = ctx_.params().value("shutdown_timeout_s", s_.options.shutdown_timeout_s);
        json step = intent_of("shutdown", snap);
        step["restart"] = restart;
        ctx_.intent(step);
        s_.queue.enter_cancellable(ctx_.active());
        ctx_.phase(JobPhase::shutting_down);
        s_.hv.shutdown(uuid_);
        const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
        bool off = false;
        while (!ctx_.active().cancel_requested) {
            if (ctx_.domain().state == hv::DomainState::shutoff) {
                off = true;
                break;
            }
            const auto now = Clock::now();
            if (now >= deadline) break;
            // Never past the deadline: a guest that ignores ACPI is forced off right on time.
            std::this_thread::sleep_for(std::min<Clock::duration>(s_.options.poll_interval, deadline - now));
        }
        if (s_.queue.leave_cancellable(ctx_.active())) {
            // The guest may have gone down as the cancel came in; it was running, so it runs again.
            if (ctx_.domain().state == hv::DomainState::shutoff) s_.hv.start(uuid_, restart_paused_);
            throw JobCancelled{};
        }
        if (!off) {
            if (!force_stop)
                throw JobFailure("shutdown_timeout",
                                 "Instance " + in_quotes(ctx_.job().instance.name) + " did not shut down within " +
                                     std::to_string(timeout_s) +
                                     " s and is still running; nothing was snapshotted. Set force_stop to power it "
                                     "off after the timeout.");
            step = intent_of("destroy", snap);
            step["restart"] = restart;
            ctx_.intent(step);
            ctx_.phase(JobPhase::stopping);
            s_.hv.destroy(uuid_);
        }
        stopped_by_job_ = true;
    }

    // A stopped snapshot: the guest off, its disks snapshotted, then started again.
    void create_stopped(const Snapshot& snap, const hv::SnapshotSpec& spec, const hv::DomainInfo& before) {
        const bool was_running = runs(before.state);
        const bool restart = was_running && !ctx_.params().value("keep_stopped", false);
        restart_ = restart;
        restart_paused_ = before.state == hv::DomainState::paused;
        if (was_running) shut_down(snap, restart);

        ctx_.phase(JobPhase::snapshotting);
        json step = intent_of("snapshot", snap);
        step["restart"] = restart;
        step["stopped_by_job"] = stopped_by_job_;
        ctx_.intent(step);
        anchor(snap);
        decide_metadata_write(spec);
        ctx_.lane().create_snapshot(uuid_, spec);
        copy_nvram();
        s_.test_delay(std::string(to_string(JobPhase::snapshotting)) + ".after");

        if (restart) {
            step = intent_of("start", snap);
            step["restart"] = true;
            step["stopped_by_job"] = true;
            ctx_.intent(step);
            ctx_.phase(JobPhase::starting);
            s_.hv.start(uuid_, restart_paused_);
            restarted_ = true;
        }
    }

    JobContext& ctx_;
    JobServices& s_;
    const std::string uuid_;
    SnapshotMode mode_ = SnapshotMode::stopped;
    SnapshotMethod method_ = SnapshotMethod::internal;
    std::string created_name_;
    hv::DomainState guest_was_ = hv::DomainState::other;
    bool write_metadata_ = true;
    bool stopped_by_job_ = false;
    bool restart_ = false;
    bool restart_paused_ = false;
    bool restarted_ = false;
    std::string nvram_;
    std::string nvram_copy_;
    std::vector<std::pair<std::string, std::string>> anchors_;
};

std::unique_ptr<JobRun> start(JobContext& ctx) { return std::make_unique<CreateRun>(ctx); }

// Cancelled while queued: the snapshot row made for it goes.
void withdraw(JobServices& s, const JobRecord& rec) {
    if (!rec.job.snapshot_id) return;
    if (auto snap = s.catalog.snapshot(*rec.job.snapshot_id)) {
        s.catalog.delete_snapshot(snap->id);
        s.sink.snapshot_deleted(*snap);
    }
}

// The guest as the job meant to leave it: resumed after an interrupted save, started again
// when the job had stopped it and meant to restart it.
void restore_guest(RecoveryContext& r) {
    const hv::DomainInfo& dom = *r.domain;
    JobServices& s = r.services;
    const std::string guest_was = r.intent_text("guest_was");
    const std::string paused = hv::to_string(hv::DomainState::paused);
    // A save interrupted by a restart can leave the guest paused for any reason libvirt
    // recorded (save, snapshot, or unknown once libvirtd itself restarted).
    const bool paused_by_save = dom.state == hv::DomainState::paused && (dom.paused_for_save || r.step == "save");
    if (paused_by_save && guest_was != paused) {
        spdlog::warn("job={} recovery resumes instance '{}', left paused by an interrupted save.", r.job.id, dom.name);
        s.hv.resume(dom.uuid);
    }
    const bool job_stopped_it = r.step == "destroy" || r.step == "snapshot" || r.step == "start" ||
                                (r.step == "shutdown" && guest_was != hv::to_string(hv::DomainState::shutoff));
    const bool restart = r.intent.is_object() && r.intent.value("restart", false);
    if (job_stopped_it && restart && dom.state == hv::DomainState::shutoff) {
        spdlog::warn("job={} recovery starts instance '{}' again, as the job meant to.", r.job.id, dom.name);
        s.hv.start(dom.uuid, guest_was == paused);
    }
}

// The snapshot counts if libvirt has it; otherwise nothing was kept.
Recovery recover(RecoveryContext& r) {
    JobServices& s = r.services;
    Recovery out;
    const std::string name = r.param("name", "");
    if (r.started && r.domain && !name.empty() && r.in_libvirt(name)) {
        if (r.snapshot) {
            r.snapshot->state = SnapshotState::ready;
            if (r.snapshot->method == SnapshotMethod::external) {
                // The NVRAM copy is made right after libvirt's create; a guest still off since
                // then has the NVRAM of the snapshot's moment.
                const std::string nvram = r.param("nvram", ""), copy = r.param("nvram_copy", "");
                std::error_code ec;
                if (!nvram.empty() && !copy.empty() && !std::filesystem::exists(copy, ec) &&
                    r.domain->state == hv::DomainState::shutoff)
                    std::filesystem::copy_file(nvram, copy, ec);
                r.snapshot->size_bytes = allocated_bytes(r.snapshot->files);
            }
            try {
                s.hv.set_snapshot_metadata(r.job.instance.uuid, name, r.snapshot->description,
                                           r.param("display_name", name));
            } catch (const hv::Error& err) {
                if (err.kind() == hv::Error::Kind::unavailable) throw;
            }
            s.catalog.update_snapshot(*r.snapshot);
            s.sink.snapshot_updated(*r.snapshot);
        }
        out.note = "libvirt had completed the snapshot";
    } else {
        if (r.snapshot) {
            remove_unused_files(s, r.job.instance.uuid, r.snapshot->files);
            s.catalog.delete_snapshot(r.snapshot->id);
            s.sink.snapshot_deleted(*r.snapshot);
        }
        out.error = interrupted(r.started, "snapvirtd stopped before the snapshot was taken; nothing was kept.");
    }
    if (r.domain) restore_guest(r);
    return out;
}

constexpr std::array phases{JobPhase::queued,   JobPhase::starting,     JobPhase::saving,
                            JobPhase::shutting_down, JobPhase::stopping, JobPhase::snapshotting,
                            JobPhase::finishing};

}  // namespace

const JobKindEntry create_job{JobKind::create, phases, start, withdraw, recover};

}  // namespace snapvirt::daemon
