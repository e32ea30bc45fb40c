// The Backend's requests that change something: each checks the request, writes the rows its
// job starts from and queues the job (or, for an edit, makes the change itself).

#include "daemon/engine.hpp"

#include "config/text.hpp"
#include "daemon/external_files.hpp"
#include "daemon/snapshot_method.hpp"

#include <spdlog/spdlog.h>

#include <ctime>

namespace snapvirt::daemon {

using api::ApiError;
using api::ErrorCode;
using json = nlohmann::json;

namespace {

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

[[noreturn]] void display_name_taken(const std::string& instance_name, const std::string& display_name) {
    throw ApiError(ErrorCode::snapshot_exists,
                   "Instance " + in_quotes(instance_name) + " already has a snapshot shown as " + in_quotes(display_name) +
                       ".",
                   {{"field", "display_name"}});
}

}  // namespace

JobRecord Engine::new_job(JobKind kind, const InstanceRef& instance, const std::string& snapshot_id,
                          const json& params) {
    JobRecord rec;
    rec.job.id = new_uuid();
    rec.job.kind = kind;
    rec.job.instance = instance;
    rec.job.snapshot_id = snapshot_id;
    rec.job.state = JobState::queued;
    rec.job.progress.phase = to_string(JobPhase::queued);
    rec.job.created_at = now_ms();
    rec.params = params.dump();
    catalog_.insert_job(rec);
    return rec;
}

// ---- create ------------------------------------------------------------------------------------

api::CreateSnapshotResult Engine::create_snapshot(const std::string& instance,
                                                  const api::CreateSnapshotRequest& request) {
    return translating_errors([&] { return submit_create(instance, request); });
}

// The method of the instance's snapshots, as the rules of snapshot_method.hpp see it: the
// current snapshot's where the methods are mixed (a tree made partly outside snapvirt).
std::optional<SnapshotMethod> Engine::existing_method(const std::string& instance_uuid) {
    std::optional<SnapshotMethod> found;
    bool mixed = false;
    std::optional<SnapshotMethod> current;
    for (const auto& s : catalog_.instance_snapshots(instance_uuid)) {
        if (found && *found != s.method) mixed = true;
        if (!found) found = s.method;
        if (s.is_current) current = s.method;
    }
    return mixed && current ? current : found;
}

hv::Version Engine::libvirt_version() {
    if (auto facts = host_facts_.facts()) return facts->libvirt;
    hv::HostFacts facts = hv_.host_facts();
    host_facts_.store(facts);
    return facts.libvirt;
}

// The requested name if it is free; otherwise the instance's name and the time, made unique.
std::string Engine::choose_name(const hv::DomainInfo& dom, const std::optional<std::string>& requested) {
    if (requested) {
        if (catalog_.name_taken(dom.uuid, *requested))
            throw ApiError(ErrorCode::snapshot_exists,
                           "Instance " + in_quotes(dom.name) + " already has a snapshot named " + in_quotes(*requested) +
                               ".",
                           {{"field", "name"}});
        return *requested;
    }
    const std::string base = default_snapshot_name(dom.name);
    std::string name = base;
    for (int n = 2; catalog_.name_taken(dom.uuid, name); ++n) name = base + "-" + std::to_string(n);
    return name;
}

// A scheduled create's run, written in the transaction of its snapshot and job rows: a slot
// already recorded (a run of it made before, also by an earlier process) takes the whole create
// back and is ApiError idempotency_conflict with details {schedule_id, slot}; a schedule deleted
// meanwhile is schedule_not_found. Either way no row of the create is left.
void Engine::record_run(const std::string& schedule_id, TimeMs slot, const Job& job) {
    if (!catalog_.schedule(schedule_id))
        throw ApiError(ErrorCode::schedule_not_found, "There is no schedule " + in_quotes(schedule_id) + ".",
                       {{"id", schedule_id}});
    ScheduleRun run;
    run.slot = slot;
    run.at = job.created_at;
    run.job_id = job.id;
    run.outcome = ScheduleOutcome::running;
    try {
        catalog_.insert_schedule_run(schedule_id, run);
    } catch (const sql::Error& e) {
        if (!e.constraint()) throw;
        throw ApiError(ErrorCode::idempotency_conflict,
                       "Schedule " + in_quotes(schedule_id) + " has already run for slot " + std::to_string(slot) + ".",
                       {{"schedule_id", schedule_id}, {"slot", slot}});
    }
}

api::CreateSnapshotResult Engine::submit_create(const std::string& instance, const api::CreateSnapshotRequest& request) {
    if (request.schedule_id.has_value() != request.schedule_slot.has_value())
        throw std::logic_error("A scheduled create names its schedule and its slot, both or neither.");
    require_connected();
    // Refuse a busy instance before touching libvirt, which would wait on its job lock.
    if (auto known = catalog_.find_instance(instance)) queue_.refuse_if_busy(known->uuid, known->name);
    const std::optional<hv::DomainInfo> dom = hv_.find_domain(instance);
    if (!dom)
        throw ApiError(ErrorCode::instance_not_found, "There is no instance " + in_quotes(instance) + ".",
                       {{"instance", instance}});
    reconciler_.upsert_domain(*dom);
    const bool running = dom->state == hv::DomainState::running || dom->state == hv::DomainState::paused;
    if (request.mode == SnapshotMode::memory && !running)
        throw ApiError(ErrorCode::instance_not_running,
                       "Instance " + in_quotes(dom->name) + " is " + hv::to_string(dom->state) +
                           "; a snapshot with RAM needs it running. Take a stopped snapshot instead.",
                       {{"state", hv::to_string(dom->state)}});
    MethodFacts facts;
    facts.instance = dom->name;
    facts.requested = request.method;
    facts.config = hv_.domain_config(dom->uuid);
    facts.libvirt = libvirt_version();
    facts.existing = existing_method(dom->uuid);
    const SnapshotMethod method = choose_method(facts);
    const std::string snapshot_id = new_uuid();
    ExternalPlan plan;
    if (method == SnapshotMethod::external) {
        plan = plan_external_files(facts.config, dom->uuid, snapshot_id, request.mode, opts_.external_dir);
        check_free_space(plan, facts.config.nvram, dom->memory_mib * 1024 * 1024,
                         std::uint64_t{opts_.external_headroom_mib} * 1024 * 1024);
    }

    Snapshot snap;
    auto prepare = [&] {
        if (opts_.max_snapshots_per_instance > 0) {
            const auto count = catalog_.count_snapshots(dom->uuid);
            if (count >= opts_.max_snapshots_per_instance)
                throw ApiError(ErrorCode::snapshot_limit_reached,
                               "Instance " + in_quotes(dom->name) + " has " + std::to_string(count) +
                                   " snapshots, the most allowed (max_snapshots_per_instance = " +
                                   std::to_string(opts_.max_snapshots_per_instance) + "). Delete one first.",
                               {{"limit", opts_.max_snapshots_per_instance}});
        }
        const std::string name = choose_name(*dom, request.name);
        const std::string display_name = request.display_name.value_or(name);
        if (catalog_.display_name_taken(dom->uuid, display_name)) display_name_taken(dom->name, display_name);
        snap.id = snapshot_id;
        snap.instance = {dom->uuid, dom->name};
        snap.name = name;
        snap.display_name = display_name;
        snap.description = request.description;
        snap.mode = request.mode;  // decided here, carried by the snapshot's row
        snap.method = method;
        snap.files = plan.files();
        snap.state = SnapshotState::creating;
        // libvirt makes a new snapshot the child of the current one; reconciliation confirms it.
        if (auto inst = catalog_.instance(dom->uuid)) snap.parent_id = inst->current_snapshot_id;
        snap.created_at = now_ms();
        snap.origin = "api";
        snap.schedule_id = request.schedule_id;
        json params = {{"name", name}, {"display_name", display_name}, {"description", request.description}};
        if (request.schedule_id) {
            params["schedule_id"] = *request.schedule_id;
            params["schedule_slot"] = *request.schedule_slot;
        }
        if (method == SnapshotMethod::external) {
            params["memory_file"] = plan.memory_file;
            params["overlays"] = plan.overlays;
            params["nvram"] = facts.config.nvram;
            params["nvram_copy"] = plan.nvram_copy;
            params["anchors"] = plan.anchors;
        }
        if (request.mode == SnapshotMode::stopped) {
            params["shutdown_timeout_s"] = request.shutdown_timeout_s.value_or(opts_.shutdown_timeout_s);
            params["force_stop"] = request.force_stop;
            params["keep_stopped"] = request.keep_stopped;
        }
        JobRecord rec;
        catalog_.write_transaction([&] {
            catalog_.insert_snapshot(snap);
            rec = new_job(JobKind::create, snap.instance, snap.id, params);
            if (request.schedule_id) record_run(*request.schedule_id, *request.schedule_slot, rec.job);
        });
        return rec;
    };
    auto announce = [&](const Job& job) {
        sink_.snapshot_created(snap);
        sink_.job_updated(job);
        if (auto i = catalog_.instance(dom->uuid)) {
            i->busy_job_id = job.id;
            sink_.instance_updated(*i);
        }
    };
    const Job job = queue_.admit(dom->uuid, dom->name, prepare, announce);
    spdlog::info("job={} create {} {} snapshot {} of instance {} queued.", job.id, to_string(request.mode),
                 to_string(method), in_quotes(snap.name), in_quotes(dom->name));
    return {job, snap};
}

// ---- edit --------------------------------------------------------------------------------------

api::Snapshot Engine::edit_snapshot(const std::string& id, const api::EditSnapshotRequest& request) {
    api::Snapshot snap = get_snapshot(id);
    const std::string uuid = snap.instance.uuid;
    const auto edit = queue_.begin_edit(uuid, snap.instance.name, [&] {
        if (in_flight(snap.state))
            throw ApiError(ErrorCode::snapshot_not_ready, "Snapshot " + in_quotes(snap.display_name) + " is " +
                                                              to_string(snap.state) + "; edit it afterwards.");
    });
    snap = get_snapshot(id);  // as it is now that no job can change it
    api::Snapshot edited = snap;
    if (request.display_name) edited.display_name = *request.display_name;
    if (request.description) edited.description = *request.description;
    if (edited.display_name != snap.display_name && catalog_.display_name_taken(uuid, edited.display_name, snap.id))
        display_name_taken(snap.instance.name, edited.display_name);
    if (edited.display_name == snap.display_name && edited.description == snap.description) return snap;

    if (snap.state != SnapshotState::missing) {
        require_connected();
        try {
            hv_.set_snapshot_metadata(uuid, snap.name, edited.description, edited.display_name);
        } catch (const hv::Error& e) {
            if (e.kind() != hv::Error::Kind::snapshot_not_found && e.kind() != hv::Error::Kind::domain_not_found)
                raise(e);
            edited.state = SnapshotState::missing;  // gone behind our back; the catalog keeps the edit
        }
    }
    try {
        catalog_.update_snapshot(edited);
    } catch (const CatalogError& e) {
        if (e.kind() == CatalogError::Kind::conflict) display_name_taken(snap.instance.name, edited.display_name);
        throw;
    }
    sink_.snapshot_updated(edited);
    return edited;
}

// ---- revert and delete -------------------------------------------------------------------------

api::Job Engine::revert_snapshot(const std::string& id, const api::RevertRequest& request) {
    api::Snapshot snap = get_snapshot(id);
    auto prepare = [&] {
        snap = get_snapshot(id);
        if (snap.state != SnapshotState::ready)
            throw ApiError(ErrorCode::snapshot_not_ready,
                           "Snapshot " + in_quotes(snap.display_name) + " is " + to_string(snap.state) +
                               "; only a ready snapshot can be reverted to.",
                           {{"state", to_string(snap.state)}});
        require_connected();
        const json params = {{"start", to_string(request.start)}, {"force", request.force}};
        JobRecord rec;
        catalog_.write_transaction([&] {
            snap.state = SnapshotState::reverting;
            catalog_.update_snapshot(snap);
            rec = new_job(JobKind::revert, snap.instance, snap.id, params);
        });
        return rec;
    };
    auto announce = [&](const Job& job) {
        sink_.snapshot_updated(snap);
        sink_.job_updated(job);
    };
    const Job job = queue_.admit(snap.instance.uuid, snap.instance.name, prepare, announce);
    spdlog::info("job={} revert of instance {} to snapshot {} queued.", job.id, in_quotes(snap.instance.name),
                 in_quotes(snap.name));
    return job;
}

api::Job Engine::delete_snapshot(const std::string& id, bool children) {
    api::Snapshot snap = get_snapshot(id);
    std::vector<Snapshot> targets;
    auto prepare = [&] {
        snap = get_snapshot(id);
        if (in_flight(snap.state))
            throw ApiError(ErrorCode::snapshot_not_ready,
                           "Snapshot " + in_quotes(snap.display_name) + " is " + to_string(snap.state) +
                               "; delete it afterwards.",
                           {{"state", to_string(snap.state)}});
        if (snap.state != SnapshotState::missing) require_connected();
        if (!children && snap.state != SnapshotState::missing)
            if (auto refusal = external_delete_obstacle(snap, catalog_.instance_snapshots(snap.instance.uuid)))
                throw *refusal;
        targets = children ? catalog_.subtree(snap) : std::vector<Snapshot>{snap};
        json previous = json::object();
        for (const auto& t : targets) previous[t.id] = to_string(t.state);
        const json params = {{"children", children}, {"previous_states", previous}};
        JobRecord rec;
        catalog_.write_transaction([&] {
            for (auto& t : targets) {
                t.state = SnapshotState::deleting;
                catalog_.update_snapshot(t);
            }
            rec = new_job(JobKind::delete_, snap.instance, snap.id, params);
        });
        return rec;
    };
    auto announce = [&](const Job& job) {
        for (const auto& t : targets) sink_.snapshot_updated(t);
        sink_.job_updated(job);
    };
    const Job job = queue_.admit(snap.instance.uuid, snap.instance.name, prepare, announce);
    spdlog::info("job={} delete of snapshot {} of instance {}{} queued.", job.id, in_quotes(snap.name),
                 in_quotes(snap.instance.name), children ? " with its children" : "");
    return job;
}

// ---- cancel ------------------------------------------------------------------------------------

api::Job Engine::cancel_job(const std::string& id) {
    api::Job job = get_job(id);
    if (queue_.cancel(job) == JobQueue::Cancel::requested) return job;
    // It was still queued and never touched libvirt: its kind puts its rows back.
    const auto rec = catalog_.job(job.id);
    job = rec->job;
    job_kind(job.kind).withdraw(services_, *rec);
    job.state = JobState::cancelled;
    job.progress.phase = to_string(JobPhase::cancelled);
    job.finished_at = now_ms();
    catalog_.update_job(job);
    sink_.job_updated(job);
    publish_instance(job.instance.uuid);
    return job;
}

}  // namespace snapvirt::daemon
