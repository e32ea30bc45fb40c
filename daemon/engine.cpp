#include "daemon/engine.hpp"

#include "config/text.hpp"

#include <spdlog/spdlog.h>

namespace snapvirt::daemon {

using api::ApiError;
using api::ErrorCode;

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
    : opts_(std::move(options)),
      catalog_(catalog),
      hv_(hypervisor),
      sink_(sink),
      tokens_(catalog),
      reconciler_(opts_, catalog, hypervisor, sink, *this),
      services_{opts_,
                catalog,
                hypervisor,
                sink,
                queue_,
                reconciler_,
                pauses_,
                metrics_,
                [this](const std::string& uuid) { publish_instance(uuid); },
                [this] { report_status(); }},
      scheduler_(scheduler_options(opts_), catalog, *this, clock_) {}

Engine::~Engine() {
    stop(std::chrono::seconds(0));
    // The threads use every member: wait for them. A worker inside a long libvirt call holds the
    // destructor up; a process that must not wait exits without destroying the engine (main does).
    queue_.join();
    reconciler_.join();
}

void Engine::start() {
    // Jobs that a previous process left unfinished keep their instances busy until recovery
    // has looked at libvirt.
    for (const auto& rec : catalog_.unfinished_jobs()) queue_.adopt(rec.job);
    hv_.set_listener(this);
    queue_.start(opts_.workers, [this](const std::shared_ptr<ActiveJob>& job) { run_job(services_, job); });
    reconciler_.start();
    if (hv_.connected()) on_connection_changed(true, "");
    scheduler_.start();
}

void Engine::stop(std::chrono::seconds grace) {
    scheduler_.stop();  // submits no more runs
    queue_.stop(grace);
    reconciler_.stop();
    hv_.set_listener(nullptr);
    // Workers still inside a libvirt call keep running; the destructor joins them. Crash
    // recovery finishes their jobs at the next start if the process exits first.
}

void Engine::recover_jobs() {
    daemon::recover_jobs(services_, !recovered_once_);
    recovered_once_ = true;  // not when libvirt went away again: the next connection tries again
}

// ---- views -------------------------------------------------------------------------------------

void Engine::require_connected() const {
    if (!hv_.connected())
        throw ApiError(ErrorCode::hypervisor_unavailable, "libvirt is unreachable: " + hv_.status() + ".");
}

api::Instance Engine::decorate(api::Instance i) {
    if (auto job = queue_.busy_job(i.uuid)) i.busy_job_id = std::move(*job);
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
    scheduler_.wake();  // a job may have ended: a run's outcome, the next retention delete
}

std::string Engine::resolve_instance_uuid(const std::string& name_or_uuid, bool ask_hypervisor) {
    if (ask_hypervisor && hv_.connected()) {
        if (auto d = hv_.find_domain(name_or_uuid)) {
            reconciler_.upsert_domain(*d);
            return d->uuid;
        }
    }
    if (auto i = catalog_.find_instance(name_or_uuid)) return i->uuid;
    if (ask_hypervisor && !hv_.connected()) require_connected();
    throw ApiError(ErrorCode::instance_not_found, "There is no instance " + in_quotes(name_or_uuid) + ".",
                   {{"instance", name_or_uuid}});
}

// ---- reads -------------------------------------------------------------------------------------

std::vector<api::Instance> Engine::list_instances() {
    auto items = catalog_.list_instances();
    for (auto& i : items) i = decorate(std::move(i));
    return items;
}

api::Instance Engine::get_instance(const std::string& name_or_uuid) {
    const std::string uuid = translating_errors([&] { return resolve_instance_uuid(name_or_uuid, true); });
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
    return translating_errors([&] { return catalog_.query_snapshots(query, uuid); });
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
    return translating_errors([&] { return catalog_.query_jobs(query, uuid); });
}

api::Job Engine::get_job(const std::string& id) {
    auto j = catalog_.job(id);
    if (!j) throw ApiError(ErrorCode::job_not_found, "There is no job " + in_quotes(id) + ".", {{"id", id}});
    return j->job;
}

api::Readiness Engine::readiness() {
    if (!hv_.connected()) return {false, "libvirt is unreachable: " + hv_.status() + "."};
    if (!reconciler_.reconciled_once()) return {false, "The catalog is being reconciled with libvirt for the first time."};
    return {true, ""};
}

std::optional<api::StoredResponse> Engine::find_idempotent(const std::string& key) {
    const auto ttl = std::chrono::duration_cast<std::chrono::milliseconds>(config::idempotency_ttl).count();
    return catalog_.idempotent(key, now_ms() - ttl);
}

void Engine::remember_idempotent(const std::string& key, const api::StoredResponse& response) {
    catalog_.remember_idempotent(key, response, now_ms());
}

std::uint64_t Engine::generation() {
    // The counters only grow, so their sum changes whenever any does.
    return catalog_.generation() + queue_.changes() + view_changes_.load(std::memory_order_acquire);
}

// ---- events and status -------------------------------------------------------------------------

void Engine::report_status() {
    if (!opts_.status) return;
    const auto counts = queue_.counts();
    std::string line = hv_.connected() ? "Serving the API; libvirt connected"
                                       : "Serving the API from the catalog; libvirt unreachable, retrying";
    line += "; " + std::to_string(counts.running) + " job(s) running, " + std::to_string(counts.queued) + " queued";
    opts_.status(line);
}

void Engine::on_connection_changed(bool connected, const std::string& reason) {
    view_changes_.fetch_add(1, std::memory_order_acq_rel);  // instances turn stale or fresh
    report_status();
    if (connected) {
        spdlog::info("libvirt is reachable again; recovering and reconciling.");
        reconciler_.on_connected();
    } else {
        spdlog::warn("libvirt became unreachable ({}); reads are served from the catalog.", reason);
    }
}

void Engine::on_lifecycle(const hv::LifecycleEvent& ev) {
    spdlog::debug("Domain event {}/{} for '{}' ({}).", ev.event, ev.detail, ev.name, ev.uuid);
    pauses_.on_lifecycle(ev);
    reconciler_.on_lifecycle(ev);
}

void Engine::collect_metrics(std::string& out) {
    EngineMetrics::Gauges g;
    g.libvirt_connected = hv_.connected();
    g.snapshots = catalog_.count_all_snapshots();
    g.instances = catalog_.list_instances().size();
    const auto counts = queue_.counts();
    g.active_jobs = counts.running + counts.queued;
    metrics_.render(out, g);
    EngineMetrics::ScheduleGauges sg;
    for (const auto outcome : {ScheduleOutcome::succeeded, ScheduleOutcome::failed, ScheduleOutcome::missed,
                               ScheduleOutcome::skipped})
        sg.runs[outcome] = scheduler_.runs(outcome);
    sg.overdue_seconds = scheduler_.overdue_seconds();
    for (const auto& s : catalog_.all_schedules()) ++(s.enabled ? sg.enabled : sg.disabled);
    EngineMetrics::render(out, sg);
}

}  // namespace snapvirt::daemon
