#include "daemon/engine.hpp"

#include "daemon/tokens.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <malloc.h>

#include <algorithm>
#include <ctime>

namespace snapvirt::daemon {

using api::ApiError;
using api::ErrorCode;

namespace {

std::string in_quotes(const std::string& s) { return "'" + s + "'"; }

std::string mode_of(const hv::SnapshotInfo& s) {
    if (s.has_memory && (s.state == "running" || s.state == "paused")) return "memory";
    if (s.state == "shutoff" && !s.has_memory && s.all_disks_internal) return "stopped";
    return "other";
}

std::string default_snapshot_name(const std::string& instance_name) {
    std::string base;
    for (char c : instance_name) {
        const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
        base += ok ? c : '-';
    }
    if (base.empty() || !std::isalnum(static_cast<unsigned char>(base.front()))) base = "vm" + base;
    if (base.size() > 48) base.resize(48);
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    return base + "-" + stamp;
}

// A libvirt failure as the API reports it: unreachable is 503, a missing domain or snapshot
// 404, anything else libvirt refused 502 with libvirt's own words. Never a 500: that is for bugs.
[[noreturn]] void raise(const hv::Error& e) {
    switch (e.kind()) {
        case hv::Error::Kind::unavailable:
            throw ApiError(ErrorCode::hypervisor_unavailable, std::string("libvirt is unreachable: ") + e.what());
        case hv::Error::Kind::domain_not_found: throw ApiError(ErrorCode::instance_not_found, e.what());
        case hv::Error::Kind::snapshot_not_found: throw ApiError(ErrorCode::snapshot_not_found, e.what());
        default:
            throw ApiError(ErrorCode::hypervisor_error, std::string("libvirt refused: ") + e.what(),
                           {{"libvirt_code", e.code()}});
    }
}

template <class F>
auto translating_hv_errors(F&& fn) {
    try {
        return fn();
    } catch (const hv::Error& e) {
        raise(e);
    }
}

}  // namespace

std::map<std::string, int> parse_test_delays(const char* spec) {
    std::map<std::string, int> out;
    if (!spec) return out;
    std::string s(spec);
    std::size_t i = 0;
    while (i < s.size()) {
        const std::size_t comma = s.find(',', i);
        const std::string item = s.substr(i, comma == std::string::npos ? std::string::npos : comma - i);
        const std::size_t eq = item.find('=');
        if (eq != std::string::npos) out[item.substr(0, eq)] = std::atoi(item.c_str() + eq + 1);
        if (comma == std::string::npos) break;
        i = comma + 1;
    }
    return out;
}

Engine::Engine(EngineOptions options, Catalog& catalog, hv::Hypervisor& hypervisor, api::EventSink& sink)
    : opts_(std::move(options)), catalog_(catalog), hv_(hypervisor), sink_(sink) {}

Engine::~Engine() {
    stop(std::chrono::seconds(0));
    // The threads use every member: wait for them. A worker inside a long libvirt call holds the
    // destructor up; a process that must not wait exits without destroying the engine (main does).
    for (auto& t : workers_)
        if (t.joinable()) t.join();
    if (maintenance_.joinable()) maintenance_.join();
}

void Engine::start() {
    // Jobs that a previous process left unfinished keep their instances busy until recovery
    // has looked at libvirt.
    for (const auto& rec : catalog_.unfinished_jobs()) {
        auto a = std::make_shared<ActiveJob>();
        a->id = rec.job.id;
        a->kind = rec.job.kind;
        a->instance_uuid = rec.job.instance.uuid;
        a->started = true;
        a->orphaned = true;
        std::lock_guard lock(mu_);
        busy_[a->instance_uuid] = a;
        active_[a->id] = a;
    }
    hv_.set_listener(this);
    for (unsigned i = 0; i < std::max(1u, opts_.workers); ++i) workers_.emplace_back([this] { worker_loop(); });
    maintenance_ = std::thread([this] { maintenance_loop(); });
    if (hv_.connected()) on_connection_changed(true, "");
}

void Engine::stop(std::chrono::seconds grace) {
    {
        std::unique_lock lock(mu_);
        if (stopping_) return;
        accepting_ = false;
        // Queued jobs that never started stay queued in the catalog; recovery ends them.
        queue_.clear();
        idle_cv_.wait_for(lock, grace, [&] {
            return std::none_of(active_.begin(), active_.end(),
                                [](const auto& kv) { return kv.second->started && !kv.second->orphaned; });
        });
        stopping_ = true;
    }
    queue_cv_.notify_all();
    {
        std::lock_guard lock(tasks_mu_);
        tasks_stop_ = true;
    }
    tasks_cv_.notify_all();
    hv_.set_listener(nullptr);
    // Workers still inside a libvirt call keep running; the destructor joins them. Crash
    // recovery finishes their jobs at the next start if the process exits first.
}

// ---- views -------------------------------------------------------------------------------------

void Engine::require_connected() const {
    if (!hv_.connected())
        throw ApiError(ErrorCode::hypervisor_unavailable, "libvirt is unreachable: " + hv_.status() + ".");
}

void Engine::wait_for_edit(std::unique_lock<std::mutex>& lock, const std::string& uuid) {
    // An edit is one metadata redefine (milliseconds): wait for it rather than refuse.
    edit_cv_.wait_for(lock, std::chrono::seconds(5), [&] { return !editing_.count(uuid); });
}

void Engine::check_free_locked(std::unique_lock<std::mutex>& lock, const std::string& uuid,
                               const std::string& instance_name) {
    if (!accepting_) throw ApiError(ErrorCode::hypervisor_unavailable, "snapvirtd is shutting down.");
    wait_for_edit(lock, uuid);
    if (busy_.count(uuid) || editing_.count(uuid)) throw_busy(uuid, instance_name);
}

std::string Engine::busy_job_locked(const std::string& uuid) const {
    auto it = busy_.find(uuid);
    return it == busy_.end() ? std::string() : it->second->id;
}

void Engine::throw_busy(const std::string& uuid, const std::string& instance_name) {
    auto it = busy_.find(uuid);
    if (it != busy_.end())
        throw ApiError(ErrorCode::instance_busy,
                       "Instance " + in_quotes(instance_name) + " is busy with job " + in_quotes(it->second->id) + " (" +
                           it->second->kind + ").",
                       {{"job_id", it->second->id}, {"kind", it->second->kind}});
    throw ApiError(ErrorCode::instance_busy,
                   "Instance " + in_quotes(instance_name) + " is busy with an edit of one of its snapshots; try again.",
                   {{"job_id", nullptr}});
}

api::Instance Engine::decorate(api::Instance i) {
    {
        std::lock_guard lock(mu_);
        const std::string job = busy_job_locked(i.uuid);
        if (!job.empty()) i.busy_job_id = job;
    }
    i.stale = !hv_.connected();
    return i;
}

std::optional<api::Instance> Engine::instance_view(const std::string& uuid) {
    auto i = catalog_.instance(uuid);
    if (!i) return std::nullopt;
    return decorate(std::move(*i));
}

void Engine::publish_instance(const std::string& uuid) {
    if (auto i = instance_view(uuid)) sink_.instance_updated(*i);
}

std::string Engine::resolve_instance_uuid(const std::string& name_or_uuid, bool ask_hypervisor) {
    if (ask_hypervisor && hv_.connected()) {
        if (auto d = hv_.find_domain(name_or_uuid)) {
            upsert_domain(*d);
            return d->uuid;
        }
    }
    if (auto i = catalog_.find_instance(name_or_uuid)) return i->uuid;
    if (ask_hypervisor && !hv_.connected()) require_connected();
    throw ApiError(ErrorCode::instance_not_found, "There is no instance " + in_quotes(name_or_uuid) + ".",
                   {{"instance", name_or_uuid}});
}

InstanceRow Engine::upsert_domain(const hv::DomainInfo& d) {
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
        publish_instance(d.uuid);
    }
    return row;
}

