#include "api/json.hpp"

#include <ctime>

namespace snapvirt::api {

namespace {

nlohmann::json ref(const InstanceRef& r) { return {{"uuid", r.uuid}, {"name", r.name}}; }

template <class T>
nlohmann::json nullable(const std::optional<T>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json error_json(const std::optional<ErrorInfo>& e) {
    if (!e) return nullptr;
    return {{"code", e->code}, {"message", e->message}};
}

nlohmann::json time_json(const std::optional<TimeMs>& t) {
    return t ? nlohmann::json(format_time(*t)) : nlohmann::json(nullptr);
}

}  // namespace

std::string format_time(TimeMs t) {
    const std::time_t secs = static_cast<std::time_t>(t / 1000);
    const int ms = static_cast<int>(((t % 1000) + 1000) % 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    return buf;
}

nlohmann::json to_json(const Instance& i) {
    nlohmann::json j = {
        {"uuid", i.uuid},
        {"name", i.name},
        {"state", i.state},
        {"memory_mib", i.memory_mib},
        {"vcpus", i.vcpus},
        {"snapshot_count", i.snapshot_count},
        {"current_snapshot_id", nullable(i.current_snapshot_id)},
        {"busy_job_id", nullable(i.busy_job_id)},
    };
    if (i.stale) j["stale"] = true;
    if (!i.present) j["defined"] = false;
    return j;
}

nlohmann::json to_json(const Snapshot& s) {
    return {
        {"id", s.id},
        {"instance", ref(s.instance)},
        {"name", s.name},
        {"display_name", s.display_name},
        {"description", s.description},
        {"mode", s.mode},
        {"state", s.state},
        {"parent_id", nullable(s.parent_id)},
        {"is_current", s.is_current},
        {"created_at", format_time(s.created_at)},
        {"size_bytes", nullable(s.size_bytes)},
        {"guest_paused_ms", nullable(s.guest_paused_ms)},
        {"origin", s.origin},
        {"error", error_json(s.error)},
    };
}

nlohmann::json to_json(const Job& j) {
    nlohmann::json out = {
        {"id", j.id},
        {"kind", j.kind},
        {"instance", ref(j.instance)},
        {"snapshot_id", nullable(j.snapshot_id)},
        {"state", j.state},
        {"progress", {{"phase", j.progress.phase}, {"percent", nullable(j.progress.percent)}}},
        {"created_at", format_time(j.created_at)},
        {"started_at", time_json(j.started_at)},
        {"finished_at", time_json(j.finished_at)},
        {"error", error_json(j.error)},
    };
    if (j.recovered) out["recovered"] = true;
    return out;
}

std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

}  // namespace snapvirt::api
