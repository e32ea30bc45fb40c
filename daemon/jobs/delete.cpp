// Job kind "delete": removes a snapshot from libvirt and the catalog; its children move up to
// its parent, or go with it when the request says children.

#include "daemon/jobs/job.hpp"

#include "config/text.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

namespace snapvirt::daemon {

namespace {

using json = nlohmann::json;

// The states the snapshots had before the delete marked them deleting, by id.
json previous_states(const json& params) {
    const json previous = params.is_object() ? params.value("previous_states", json::object()) : json::object();
    return previous.is_object() ? previous : json::object();
}

class DeleteRun final : public JobRun {
public:
    explicit DeleteRun(JobContext& ctx) : ctx_(ctx), s_(ctx.services()), uuid_(ctx.uuid()) {}

    void run() override {
        const Snapshot root = ctx_.snapshot();
        const bool children = ctx_.params().value("children", false);
        const json previous = previous_states(ctx_.params());
        const std::string ready = to_string(SnapshotState::ready);
        const std::string missing = to_string(SnapshotState::missing);
        auto was = [&](const std::string& id) { return previous.value(id, ready); };
        const std::vector<Snapshot> targets = children ? s_.catalog.subtree(root) : std::vector<Snapshot>{root};
        ctx_.intent({{"step", "delete"}, {"snapshot", root.name}, {"children", children}});
        ctx_.phase(JobPhase::deleting);
        std::set<std::string> missing_names;
        for (const auto& t : targets)
            if (was(t.id) == missing) missing_names.insert(t.name);
        if (was(root.id) != missing) {
            if (children)
                delete_subtree(root.name, missing_names);
            else if (root.method == SnapshotMethod::external)
                delete_following_merge(root.name);
            else
                delete_in_libvirt(root.name, false);
        } else {
            // The root is missing; its descendants may not be. Leaves first.
            for (auto it = targets.rbegin(); it != targets.rend(); ++it)
                if (missing_names.count(it->name))
                    forget_in_libvirt(it->name);
                else
                    delete_in_libvirt(it->name, false);
        }
        s_.test_delay(std::string(to_string(JobPhase::deleting)) + ".after");
        std::vector<std::string> files;
        for (const auto& t : targets) files.insert(files.end(), t.files.begin(), t.files.end());
        for (const auto& f : remove_unused_files(s_, uuid_, files))
            spdlog::info("job={} keeps {}: a disk chain or another snapshot still uses it.", ctx_.job().id, in_quotes(f));
        ctx_.intent({{"step", "release"}, {"snapshot", root.name}, {"children", children}});
        release_anchors(s_, ctx_.lane(), uuid_, [this](int percent) { raise_percent(percent); });
        s_.catalog.write_transaction([&] {
            if (!children) {
                for (auto s : s_.catalog.instance_snapshots(uuid_)) {
                    if (!s.parent_id || *s.parent_id != root.id) continue;
                    s.parent_id = root.parent_id;
                    s_.catalog.update_snapshot(s);
                }
            }
            for (const auto& t : targets) s_.catalog.delete_snapshot(t.id);
        });
        for (const auto& t : targets) s_.sink.snapshot_deleted(t);
        if (s_.hv.find_domain(uuid_)) s_.reconciler.sync_instance(uuid_);
    }

    // The snapshots it was deleting are left in error, with the job's error.
    void undo(const std::optional<ErrorInfo>& error) override {
        if (!error) return;
        const json previous = previous_states(ctx_.params());
        for (const auto& [id, state] : previous.items()) {
            auto s = s_.catalog.snapshot(id);
            if (!s) continue;
            s->state = SnapshotState::error;
            s->error = *error;
            ctx_.save_snapshot(*s);
        }
    }

private:
    // libvirtd 9.0 crashed inside its own subtree delete (VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN,
    // docs/libvirt-crash.md), so the subtree is deleted here, as libvirt has it now: one
    // snapshot at a time, every descendant before its ancestor, each a leaf when it goes.
    void delete_subtree(const std::string& root_name, const std::set<std::string>& missing_names) {
        const std::vector<hv::SnapshotInfo> live = s_.hv.list_snapshots(uuid_);
        std::vector<std::string> order{root_name};  // breadth first: descendants after ancestors
        for (std::size_t i = 0; i < order.size(); ++i)
            for (const auto& l : live)
                if (l.parent && *l.parent == order[i]) order.push_back(l.name);
        std::size_t done = 0;
        for (auto it = order.rbegin(); it != order.rend(); ++it) {
            if (missing_names.count(*it))
                forget_in_libvirt(*it);
            else
                delete_in_libvirt(*it, false);
            ctx_.job().progress.percent = static_cast<int>(100 * ++done / (order.size() + 1));
            ctx_.save_job();
        }
    }