// ---- reads -------------------------------------------------------------------------------------

std::vector<api::Instance> Engine::list_instances() {
    auto items = catalog_.list_instances();
    for (auto& i : items) i = decorate(std::move(i));
    return items;
}

api::Instance Engine::get_instance(const std::string& name_or_uuid) {
    const std::string uuid = translating_hv_errors([&] { return resolve_instance_uuid(name_or_uuid, true); });
    auto i = instance_view(uuid);
    if (!i) throw ApiError(ErrorCode::instance_not_found, "There is no instance " + in_quotes(name_or_uuid) + ".");
    return *i;
}

std::vector<api::Snapshot> Engine::list_instance_snapshots(const std::string& name_or_uuid) {
    return catalog_.instance_snapshots(resolve_instance_uuid(name_or_uuid, false));
}

api::Page<api::Snapshot> Engine::list_snapshots(const api::SnapshotQuery& query) {
    std::optional<std::string> uuid;
    if (query.instance) {
        auto i = catalog_.find_instance(*query.instance);
        if (!i) return {};  // a filter that matches nothing
        uuid = i->uuid;
    }
    return catalog_.query_snapshots(query, uuid);
}

api::Snapshot Engine::get_snapshot(const std::string& id) {
    auto s = catalog_.snapshot(id);
    if (!s) throw ApiError(ErrorCode::snapshot_not_found, "There is no snapshot " + in_quotes(id) + ".", {{"id", id}});
    return *s;
}

api::Page<api::Job> Engine::list_jobs(const api::JobQuery& query) {
    std::optional<std::string> uuid;
    if (query.instance) {
        auto i = catalog_.find_instance(*query.instance);
        if (!i) return {};
        uuid = i->uuid;
    }
    return catalog_.query_jobs(query, uuid);
}

