#pragma once
// Small helpers shared by the end-to-end tests.

#include "tests/support/daemon.hpp"
#include "tests/support/guest.hpp"

#include "tests/support/catch.hpp"

namespace snapvirt::test {

inline std::string error_code(const client::Response& r) {
    auto j = r.json();
    return j.contains("error") ? j["error"]["code"].get<std::string>() : std::string();
}

// POSTs a snapshot request and waits for its job; returns {job, snapshot} as the API shows them
// after the job.
struct Taken {
    nlohmann::json job;
    nlohmann::json snapshot;
};

inline Taken take_snapshot(const client::Client& c, const std::string& instance, const nlohmann::json& body) {
    auto r = c.post("/v1/instances/" + client::escape(instance) + "/snapshots", body);
    INFO(r.body);
    REQUIRE(r.status == 202);
    auto created = r.json();
    REQUIRE(*r.header("location") == "/v1/jobs/" + created["job"]["id"].get<std::string>());
    Taken t;
    t.job = wait_job(c, created["job"]["id"]);
    auto s = c.get("/v1/snapshots/" + created["snapshot"]["id"].get<std::string>());
    t.snapshot = s.status == 200 ? s.json() : nlohmann::json();
    return t;
}

inline nlohmann::json run_job(const client::Client& c, const client::Response& accepted) {
    INFO(accepted.body);
    REQUIRE(accepted.status == 202);
    return wait_job(c, accepted.json()["job"]["id"]);
}

inline nlohmann::json snapshots_of(const client::Client& c, const std::string& instance) {
    auto r = c.get("/v1/instances/" + client::escape(instance) + "/snapshots");
    REQUIRE(r.status == 200);
    return r.json()["items"];
}

}  // namespace snapvirt::test