    // libvirt merges an external snapshot's overlays with block commits inside its delete call;
    // a poller reads their progress on the main connection meanwhile and reports it. The job's
    // thread waits in libvirt all that time and touches the job only after the poller is joined.
    void delete_following_merge(const std::string& name) {
        std::jthread poller([this](std::stop_token stop) {
            std::mutex mu;
            std::condition_variable_any cv;  // wakes at once when the delete returns
            std::unique_lock lock(mu);
            while (!cv.wait_for(lock, stop, std::chrono::milliseconds(200), [] { return false; }) &&
                   !stop.stop_requested()) {
                try {
                    const auto percent = s_.hv.block_jobs_percent(uuid_);
                    if (percent && *percent < 100) raise_percent(*percent);  // 100: when the job ends
                } catch (const std::exception& e) {
                    spdlog::debug("job={} could not read the merge's progress: {}", ctx_.job().id, e.what());
                }
            }
        });
        delete_in_libvirt(name, false);
    }

    // Reports `percent` done, never going backwards.
    void raise_percent(int percent) {
        if (ctx_.job().progress.percent.value_or(-1) >= percent) return;
        ctx_.job().progress.percent = percent;
        ctx_.save_job();
    }

    void delete_in_libvirt(const std::string& name, bool subtree) {
        try {
            ctx_.lane().delete_snapshot(uuid_, name, subtree, false);
        } catch (const hv::Error& err) {
            if (err.kind() != hv::Error::Kind::snapshot_not_found && err.kind() != hv::Error::Kind::domain_not_found)
                throw;
        }
    }

    // A missing snapshot libvirt may still have, with files that vanished (docs/recovery.md):
    // only its metadata goes (nothing to merge), or the next reconciliation would import it
    // again. Gone already, or libvirt unreachable (then only the catalog forgets it): nothing.
    void forget_in_libvirt(const std::string& name) {
        if (!s_.hv.connected()) {
            spdlog::warn("job={} cannot reach libvirt: snapshot {} leaves the catalog only; if libvirt still has it, "
                         "the next reconciliation imports it again.",
                         ctx_.job().id, in_quotes(name));
            return;
        }
        try {
            ctx_.lane().delete_snapshot(uuid_, name, false, true);
            spdlog::info("job={} removed the metadata of missing snapshot {} from libvirt.", ctx_.job().id, in_quotes(name));
        } catch (const hv::Error& err) {
            if (err.kind() != hv::Error::Kind::snapshot_not_found && err.kind() != hv::Error::Kind::domain_not_found)
                throw;
        }
    }

    JobContext& ctx_;
    JobServices& s_;
    const std::string uuid_;
};

std::unique_ptr<JobRun> start(JobContext& ctx) { return std::make_unique<DeleteRun>(ctx); }

// Puts each snapshot back in the state it had before the delete marked it.
void restore_states(JobServices& s, const json& previous) {
    for (const auto& [id, state] : previous.items()) {
        auto snap = s.catalog.snapshot(id);
        if (!snap) continue;
        snap->state = parse<SnapshotState>(state.get<std::string>()).value_or(SnapshotState::error);
        s.catalog.update_snapshot(*snap);
        s.sink.snapshot_updated(*snap);
    }
}

// Cancelled while queued: every snapshot it marked is as it was.
void withdraw(JobServices& s, const JobRecord& rec) {
    const json previous = previous_states(json::parse(rec.params, nullptr, false));
    restore_states(s, previous);
}

// Whatever libvirt deleted goes from the catalog; the rest is as it was.
Recovery recover(RecoveryContext& r) {
    JobServices& s = r.services;
    Recovery out;
    bool root_gone = false;
    const json previous = previous_states(r.params);
    for (const auto& [id, state] : previous.items()) {
        auto snap = s.catalog.snapshot(id);
        if (!snap) continue;
        if (r.started && (!r.domain || !r.in_libvirt(snap->name))) {
            remove_unused_files(s, r.job.instance.uuid, snap->files);
            s.catalog.delete_snapshot(snap->id);
            s.sink.snapshot_deleted(*snap);
            if (snap->id == r.job.snapshot_id) root_gone = true;
        } else {
            snap->state = parse<SnapshotState>(state.get<std::string>()).value_or(SnapshotState::error);
            s.catalog.update_snapshot(*snap);
            s.sink.snapshot_updated(*snap);
        }
    }
    if (root_gone && r.domain) {
        // The commit of an anchor may have been under way: QEMU goes on with it; it ends here.
        auto lane = s.hv.open_lane();
        release_anchors(s, *lane, r.job.instance.uuid, [](int) {});
    }
    if (root_gone)
        out.note = "libvirt had completed the delete";
    else
        out.error = interrupted(r.started, "snapvirtd stopped before libvirt deleted the snapshot; it is still there.");
    return out;
}

constexpr std::array phases{JobPhase::queued, JobPhase::starting, JobPhase::deleting};

}  // namespace

const JobKindEntry delete_job{JobKind::delete_, phases, start, withdraw, recover};

}  // namespace snapvirt::daemon