api::Job Engine::get_job(const std::string& id) {
    auto j = catalog_.job(id);
    if (!j) throw ApiError(ErrorCode::job_not_found, "There is no job " + in_quotes(id) + ".", {{"id", id}});
    return j->job;
}

api::Readiness Engine::readiness() {
    if (!hv_.connected()) return {false, "libvirt is unreachable: " + hv_.status() + "."};
    if (!reconciled_once_) return {false, "The catalog is being reconciled with libvirt for the first time."};
    return {true, ""};
}

std::optional<api::StoredResponse> Engine::find_idempotent(const std::string& key) {
    return catalog_.idempotent(key, now_ms() - 24 * 3600 * 1000LL);
}

void Engine::remember_idempotent(const std::string& key, const api::StoredResponse& response) {
    catalog_.remember_idempotent(key, response, now_ms());
}

std::uint64_t Engine::generation() {
    // Both counters only grow, so their sum changes whenever either does.
    return catalog_.generation() + view_changes_.load(std::memory_order_acquire);
}

api::Scope Engine::authenticate(const std::string& token) {
    std::lock_guard lock(tokens_mu_);
    // Tokens change from another process (`snapvirtd token ...`): the database's data_version
    // says when. Checked every half second, and at once (at most every 50 ms) for a token not
    // known yet, so a new token works right away and a revoked one stops within 0.5 s.
    auto refresh = [&](std::chrono::milliseconds max_age) {
        const auto now = std::chrono::steady_clock::now();
        if (tokens_version_ >= 0 && now - tokens_checked_ < max_age) return;
        const auto version = catalog_.data_version();
        if (version != tokens_version_) {
            token_hashes_ = catalog_.token_hashes();
            tokens_version_ = version;
        }
        tokens_checked_ = now;
    };
    refresh(std::chrono::milliseconds(500));
    api::Scope scope = match_token(token, token_hashes_);
    if (scope == api::Scope::none) {
        refresh(std::chrono::milliseconds(50));
        scope = match_token(token, token_hashes_);
    }
    return scope;
}

// ---- mutations ---------------------------------------------------------------------------------

api::Job Engine::submit_locked(const std::string& kind, const std::string& uuid, const std::string& instance_name,
                               const std::optional<std::string>& snapshot_id, const std::string& params) {
    JobRecord rec;
    rec.job.id = new_uuid();
    rec.job.kind = kind;
    rec.job.instance = {uuid, instance_name};
    rec.job.snapshot_id = snapshot_id;
    rec.job.state = "queued";
    rec.job.progress.phase = "queued";
    rec.job.created_at = now_ms();
    rec.params = params;
    catalog_.insert_job(rec);
    auto a = std::make_shared<ActiveJob>();
    a->id = rec.job.id;
    a->kind = kind;
    a->instance_uuid = uuid;
    busy_[uuid] = a;
    active_[a->id] = a;
    view_changes_.fetch_add(1, std::memory_order_acq_rel);
    queue_.push_back(a);
    queue_cv_.notify_one();
    return rec.job;
}

api::CreateSnapshotResult Engine::create_snapshot(const std::string& instance,
                                                  const api::CreateSnapshotRequest& request) {
    return translating_hv_errors([&] { return submit_create(instance, request); });
}

