// Crash recovery: the jobs an earlier process (or a libvirt outage) left unfinished are ended
// once libvirt answers, each by its kind's recover() with libvirt as it is now.

#include "daemon/jobs/job.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace snapvirt::daemon {

namespace {

using json = nlohmann::json;

json object_or_empty(const std::string& text) {
    json j = json::parse(text, nullptr, false);
    return j.is_object() ? j : json::object();
}

void recover_job(JobServices& s, JobRecord rec) {
    Job& job = rec.job;
    const json params = object_or_empty(rec.params);
    const json intent = object_or_empty(rec.intent);
    auto domain = s.hv.find_domain(job.instance.uuid);
    std::vector<hv::SnapshotInfo> live;
    if (domain) live = s.hv.list_snapshots(job.instance.uuid);
    RecoveryContext r{s,
                      job,
                      params,
                      intent,
                      job.state == JobState::running,
                      intent.value("step", std::string()),
                      std::move(domain),
                      std::move(live),
                      s.catalog.snapshot(job.snapshot_id.value_or(""))};

    const Recovery outcome = job_kind(job.kind).recover(r);

    job.recovered = true;
    job.finished_at = now_ms();
    job.state = outcome.error ? JobState::failed : JobState::succeeded;
    job.error = outcome.error;
    job.progress = {to_string(phase_of(job.state)), outcome.error ? std::nullopt : std::optional<int>(100)};
    s.catalog.update_job(job);
    s.sink.job_updated(job);
    s.metrics.job_ended(job.kind, job.state);
    spdlog::warn("job={} {} recovered as {}{}{}.", job.id, to_string(job.kind), to_string(job.state),
                 outcome.note.empty() ? "" : ": ", outcome.note);
    if (r.domain) s.reconciler.sync_instance(job.instance.uuid);
}

}  // namespace

ErrorInfo interrupted(bool started, const std::string& if_started) {
    return {"interrupted", started ? if_started : "snapvirtd stopped before the job started; nothing was done."};
}

bool RecoveryContext::in_libvirt(const std::string& name) const {
    return std::any_of(live.begin(), live.end(), [&](const auto& s) { return s.name == name; });
}

std::string RecoveryContext::param(const char* key, const std::string& fallback) const {
    return params.is_object() ? params.value(key, fallback) : fallback;
}

std::string RecoveryContext::intent_text(const char* key) const {
    return intent.is_object() ? intent.value(key, std::string()) : std::string();
}

void recover_jobs(JobServices& s, bool first) {
    const auto orphans = s.queue.orphans();
    for (const auto& a : orphans) {
        auto rec = s.catalog.job(a->id);
        if (!rec || rec->job.terminal()) {
            s.queue.release(a);
            s.publish_instance(a->instance_uuid);
            continue;
        }
        try {
            recover_job(s, *rec);
        } catch (const hv::Error& err) {
            if (err.kind() == hv::Error::Kind::unavailable) throw;  // again at the next connection
            spdlog::error("job={} recovery failed: {}", a->id, err.what());
            rec->job.state = JobState::failed;
            rec->job.finished_at = now_ms();
            rec->job.recovered = true;
            rec->job.error = ErrorInfo{"interrupted", std::string("Recovery after a restart failed: ") + err.what()};
            s.catalog.update_job(rec->job);
            s.sink.job_updated(rec->job);
        }
        s.queue.release(a);
        s.publish_instance(a->instance_uuid);
    }
    if (first)
        spdlog::info("Recovery done: {} unfinished job(s) brought to an end.", orphans.size());
}

}  // namespace snapvirt::daemon
