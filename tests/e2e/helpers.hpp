#pragma once
// Small helpers shared by the end-to-end tests.

#include "tests/support/daemon.hpp"
#include "tests/support/guest.hpp"

#include "tests/support/catch.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <set>
#include <string>

namespace snapvirt::test {

// A directory of the test's own for a guest's disk and everything snapshots put beside it;
// removed after the guest (declare it first).
struct OwnDir {
    std::filesystem::path path = make_temp_dir("snapvirt-ext-e2e");
    ~OwnDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

// Whether the stack's libvirt reverts external snapshots (9.7 and later), as GET /v1/host says.
inline bool external_revert(const client::Client& c) {
    auto host = c.get("/v1/host");
    REQUIRE(host.status == 200);
    return host.json()["capabilities"]["external_revert"].get<bool>();
}

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

// A reverted memory snapshot brought the guest's RAM back: its tick counter, read before the
// snapshot, right after it, before the revert and after it, went back to near its value at the
// snapshot (within `slack` ticks).
inline void check_counter_back(std::uint64_t before, std::uint64_t at_snapshot, std::uint64_t before_revert,
                               std::uint64_t after_revert, std::uint64_t slack) {
    INFO("before=" << before << " at_snapshot=" << at_snapshot << " before_revert=" << before_revert
                   << " after_revert=" << after_revert);
    CHECK(after_revert < before_revert);
    CHECK(after_revert >= before);
    CHECK(after_revert < at_snapshot + slack);
}

// ---- crash recovery: SIGKILL at a named point of a job -----------------------------------------

inline std::set<std::string> catalog_names(const client::Client& c, const std::string& instance, bool ready_only) {
    std::set<std::string> names;
    for (const auto& s : snapshots_of(c, instance))
        if (!ready_only || s["state"] == "ready") names.insert(s["name"].get<std::string>());
    return names;
}

inline std::set<std::string> libvirt_names(const TestGuest& g, const std::set<std::string>& candidates) {
    std::set<std::string> names;
    for (const auto& n : candidates)
        if (g.has_snapshot(n)) names.insert(n);
    return names;
}

// After recovery: every job terminal, catalog and libvirt agree snapshot by snapshot.
inline void check_consistent(const client::Client& c, const TestGuest& g, const std::set<std::string>& all_names) {
    const auto jobs = c.get("/v1/jobs?instance=" + g.name()).json();
    for (const auto& j : jobs["items"]) {
        INFO(j.dump());
        CHECK((j["state"] == "succeeded" || j["state"] == "failed" || j["state"] == "cancelled"));
    }
    for (const auto& s : snapshots_of(c, g.name())) {
        INFO(s.dump());
        CHECK(s["state"] == "ready");
    }
    CHECK(catalog_names(c, g.name(), false) == libvirt_names(g, all_names));
    CHECK(static_cast<int>(catalog_names(c, g.name(), false).size()) == g.snapshot_count());
}

// Starts the daemon with a pause at `point`, runs `begin` (which starts a job and returns its
// id), kills the daemon with SIGKILL while it waits at that point, restarts it and returns the
// job as recovery finished it.
inline nlohmann::json kill_at(Daemon& d, const std::string& point, const std::function<std::string()>& begin) {
    const std::string id = begin();
    REQUIRE(eventually([&] { return d.log().find("at '" + point + "'") != std::string::npos; }, std::chrono::seconds(60), std::chrono::milliseconds(20)));
    d.kill();
    d.options().env.clear();
    d.start();
    auto c = d.client();
    nlohmann::json job;
    REQUIRE(eventually(
        [&] {
            job = c.get("/v1/jobs/" + id).json();
            return job["state"] != "queued" && job["state"] != "running";
        },
        std::chrono::seconds(30)));
    return job;
}

inline DaemonOptions delayed(const std::string& point) {
    DaemonOptions o;
    o.env["SNAPVIRT_TEST_DELAYS"] = point + "=30000";
    return o;
}

inline std::string start_job(const client::Client& c, const std::string& method, const std::string& target,
                      const nlohmann::json& body = nlohmann::json::object()) {
    auto r = c.send(method, target, method == "DELETE" ? std::string() : body.dump(), {});
    INFO(r.body);
    REQUIRE(r.status == 202);
    return r.json()["job"]["id"];
}

}  // namespace snapvirt::test