api::CreateSnapshotResult Engine::submit_create(const std::string& instance, const api::CreateSnapshotRequest& request) {
    require_connected();
    // Refuse a busy instance before touching libvirt, which would wait on its job lock.
    if (auto known = catalog_.find_instance(instance)) {
        std::lock_guard lock(mu_);
        if (busy_.count(known->uuid)) throw_busy(known->uuid, known->name);
    }
    const std::optional<hv::DomainInfo> dom = hv_.find_domain(instance);
    if (!dom) throw ApiError(ErrorCode::instance_not_found, "There is no instance " + in_quotes(instance) + ".",
                             {{"instance", instance}});
    upsert_domain(*dom);
    const bool running = dom->state == hv::DomainState::running || dom->state == hv::DomainState::paused;
    if (request.mode == "memory" && !running)
        throw ApiError(ErrorCode::instance_not_running,
                       "Instance " + in_quotes(dom->name) + " is " + hv::to_string(dom->state) +
                           "; a snapshot with RAM needs it running. Take a stopped snapshot instead.",
                       {{"state", hv::to_string(dom->state)}});
    const hv::DomainConfig cfg = hv_.domain_config(dom->uuid);
    if (cfg.pflash_firmware)
        throw ApiError(ErrorCode::unsupported_firmware,
                       "Instance " + in_quotes(dom->name) +
                           " boots UEFI firmware from pflash, which libvirt 9.0 cannot include in internal snapshots.");
    for (const auto& d : cfg.disks) {
        if (d.device != "disk" || d.readonly || d.excluded) continue;
        if (d.format != "qcow2")
            throw ApiError(ErrorCode::unsupported_disk,
                           "Disk " + in_quotes(d.target) + " of instance " + in_quotes(dom->name) + " is " +
                               (d.format.empty() ? std::string("of unknown format") : d.format) +
                               "; internal snapshots need every disk in qcow2 format.",
                           {{"disk", d.target}, {"format", d.format}, {"source", d.source}});
    }

    std::unique_lock lock(mu_);
    check_free_locked(lock, dom->uuid, dom->name);
    if (opts_.max_snapshots_per_instance > 0) {
        const auto count = catalog_.count_snapshots(dom->uuid);
        if (count >= opts_.max_snapshots_per_instance)
            throw ApiError(ErrorCode::snapshot_limit_reached,
                           "Instance " + in_quotes(dom->name) + " has " + std::to_string(count) +
                               " snapshots, the most allowed (max_snapshots_per_instance = " +
                               std::to_string(opts_.max_snapshots_per_instance) + "). Delete one first.",
                           {{"limit", opts_.max_snapshots_per_instance}});
    }
    std::string name;
    if (request.name) {
        name = *request.name;
        if (catalog_.name_taken(dom->uuid, name))
            throw ApiError(ErrorCode::snapshot_exists,
                           "Instance " + in_quotes(dom->name) + " already has a snapshot named " + in_quotes(name) + ".",
                           {{"field", "name"}});
    } else {
        const std::string base = default_snapshot_name(dom->name);
        name = base;
        for (int n = 2; catalog_.name_taken(dom->uuid, name); ++n) name = base + "-" + std::to_string(n);
    }
    const std::string display_name = request.display_name.value_or(name);
    if (catalog_.display_name_taken(dom->uuid, display_name))
        throw ApiError(ErrorCode::snapshot_exists,
                       "Instance " + in_quotes(dom->name) + " already has a snapshot shown as " + in_quotes(display_name) +
                           ".",
                       {{"field", "display_name"}});

    api::Snapshot snap;
    snap.id = new_uuid();
    snap.instance = {dom->uuid, dom->name};
    snap.name = name;
    snap.display_name = display_name;
    snap.description = request.description;
    snap.mode = request.mode;
    snap.state = "creating";
    // libvirt makes a new snapshot the child of the current one; reconciliation confirms it.
    if (auto inst = catalog_.instance(dom->uuid)) snap.parent_id = inst->current_snapshot_id;
    snap.created_at = now_ms();
    snap.origin = "api";

    nlohmann::json params = {{"mode", request.mode}, {"name", name}, {"display_name", display_name},
                             {"description", request.description}};
    if (request.mode == "stopped") {
        params["shutdown_timeout_s"] = request.shutdown_timeout_s.value_or(opts_.shutdown_timeout_s);
        params["force_stop"] = request.force_stop;
        params["keep_stopped"] = request.keep_stopped;
    }
    api::Job job;
    catalog_.write_transaction([&] {
        catalog_.insert_snapshot(snap);
        job = submit_locked("create", dom->uuid, dom->name, snap.id, params.dump());
    });
    sink_.snapshot_created(snap);
    sink_.job_updated(job);
    if (auto i = catalog_.instance(dom->uuid)) {
        i->busy_job_id = job.id;
        sink_.instance_updated(*i);
    }
    spdlog::info("job={} create {} snapshot {} of instance {} queued.", job.id, request.mode, in_quotes(name),
                 in_quotes(dom->name));
    return {job, snap};
}

