#include "daemon/reconciler.hpp"

#include "config/text.hpp"

#include <spdlog/spdlog.h>

#include <malloc.h>

#include <algorithm>
#include <filesystem>
#include <map>

namespace snapvirt::daemon {

namespace {

constexpr std::chrono::seconds trim_interval{10};
// After libvirt comes back, libvirtd is still reattaching to running QEMUs for a while, and
// events about those domains can be lost then (seen on the test host: a guest destroyed right
// after a libvirtd restart sent no event). The catalog is compared with libvirt again every
// settle_interval, settle_rounds times, so nothing that happened then stays unseen.
constexpr std::chrono::seconds settle_interval{2};
constexpr int settle_rounds = 5;

// One instance's snapshots as the catalog and libvirt see them, matched by name.
struct Comparison {
    std::map<std::string, const hv::SnapshotInfo*> live_by_name;
    std::map<std::string, std::string> id_by_name;
    std::set<std::string> displays;
};

// Snapshots made behind snapvirt's back (e.g. with virsh), as new catalog rows.
std::vector<Snapshot> import_unknown(const hv::DomainInfo& dom, const std::vector<hv::SnapshotInfo>& live,
                                     Comparison& c) {
    std::vector<Snapshot> created;
    for (const auto& l : live) {
        if (c.id_by_name.count(l.name)) continue;
        Snapshot s;
        s.id = new_uuid();
        s.instance = {dom.uuid, dom.name};
        s.name = l.name;
        const std::string base = l.display_name.value_or(l.name);
        std::string display = base;
        for (int n = 2; c.displays.count(display); ++n) display = base + " (" + std::to_string(n) + ")";
        c.displays.insert(display);
        s.display_name = display;
        s.description = l.description;
        s.mode = l.mode;
        s.method = l.method;
        s.state = SnapshotState::ready;
        s.created_at = l.creation_time * 1000;
        s.origin = "discovered";
        // Its own files, as snapvirt lists those it names: removed when it leaves and nothing uses them.
        s.files = l.overlays;
        if (!l.memory_file.empty()) s.files.push_back(l.memory_file);
        c.id_by_name[s.name] = s.id;
        created.push_back(std::move(s));
    }
    return created;
}

// libvirt's truth for one row: parent, current flag, description, presence, and whether the
// files it needs are there. Returns the file whose absence made it missing, if one did.
std::optional<std::string> apply_live(Snapshot& u, const hv::DomainInfo& dom, Comparison& c) {
    u.instance.name = dom.name;
    auto l = c.live_by_name.find(u.name);
    if (l == c.live_by_name.end()) {
        u.state = SnapshotState::missing;
        u.is_current = false;
        return std::nullopt;
    }
    const hv::SnapshotInfo& info = *l->second;
    auto vanished = vanished_file(u, info);
    if (vanished)
        u.state = SnapshotState::missing;  // libvirt still has it, but it cannot be reverted to
    else if (u.state == SnapshotState::missing || in_flight(u.state))
        u.state = SnapshotState::ready;
    u.parent_id = info.parent && c.id_by_name.count(*info.parent) ? std::optional(c.id_by_name[*info.parent])
                                                                   : std::nullopt;
    u.is_current = info.is_current;
    u.description = info.description;
    if (info.display_name && *info.display_name != u.display_name && !c.displays.count(*info.display_name)) {
        c.displays.erase(u.display_name);
        u.display_name = *info.display_name;
        c.displays.insert(u.display_name);
    }
    return vanished;
}

bool differs(const Snapshot& a, const Snapshot& b) {
    return a.state != b.state || a.parent_id != b.parent_id || a.is_current != b.is_current ||
           a.description != b.description || a.display_name != b.display_name;
}

}  // namespace

std::vector<std::string> files_to_revert(const Snapshot& row, const hv::SnapshotInfo& live) {
    if (live.method != SnapshotMethod::external) return {};
    std::vector<std::string> out = live.state_files;
    if (row.mode == SnapshotMode::stopped)  // jobs/revert.cpp puts this copy back
        for (const auto& f : row.files)
            if (std::filesystem::path(f).extension() == ".nvram") out.push_back(f);
    return out;
}

std::optional<std::string> vanished_file(const Snapshot& row, const hv::SnapshotInfo& live) {
    for (const auto& f : files_to_revert(row, live)) {
        std::error_code ec;
        if (!std::filesystem::exists(f, ec) && !ec) return f;
    }
    return std::nullopt;
}

Reconciler::Reconciler(const EngineOptions& options, Catalog& catalog, hv::Hypervisor& hypervisor,
                       api::EventSink& sink, ReconcilerHost& host)
    : opts_(options), catalog_(catalog), hv_(hypervisor), sink_(sink), host_(host) {}

Reconciler::~Reconciler() {
    stop();
    join();
}

void Reconciler::start() { thread_ = std::thread([this] { loop(); }); }

void Reconciler::stop() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
}

