#pragma once
// Shared by the OpenAPI tests: the document from the source tree, and a router with every
// route of api::add_routes (metrics, the document and the web page switched on) over a stub
// backend whose methods answer empty objects.

#include "api/routes.hpp"

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace snapvirt::openapi_test {

inline std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

inline std::string document_path() { return std::string(SNAPVIRT_SOURCE_DIR) + "/api/openapi.json"; }
inline nlohmann::json document() { return nlohmann::json::parse(read_text(document_path())); }

class StubBackend final : public api::Backend {
public:
    std::vector<api::Instance> list_instances() override { return {}; }
    api::Instance get_instance(const std::string&) override { return {}; }
    std::vector<api::Snapshot> list_instance_snapshots(const std::string&) override { return {}; }
    api::Page<api::Snapshot> list_snapshots(const api::SnapshotQuery&) override { return {}; }
    api::Snapshot get_snapshot(const std::string&) override { return {}; }
    api::CreateSnapshotResult create_snapshot(const std::string&, const api::CreateSnapshotRequest&) override { return {}; }
    api::Snapshot edit_snapshot(const std::string&, const api::EditSnapshotRequest&) override { return {}; }
    api::Job revert_snapshot(const std::string&, const api::RevertRequest&) override { return {}; }
    api::Job delete_snapshot(const std::string&, bool) override { return {}; }
    api::Page<api::Job> list_jobs(const api::JobQuery&) override { return {}; }
    api::Job get_job(const std::string&) override { return {}; }
    api::Job cancel_job(const std::string&) override { return {}; }
    std::vector<api::Schedule> list_instance_schedules(const std::string&) override { return {}; }
    api::Page<api::Schedule> list_schedules(const api::ScheduleQuery&) override { return {}; }
    api::Schedule get_schedule(const std::string&) override { return {}; }
    api::Schedule create_schedule(const std::string&, const api::ScheduleRequest&) override { return {}; }
    api::Schedule edit_schedule(const std::string&, const api::ScheduleRequest&) override { return {}; }
    void delete_schedule(const std::string&, bool) override {}
    api::Readiness readiness() override { return {true, ""}; }
    api::Host host() override {
        api::Host h;
        h.hostname = "hv1";
        h.libvirt_version = "9.0.0";
        h.qemu_version = "7.2.0";
        h.snapvirt_version = "0.1.0";
        h.capabilities = {{SnapshotMode::memory, SnapshotMode::stopped}, {SnapshotMethod::internal}, false};
        return h;
    }
    std::optional<api::StoredResponse> find_idempotent(const std::string&) override { return std::nullopt; }
    void remember_idempotent(const std::string&, const api::StoredResponse&) override {}
    api::Scope authenticate(const std::string&) override { return api::Scope::write; }
};

// Every route the daemon can have: add_routes adds /metrics, /openapi.json, / and /ui/{asset}
// only when their options are set, and snapvirtd sets them all.
inline api::RouteOptions all_route_options() {
    api::RouteOptions o;
    o.version = "test";
    o.metrics = [] { return std::string("# none\n"); };
    o.openapi_json = "{}";
    o.web = [](const api::Request&) {
        api::Response r;
        r.content_type = "text/html; charset=utf-8";
        r.body = "<!doctype html>";
        return r;
    };
    return o;
}

}  // namespace snapvirt::openapi_test