api::Snapshot Engine::edit_snapshot(const std::string& id, const api::EditSnapshotRequest& request) {
    api::Snapshot snap = get_snapshot(id);
    const std::string uuid = snap.instance.uuid;
    {
        std::unique_lock lock(mu_);
        wait_for_edit(lock, uuid);
        if (busy_.count(uuid) || editing_.count(uuid)) throw_busy(uuid, snap.instance.name);
        if (snap.state == "creating" || snap.state == "reverting" || snap.state == "deleting")
            throw ApiError(ErrorCode::snapshot_not_ready,
                           "Snapshot " + in_quotes(snap.display_name) + " is " + snap.state + "; edit it afterwards.");
        editing_.insert(uuid);
    }
    struct Done {
        Engine* e;
        std::string uuid;
        ~Done() {
            {
                std::lock_guard lock(e->mu_);
                e->editing_.erase(uuid);
            }
            e->edit_cv_.notify_all();
        }
    } done{this, uuid};

    snap = get_snapshot(id);  // as it is now that no job can change it
    api::Snapshot edited = snap;
    if (request.display_name) edited.display_name = *request.display_name;
    if (request.description) edited.description = *request.description;
    if (edited.display_name != snap.display_name && catalog_.display_name_taken(uuid, edited.display_name, snap.id))
        throw ApiError(ErrorCode::snapshot_exists,
                       "Instance " + in_quotes(snap.instance.name) + " already has a snapshot shown as " +
                           in_quotes(edited.display_name) + ".",
                       {{"field", "display_name"}});
    if (edited.display_name == snap.display_name && edited.description == snap.description) return snap;

    if (snap.state != "missing") {
        require_connected();
        try {
            hv_.set_snapshot_metadata(uuid, snap.name, edited.description, edited.display_name);
        } catch (const hv::Error& e) {
            if (e.kind() != hv::Error::Kind::snapshot_not_found && e.kind() != hv::Error::Kind::domain_not_found)
                raise(e);
            edited.state = "missing";  // gone behind our back; the catalog keeps the edit
        }
    }
    try {
        catalog_.update_snapshot(edited);
    } catch (const sql::Error& e) {
        if (e.constraint())
            throw ApiError(ErrorCode::snapshot_exists, "Instance " + in_quotes(snap.instance.name) +
                                                           " already has a snapshot shown as " +
                                                           in_quotes(edited.display_name) + ".",
                           {{"field", "display_name"}});
        throw;
    }
    sink_.snapshot_updated(edited);
    return edited;
}

api::Job Engine::revert_snapshot(const std::string& id, const api::RevertRequest& request) {
    api::Snapshot snap = get_snapshot(id);
    std::unique_lock lock(mu_);
    check_free_locked(lock, snap.instance.uuid, snap.instance.name);
    snap = get_snapshot(id);
    if (snap.state != "ready")
        throw ApiError(ErrorCode::snapshot_not_ready,
                       "Snapshot " + in_quotes(snap.display_name) + " is " + snap.state + "; only a ready snapshot can be reverted to.",
                       {{"state", snap.state}});
    require_connected();
    nlohmann::json params = {{"start", request.start}, {"force", request.force}};
    api::Job job;
    catalog_.write_transaction([&] {
        snap.state = "reverting";
        catalog_.update_snapshot(snap);
        job = submit_locked("revert", snap.instance.uuid, snap.instance.name, snap.id, params.dump());
    });
    sink_.snapshot_updated(snap);
    sink_.job_updated(job);
    spdlog::info("job={} revert of instance {} to snapshot {} queued.", job.id, in_quotes(snap.instance.name),
                 in_quotes(snap.name));
    return job;
}

api::Job Engine::delete_snapshot(const std::string& id, bool children) {
    api::Snapshot snap = get_snapshot(id);
    std::unique_lock lock(mu_);
    check_free_locked(lock, snap.instance.uuid, snap.instance.name);
    snap = get_snapshot(id);
    if (snap.state == "creating" || snap.state == "reverting" || snap.state == "deleting")
        throw ApiError(ErrorCode::snapshot_not_ready,
                       "Snapshot " + in_quotes(snap.display_name) + " is " + snap.state + "; delete it afterwards.",
                       {{"state", snap.state}});
    if (snap.state != "missing") require_connected();

    // The subtree, parents first.
    std::vector<api::Snapshot> targets{snap};
    if (children) {
        const auto all = catalog_.instance_snapshots(snap.instance.uuid);
        for (std::size_t i = 0; i < targets.size(); ++i)
            for (const auto& s : all)
                if (s.parent_id && *s.parent_id == targets[i].id) targets.push_back(s);
    }
    nlohmann::json params = {{"children", children}};
    nlohmann::json previous = nlohmann::json::object();
    for (const auto& t : targets) previous[t.id] = t.state;
    params["previous_states"] = previous;
    api::Job job;
    catalog_.write_transaction([&] {
        for (auto& t : targets) {
            t.state = "deleting";
            catalog_.update_snapshot(t);
        }
        job = submit_locked("delete", snap.instance.uuid, snap.instance.name, snap.id, params.dump());
    });
    for (const auto& t : targets) sink_.snapshot_updated(t);
    sink_.job_updated(job);
    spdlog::info("job={} delete of snapshot {} of instance {}{} queued.", job.id, in_quotes(snap.name),
                 in_quotes(snap.instance.name), children ? " with its children" : "");
    return job;
}