void Reconciler::join() {
    if (thread_.joinable()) thread_.join();
}

void Reconciler::on_connected() {
    settle_requested_ = true;
    enqueue({Task::Kind::read_host, ""});
    enqueue({Task::Kind::recover, ""});
    enqueue({Task::Kind::reconcile_all, ""});
}

void Reconciler::reconcile_all_soon() {
    enqueue({Task::Kind::read_host, ""});
    enqueue({Task::Kind::reconcile_all, ""});
}

void Reconciler::on_lifecycle(const hv::LifecycleEvent& ev) {
    enqueue({ev.defined_or_undefined() ? Task::Kind::reconcile_instance : Task::Kind::refresh_instance, ev.uuid});
}

void Reconciler::enqueue(Task task) {
    {
        std::lock_guard lock(mu_);
        if (stop_) return;
        tasks_.insert(std::move(task));
    }
    cv_.notify_one();
}

void Reconciler::loop() {
    auto next_periodic = std::chrono::steady_clock::now() + opts_.reconcile_interval;
    std::unique_lock lock(mu_);
    while (!stop_) {
        if (settle_requested_.exchange(false)) {
            settling_rounds_ = settle_rounds;
            next_periodic = std::min(next_periodic, std::chrono::steady_clock::now() + settle_interval);
        }
        // Wakes at least every trim_interval when idle: memory freed after a burst of requests
        // (answers, page buffers) goes back to the system instead of staying in malloc's arenas.
        const auto wake = std::min(next_periodic, std::chrono::steady_clock::now() + trim_interval);
        cv_.wait_until(lock, wake, [&] { return stop_ || !tasks_.empty(); });
        if (stop_) break;
        if (tasks_.empty() && std::chrono::steady_clock::now() < next_periodic) {
            lock.unlock();
            catalog_.release_memory();
            ::malloc_trim(0);
            lock.lock();
            continue;
        }
        if (tasks_.empty()) {
            const bool settling = settling_rounds_ > 0;
            if (settling) --settling_rounds_;
            next_periodic = std::chrono::steady_clock::now() + (settling ? settle_interval : opts_.reconcile_interval);
            tasks_.insert({Task::Kind::read_host, ""});
            tasks_.insert({Task::Kind::reconcile_all, ""});
        }
        const Task task = *tasks_.begin();
        tasks_.erase(tasks_.begin());
        lock.unlock();
        run(task);
        lock.lock();
    }
}

void Reconciler::run(const Task& task) {
    try {
        if (!hv_.connected()) return;
        switch (task.kind) {
            case Task::Kind::read_host: host_.refresh_host(); break;
            case Task::Kind::recover:
                host_.recover_jobs();
                recovered_ = true;
                break;
            case Task::Kind::reconcile_all:
                reconcile_all();
                forget_old();
                break;
            case Task::Kind::reconcile_instance: reconcile_instance(task.uuid); break;
            case Task::Kind::refresh_instance: refresh_instance(task.uuid); break;
        }
    } catch (const hv::Error& e) {
        spdlog::warn("Reconciliation stopped: {}", e.what());
    } catch (const std::exception& e) {
        spdlog::error("Reconciliation failed: {}", e.what());
    }
}

