// Job kind "revert": brings the instance back to a snapshot, started as the request asks.

#include "daemon/jobs/job.hpp"

#include <spdlog/spdlog.h>

#include "config/text.hpp"

#include <array>
#include <chrono>
#include <filesystem>
#include <thread>

namespace snapvirt::daemon {

namespace {

class RevertRun final : public JobRun {
public:
    explicit RevertRun(JobContext& ctx) : ctx_(ctx), s_(ctx.services()), uuid_(ctx.uuid()) {}

    void run() override {
        Snapshot snap = ctx_.snapshot();
        const hv::DomainInfo before = ctx_.domain();
        const auto target = parse<RevertTarget>(ctx_.params().value("start", "")).value_or(RevertTarget::automatic);
        hv::RevertSpec spec;
        spec.force = ctx_.params().value("force", false);
        if (target == RevertTarget::running) spec.start = hv::RevertStart::running;
        if (target == RevertTarget::paused) spec.start = hv::RevertStart::paused;
        // Stopped: a memory snapshot comes back paused and is then powered off (its disks are
        // as they were at the snapshot); a stopped snapshot comes back off by itself.
        if (target == RevertTarget::stopped && snap.mode != SnapshotMode::stopped) spec.start = hv::RevertStart::paused;
        // A stopped external snapshot of a UEFI guest: libvirt leaves the NVRAM as it is now, so
        // the guest comes back off, gets the NVRAM copy of the snapshot's moment, then starts.
        const std::string nvram_copy = nvram_copy_of(snap);
        const hv::RevertStart start_after = spec.start;
        if (!nvram_copy.empty()) spec.start = hv::RevertStart::automatic;
        ctx_.intent({{"step", "revert"},
                     {"snapshot", snap.name},
                     {"guest_was", hv::to_string(before.state)},
                     {"current_before", before.current_snapshot.value_or("")}});
        ctx_.phase(JobPhase::reverting);
        revert_in_libvirt(snap, spec);
        if (!nvram_copy.empty()) restore_nvram(nvram_copy, start_after);
        s_.test_delay(std::string(to_string(JobPhase::reverting)) + ".after");
        try {
            s_.hv.clear_domain_metadata(uuid_);
        } catch (const hv::Error& err) {
            if (err.kind() == hv::Error::Kind::unavailable) throw;
            spdlog::debug("job={} kept the domain's snapvirt metadata: {}", ctx_.job().id, err.what());
        }
        if (target == RevertTarget::stopped && ctx_.domain().state != hv::DomainState::shutoff) {
            ctx_.phase(JobPhase::stopping);
            s_.hv.destroy(uuid_);
        }
        snap.state = SnapshotState::ready;
        ctx_.save_snapshot(snap);
        s_.reconciler.sync_instance(uuid_);
    }

    void undo(const std::optional<ErrorInfo>& error) override {
        if (!error) return;
        if (auto s = s_.catalog.snapshot(ctx_.job().snapshot_id.value_or(""))) {
            s->state = SnapshotState::ready;
            ctx_.save_snapshot(*s);
        }
    }

    void succeeded(double seconds) override { s_.metrics.revert_took(seconds); }

private:
    // libvirt (11.3) names the overlay an external revert starts as "<image>.<Unix seconds>" and
    // refuses, before changing anything, when that file exists: a second revert within the
    // same second. Then it is tried once more in the next second.
    void revert_in_libvirt(const Snapshot& snap, const hv::RevertSpec& spec) {
        try {
            ctx_.lane().revert_snapshot(uuid_, snap.name, spec);
        } catch (const hv::Error& err) {
            const std::string what = err.what();
            if (snap.method != SnapshotMethod::external || what.find("already exists") == std::string::npos) throw;
            const auto now = std::chrono::system_clock::now().time_since_epoch();
            std::this_thread::sleep_for(std::chrono::seconds(1) - (now % std::chrono::seconds(1)) +
                                        std::chrono::milliseconds(20));
            spdlog::info("job={} reverts again in the next second: {}", ctx_.job().id, what);
            ctx_.lane().revert_snapshot(uuid_, snap.name, spec);
        }
    }

    // The NVRAM copy to put back on revert: a stopped external snapshot's, if it has one.
    static std::string nvram_copy_of(const Snapshot& snap) {
        if (snap.method != SnapshotMethod::external || snap.mode != SnapshotMode::stopped) return "";
        for (const auto& f : snap.files)
            if (std::filesystem::path(f).extension() == ".nvram") return f;
        return "";
    }

    void restore_nvram(const std::string& copy, hv::RevertStart start_after) {
        const hv::DomainConfig cfg = s_.hv.domain_config(uuid_);
        std::error_code ec;
        if (cfg.nvram.empty() || !std::filesystem::exists(copy, ec))
            throw JobFailure("revert_failed", "The snapshot's NVRAM copy " + in_quotes(copy) +
                                                  " is gone; the disks were reverted, the NVRAM was not.");
        if (ctx_.domain().state == hv::DomainState::shutoff) {
            std::filesystem::copy_file(copy, cfg.nvram, std::filesystem::copy_options::overwrite_existing);
            spdlog::info("job={} put the NVRAM of the snapshot's moment back into {}.", ctx_.job().id,
                         in_quotes(cfg.nvram));
        }
        if (start_after != hv::RevertStart::automatic) s_.hv.start(uuid_, start_after == hv::RevertStart::paused);
    }

    JobContext& ctx_;
    JobServices& s_;
    const std::string uuid_;
};

std::unique_ptr<JobRun> start(JobContext& ctx) { return std::make_unique<RevertRun>(ctx); }

// Cancelled while queued: the snapshot is ready again.
void withdraw(JobServices& s, const JobRecord& rec) {
    if (!rec.job.snapshot_id) return;
    if (auto snap = s.catalog.snapshot(*rec.job.snapshot_id)) {
        snap->state = SnapshotState::ready;
        s.catalog.update_snapshot(*snap);
        s.sink.snapshot_updated(*snap);
    }
}

// The revert counts if libvirt made the snapshot current; the snapshot is ready either way.
Recovery recover(RecoveryContext& r) {
    JobServices& s = r.services;
    Recovery out;
    const std::string current_before = r.intent_text("current_before");
    if (r.snapshot) {
        r.snapshot->state = SnapshotState::ready;
        s.catalog.update_snapshot(*r.snapshot);
        s.sink.snapshot_updated(*r.snapshot);
    }
    if (r.started && r.domain && r.snapshot && r.domain->current_snapshot == r.snapshot->name &&
        current_before != r.snapshot->name)
        out.note = "libvirt had completed the revert";
    else
        out.error = interrupted(r.started, "snapvirtd stopped during the revert; whether the instance reverted is "
                                           "unknown — check it before relying on it.");
    return out;
}

constexpr std::array phases{JobPhase::queued, JobPhase::starting, JobPhase::reverting, JobPhase::stopping};

}  // namespace

const JobKindEntry revert_job{JobKind::revert, phases, start, withdraw, recover};

}  // namespace snapvirt::daemon