api::Job Engine::cancel_job(const std::string& id) {
    api::Job job = get_job(id);
    std::unique_lock lock(mu_);
    auto it = active_.find(job.id);
    if (it == active_.end() || job.terminal())
        throw ApiError(ErrorCode::job_not_cancellable, "Job " + in_quotes(job.id) + " has already ended (" + job.state + ").",
                       {{"state", job.state}});
    auto a = it->second;
    if (!a->started) {
        // Still queued: it never touched libvirt.
        queue_.erase(std::remove(queue_.begin(), queue_.end(), a), queue_.end());
        busy_.erase(a->instance_uuid);
        active_.erase(a->id);
        view_changes_.fetch_add(1, std::memory_order_acq_rel);
        lock.unlock();
        auto rec = catalog_.job(job.id);
        job = rec->job;
        const auto params = nlohmann::json::parse(rec->params, nullptr, false);
        if (job.snapshot_id) {
            if (auto s = catalog_.snapshot(*job.snapshot_id)) {
                if (job.kind == "create") {
                    catalog_.delete_snapshot(s->id);
                    sink_.snapshot_deleted(*s);
                } else if (job.kind == "revert") {
                    s->state = "ready";
                    catalog_.update_snapshot(*s);
                    sink_.snapshot_updated(*s);
                }
            }
        }
        if (job.kind == "delete" && params.is_object() && params.contains("previous_states")) {
            for (const auto& [sid, state] : params["previous_states"].items()) {
                if (auto s = catalog_.snapshot(sid)) {
                    s->state = state.get<std::string>();
                    catalog_.update_snapshot(*s);
                    sink_.snapshot_updated(*s);
                }
            }
        }
        job.state = "cancelled";
        job.progress.phase = "cancelled";
        job.finished_at = now_ms();
        catalog_.update_job(job);
        sink_.job_updated(job);
        publish_instance(job.instance.uuid);
        idle_cv_.notify_all();
        return job;
    }
    if (a->kind == "create" && a->waiting_for_shutdown) {
        a->cancel_requested = true;
        return job;  // the worker leaves the guest running and ends the job as cancelled
    }
    throw ApiError(ErrorCode::job_not_cancellable,
                   "Job " + in_quotes(job.id) + " is " + (job.progress.phase.empty() ? job.state : job.progress.phase) +
                       ", a step that libvirt cannot abort; wait for it to end.",
                   {{"phase", job.progress.phase}});
}

// ---- events ------------------------------------------------------------------------------------

void Engine::report_status() {
    if (!opts_.status) return;
    std::size_t running = 0, queued = 0;
    {
        std::lock_guard lock(mu_);
        for (const auto& [id, a] : active_) (a->started ? running : queued) += 1;
    }
    std::string line = hv_.connected() ? "Serving the API; libvirt connected"
                                       : "Serving the API from the catalog; libvirt unreachable, retrying";
    line += "; " + std::to_string(running) + " job(s) running, " + std::to_string(queued) + " queued";
    opts_.status(line);
}

void Engine::on_connection_changed(bool connected, const std::string& reason) {
    view_changes_.fetch_add(1, std::memory_order_acq_rel);  // instances turn stale or fresh
    report_status();
    if (connected) {
        spdlog::info("libvirt is reachable again; recovering and reconciling.");
        settle_requested_ = true;
        enqueue({Task::Kind::recover, ""});
        enqueue({Task::Kind::reconcile_all, ""});
    } else {
        spdlog::warn("libvirt became unreachable ({}); reads are served from the catalog.", reason);
    }
}

void Engine::on_lifecycle(const hv::LifecycleEvent& ev) {
    spdlog::debug("Domain event {}/{} for '{}' ({}).", ev.event, ev.detail, ev.name, ev.uuid);
    {
        std::lock_guard lock(pause_mu_);
        auto it = pauses_.find(ev.uuid);
        if (it != pauses_.end()) {
            if (ev.suspended() && !it->second.suspended) it->second.suspended = ev.at;
            if (ev.resumed() && it->second.suspended && !it->second.resumed) it->second.resumed = ev.at;
            pause_cv_.notify_all();
        }
    }
    enqueue({ev.defined_or_undefined() ? Task::Kind::reconcile_instance : Task::Kind::refresh_instance, ev.uuid});
}

void Engine::watch_pauses(const std::string& uuid) {
    std::lock_guard lock(pause_mu_);
    pauses_[uuid] = PauseRecord{};
}

std::optional<std::uint64_t> Engine::paused_ms(const std::string& uuid, std::chrono::milliseconds wait) {
    std::unique_lock lock(pause_mu_);
    // Events travel through libvirt's event loop and arrive around the time the save returns.
    // Without a SUSPENDED event soon, none is coming (a driver without them, a lost event).
    const auto start = std::chrono::steady_clock::now();
    pause_cv_.wait_for(lock, std::min(wait, std::chrono::milliseconds(500)), [&] { return pauses_[uuid].suspended.has_value(); });
    if (pauses_[uuid].suspended)
        pause_cv_.wait_until(lock, start + wait, [&] { return pauses_[uuid].resumed.has_value(); });
    const PauseRecord r = pauses_[uuid];
    pauses_.erase(uuid);
    if (!r.suspended || !r.resumed) return std::nullopt;
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(*r.resumed - *r.suspended).count());
}

// ---- maintenance -------------------------------------------------------------------------------

void Engine::request_reconcile() { enqueue({Task::Kind::reconcile_all, ""}); }