void Reconciler::reconcile_all() {
    if (!recovered_) return;  // recovery first: it owns the instances of unfinished jobs
    const auto started = std::chrono::steady_clock::now();
    const auto domains = hv_.list_domains();
    std::vector<std::string> uuids;
    for (const auto& d : domains) {
        uuids.push_back(d.uuid);
        upsert_domain(d);
    }
    for (const auto& gone : catalog_.mark_absent_except(uuids)) mark_instance_gone(gone);
    for (const auto& d : domains) {
        try {
            const auto hold = host_.hold_if_free(d.uuid);
            if (!hold) continue;  // its job reconciles it
            sync_instance(d.uuid, &d);
        } catch (const hv::Error& e) {
            if (e.kind() == hv::Error::Kind::unavailable) throw;
            spdlog::warn("Reconciling instance '{}' failed: {}", d.name, e.what());
        }
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    if (!reconciled_once_.exchange(true))
        spdlog::info("Catalog reconciled with libvirt: {} domains, {} snapshots in the catalog, {} ms.", domains.size(),
                     catalog_.count_all_snapshots(), ms.count());
    else
        spdlog::debug("Periodic reconciliation: {} domains, {} ms.", domains.size(), ms.count());
}

void Reconciler::mark_instance_gone(const std::string& uuid) {
    if (host_.job_holds(uuid)) return;
    if (auto row = catalog_.instance_row(uuid); row && row->present) {
        row->present = false;
        row->state = hv::to_string(hv::DomainState::other);
        catalog_.upsert_instance(*row);
    }
    for (auto s : catalog_.instance_snapshots(uuid)) {
        if (s.state == SnapshotState::missing) continue;
        s.state = SnapshotState::missing;
        s.is_current = false;
        catalog_.update_snapshot(s);
        sink_.snapshot_updated(s);
    }
    host_.publish_instance(uuid);
}

void Reconciler::refresh_instance(const std::string& uuid) {
    auto d = hv_.find_domain(uuid);
    spdlog::debug("Refreshed instance {}: {}.", uuid, d ? hv::to_string(d->state) : std::string("gone"));
    if (!d) {
        catalog_.set_instance_present(uuid, false);
        mark_instance_gone(uuid);
        return;
    }
    upsert_domain(*d);
}

void Reconciler::reconcile_instance(const std::string& uuid) {
    if (!recovered_) return;
    const auto hold = host_.hold_if_free(uuid);
    if (!hold) return;  // its job reconciles when it ends
    sync_instance(uuid);
}

void Reconciler::sync_instance(const std::string& uuid, const hv::DomainInfo* described) {
    spdlog::debug("Reconciling instance {}.", uuid);
    auto dom = described ? std::optional<hv::DomainInfo>(*described) : hv_.find_domain(uuid);
    if (!dom) {
        catalog_.set_instance_present(uuid, false);
        mark_instance_gone(uuid);
        return;
    }
    upsert_domain(*dom);
    const auto live = hv_.list_snapshots(uuid);
    const auto known = catalog_.instance_snapshots(uuid);
    Comparison c;
    for (const auto& l : live) c.live_by_name[l.name] = &l;
    for (const auto& s : known) {
        c.id_by_name[s.name] = s.id;
        c.displays.insert(s.display_name);
    }
    std::vector<Snapshot> created = import_unknown(*dom, live, c);
    for (auto& s : created)
        if (auto vanished = apply_live(s, *dom, c))
            spdlog::warn("Snapshot {} of instance {} needs {}, which is gone; imported as missing.", in_quotes(s.name),
                         in_quotes(dom->name), in_quotes(*vanished));
    std::vector<Snapshot> updated;
    for (const auto& s : known) {
        Snapshot u = s;
        const auto vanished = apply_live(u, *dom, c);
        if (!differs(u, s)) continue;
        if (u.state == SnapshotState::missing && s.state != SnapshotState::missing) {
            if (vanished)
                spdlog::warn("Snapshot {} of instance {} needs {}, which is gone; marked missing.", in_quotes(s.name),
                             in_quotes(dom->name), in_quotes(*vanished));
            else
                spdlog::warn("Snapshot {} of instance {} is no longer in libvirt; marked missing.", in_quotes(s.name),
                             in_quotes(dom->name));
        } else if (s.state == SnapshotState::missing && u.state == SnapshotState::ready) {
            spdlog::info("Snapshot {} of instance {} is back: libvirt has it and its files are there.", in_quotes(s.name),
                         in_quotes(dom->name));
        }
        updated.push_back(std::move(u));
    }
    if (created.empty() && updated.empty()) return;

    // One transaction per instance, events once it is committed.
    catalog_.write_transaction([&] {
        for (const auto& s : created) catalog_.insert_snapshot(s);
        for (const auto& u : updated) catalog_.update_snapshot(u);
    });
    if (!created.empty()) {
        std::string names;
        for (std::size_t i = 0; i < created.size() && i < 5; ++i) names += (i ? ", '" : "'") + created[i].name + "'";
        if (created.size() > 5) names += ", ...";
        spdlog::info("Imported {} snapshot(s) of instance '{}' found in libvirt: {}.", created.size(), dom->name, names);
    }
    for (const auto& s : created) sink_.snapshot_created(s);
    for (const auto& u : updated) sink_.snapshot_updated(u);
    spdlog::debug("Instance '{}': {} snapshot(s) imported, {} updated from libvirt.", dom->name, created.size(),
                  updated.size());
}

InstanceRow Reconciler::upsert_domain(const hv::DomainInfo& d) {
    InstanceRow row;
    row.uuid = d.uuid;
    row.name = d.name;
    row.state = hv::to_string(d.state);
    row.memory_mib = d.memory_mib;
    row.vcpus = d.vcpus;
    row.present = true;
    auto old = catalog_.instance_row(d.uuid);
    const bool changed = !old || old->name != row.name || old->state != row.state ||
                         old->memory_mib != row.memory_mib || old->vcpus != row.vcpus || !old->present;
    if (changed) {
        catalog_.upsert_instance(row);
        host_.publish_instance(d.uuid);
    }
    return row;
}

void Reconciler::forget_old() {
    const auto now = now_ms();
    const auto day_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::hours(24)).count();
    catalog_.forget_jobs_before(now - static_cast<TimeMs>(opts_.history_days) * day_ms);
    catalog_.forget_idempotent_before(
        now - std::chrono::duration_cast<std::chrono::milliseconds>(config::idempotency_ttl).count());
}

}  // namespace snapvirt::daemon