void Engine::enqueue(Task task) {
    {
        std::lock_guard lock(tasks_mu_);
        if (tasks_stop_) return;
        tasks_.insert(std::move(task));
    }
    tasks_cv_.notify_one();
}

namespace {
constexpr std::chrono::seconds trim_interval{10};
// After libvirt comes back, libvirtd is still reattaching to running QEMUs for a while, and
// events about those domains can be lost then (seen on the test host: a guest destroyed right
// after a libvirtd restart sent no event). The catalog is compared with libvirt again every
// settle_interval, settle_rounds times, so nothing that happened then stays unseen.
constexpr std::chrono::seconds settle_interval{2};
constexpr int settle_rounds = 5;
}  // namespace

void Engine::maintenance_loop() {
    auto next_periodic = std::chrono::steady_clock::now() + opts_.reconcile_interval;
    std::unique_lock lock(tasks_mu_);
    while (!tasks_stop_) {
        if (settle_requested_.exchange(false)) {
            settling_rounds_ = settle_rounds;
            next_periodic = std::min(next_periodic, std::chrono::steady_clock::now() + settle_interval);
        }
        // Wakes at least every trim_interval when idle: memory freed after a burst of requests
        // (answers, page buffers) goes back to the system instead of staying in malloc's arenas.
        const auto wake = std::min(next_periodic, std::chrono::steady_clock::now() + trim_interval);
        tasks_cv_.wait_until(lock, wake, [&] { return tasks_stop_ || !tasks_.empty(); });
        if (tasks_stop_) break;
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
            tasks_.insert({Task::Kind::reconcile_all, ""});
        }
        const Task task = *tasks_.begin();
        tasks_.erase(tasks_.begin());
        lock.unlock();
        try {
            if (hv_.connected()) {
                switch (task.kind) {
                    case Task::Kind::recover: recover_jobs(); break;
                    case Task::Kind::reconcile_all:
                        reconcile_all();
                        forget_old();
                        break;
                    case Task::Kind::reconcile_instance: reconcile_instance(task.uuid); break;
                    case Task::Kind::refresh_instance: refresh_instance(task.uuid); break;
                }
            }
        } catch (const hv::Error& e) {
            spdlog::warn("Reconciliation stopped: {}", e.what());
        } catch (const std::exception& e) {
            spdlog::error("Reconciliation failed: {}", e.what());
        }
        lock.lock();
    }
}

void Engine::reconcile_all() {
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
            {
                std::lock_guard lock(mu_);
                if (busy_.count(d.uuid) || editing_.count(d.uuid)) continue;  // its job reconciles it
            }
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

void Engine::mark_instance_gone(const std::string& uuid) {
    {
        std::lock_guard lock(mu_);
        if (busy_.count(uuid)) return;
    }
    if (auto row = catalog_.instance_row(uuid); row && row->present) {
        row->present = false;
        row->state = "other";
        catalog_.upsert_instance(*row);
    }
    for (auto s : catalog_.instance_snapshots(uuid)) {
        if (s.state == "missing") continue;
        s.state = "missing";
        s.is_current = false;
        catalog_.update_snapshot(s);
        sink_.snapshot_updated(s);
    }
    publish_instance(uuid);
}

void Engine::refresh_instance(const std::string& uuid) {
    auto d = hv_.find_domain(uuid);
    spdlog::debug("Refreshed instance {}: {}.", uuid, d ? hv::to_string(d->state) : std::string("gone"));
    if (!d) {
        catalog_.set_instance_present(uuid, false);
        mark_instance_gone(uuid);
        return;
    }
    upsert_domain(*d);
}

void Engine::reconcile_instance(const std::string& uuid) {
    if (!recovered_) return;
    {
        std::lock_guard lock(mu_);
        if (busy_.count(uuid) || editing_.count(uuid)) return;  // its job reconciles when it ends
    }
    sync_instance(uuid);
}

void Engine::sync_instance(const std::string& uuid, const hv::DomainInfo* described) {
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

    std::map<std::string, const hv::SnapshotInfo*> live_by_name;
    for (const auto& l : live) live_by_name[l.name] = &l;
    std::map<std::string, std::string> id_by_name;
    std::set<std::string> displays;
    for (const auto& s : known) {
        id_by_name[s.name] = s.id;
        displays.insert(s.display_name);
    }

    // Snapshots made behind snapvirt's back (e.g. with virsh) are imported.
    std::vector<api::Snapshot> created;
    for (const auto& l : live) {
        if (id_by_name.count(l.name)) continue;
        api::Snapshot s;
        s.id = new_uuid();
        s.instance = {dom->uuid, dom->name};
        s.name = l.name;
        const std::string base = l.display_name.value_or(l.name);
        std::string display = base;
        for (int n = 2; displays.count(display); ++n) display = base + " (" + std::to_string(n) + ")";
        displays.insert(display);
        s.display_name = display;
        s.description = l.description;
        s.mode = mode_of(l);
        s.state = "ready";
        s.created_at = l.creation_time * 1000;
        s.origin = "discovered";
        id_by_name[s.name] = s.id;
        created.push_back(std::move(s));
    }

    // libvirt's truth for every row: parent, current flag, description, presence.
    auto apply = [&](api::Snapshot& u) {
        u.instance.name = dom->name;
        auto l = live_by_name.find(u.name);
        if (l == live_by_name.end()) {
            u.state = "missing";
            u.is_current = false;
            return;
        }
        const hv::SnapshotInfo& info = *l->second;
        if (u.state == "missing" || u.state == "creating" || u.state == "reverting" || u.state == "deleting")
            u.state = "ready";
        u.parent_id = info.parent && id_by_name.count(*info.parent) ? std::optional(id_by_name[*info.parent])
                                                                     : std::nullopt;
        u.is_current = info.is_current;
        u.description = info.description;
        if (info.display_name && *info.display_name != u.display_name && !displays.count(*info.display_name)) {
            displays.erase(u.display_name);
            u.display_name = *info.display_name;
            displays.insert(u.display_name);
        }
    };
    for (auto& s : created) apply(s);
    std::vector<api::Snapshot> updated;
    for (const auto& s : known) {
        api::Snapshot u = s;
        apply(u);
        const bool changed = u.state != s.state || u.parent_id != s.parent_id || u.is_current != s.is_current ||
                             u.description != s.description || u.display_name != s.display_name;
        if (!changed) continue;
        if (u.state == "missing")
            spdlog::warn("Snapshot '{}' of instance '{}' is no longer in libvirt; marked missing.", s.name, dom->name);
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

void Engine::forget_old() {
    const auto now = now_ms();
    catalog_.forget_jobs_before(now - static_cast<api::TimeMs>(opts_.history_days) * 24 * 3600 * 1000);
    catalog_.forget_idempotent_before(now - 24 * 3600 * 1000LL);
}

// ---- metrics -----------------------------------------------------------------------------------

void Engine::collect_metrics(std::string& out) {
    out += "# HELP snapvirt_libvirt_connected Whether libvirt is reachable (1) or not (0).\n";
    out += "# TYPE snapvirt_libvirt_connected gauge\n";
    out += std::string("snapvirt_libvirt_connected ") + (hv_.connected() ? "1" : "0") + "\n";
    out += "# HELP snapvirt_catalog_snapshots Snapshots in the catalog.\n";
    out += "# TYPE snapvirt_catalog_snapshots gauge\n";
    out += "snapvirt_catalog_snapshots " + std::to_string(catalog_.count_all_snapshots()) + "\n";
    out += "# HELP snapvirt_catalog_instances Instances in the catalog.\n";
    out += "# TYPE snapvirt_catalog_instances gauge\n";
    out += "snapvirt_catalog_instances " + std::to_string(catalog_.list_instances().size()) + "\n";
    {
        std::lock_guard lock(mu_);
        out += "# HELP snapvirt_jobs_active Jobs queued or running now.\n";
        out += "# TYPE snapvirt_jobs_active gauge\n";
        out += "snapvirt_jobs_active " + std::to_string(active_.size()) + "\n";
    }
    std::lock_guard lock(metrics_mu_);
    out += "# HELP snapvirt_jobs_total Jobs that ended in this process, by kind and outcome.\n";
    out += "# TYPE snapvirt_jobs_total counter\n";
    for (const auto& [key, n] : outcomes_) {
        const auto slash = key.find('/');
        out += "snapvirt_jobs_total{kind=\"" + key.substr(0, slash) + "\",outcome=\"" + key.substr(slash + 1) +
               "\"} " + std::to_string(n) + "\n";
    }
    out += "# HELP snapvirt_create_duration_seconds Time a successful create job took, by mode.\n";
    out += "# TYPE snapvirt_create_duration_seconds histogram\n";
    create_memory_seconds_.render(out, "snapvirt_create_duration_seconds", "mode=\"memory\"");
    create_stopped_seconds_.render(out, "snapvirt_create_duration_seconds", "mode=\"stopped\"");
    out += "# HELP snapvirt_revert_duration_seconds Time a successful revert job took.\n";
    out += "# TYPE snapvirt_revert_duration_seconds histogram\n";
    revert_seconds_.render(out, "snapvirt_revert_duration_seconds", "");
    out += "# HELP snapvirt_guest_paused_seconds How long guests were paused while a memory snapshot saved their state.\n";
    out += "# TYPE snapvirt_guest_paused_seconds histogram\n";
    guest_paused_seconds_.render(out, "snapvirt_guest_paused_seconds", "");
}

}  // namespace snapvirt::daemon
