// libvirtd going away and coming back while snapvirtd runs. These tests stop and start the
// libvirtd of the private stack scripts/test made for them (SNAPVIRT_STACK_DIR), never the
// host's, and run alone (RUN_SERIAL).

#include "tests/e2e/helpers.hpp"
#include "tests/support/libvirtd.hpp"

using namespace snapvirt;
using namespace snapvirt::test;
using namespace std::chrono_literals;

namespace {

// Starts libvirtd again however a test ends.
struct LibvirtdBack {
    ~LibvirtdBack() {
        try {
            libvirtd("start");
        } catch (...) {
        }
    }
};

nlohmann::json instance_of(const client::Client& c, const std::string& name) {
    const auto listed = c.get("/v1/instances").json();
    for (const auto& i : listed["items"])
        if (i["name"] == name) return i;
    return nullptr;
}

}  // namespace

TEST_CASE("libvirtd stopping and starting: 503 at once, reads from the catalog, recovery without restart",
          "[e2e][outage]") {
    TestGuest g({.tag = "outage"});
    g.wait_booted();
    Daemon d;
    auto c = d.client();
    REQUIRE(eventually([&] { return !instance_of(c, g.name()).is_null(); }, 10s));
    auto before = take_snapshot(c, g.name(), {{"mode", "memory"}, {"name", "before-outage"}});
    REQUIRE(before.job["state"] == "succeeded");

    LibvirtdBack restore;
    libvirtd("stop");
    const auto stopped_at = std::chrono::steady_clock::now();
    REQUIRE(eventually([&] { return c.get("/readyz").status == 503; }, 10s));
    CHECK(std::chrono::steady_clock::now() - stopped_at < 10s);
    auto ready = c.get("/readyz");
    CHECK(error_code(ready) == "hypervisor_unavailable");
    CHECK_THAT(ready.json()["error"]["message"].get<std::string>(), Catch::Contains("libvirt"));

    // Mutations are refused at once; reads keep answering from the catalog, marked stale.
    auto t0 = std::chrono::steady_clock::now();
    auto create = c.post("/v1/instances/" + g.name() + "/snapshots", {{"mode", "memory"}});
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
    CHECK(create.status == 503);
    CHECK(error_code(create) == "hypervisor_unavailable");
    auto revert = c.post("/v1/snapshots/" + before.snapshot["id"].get<std::string>() + "/revert", nlohmann::json::object());
    CHECK(revert.status == 503);
    t0 = std::chrono::steady_clock::now();
    auto listed = c.get("/v1/instances");
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
    REQUIRE(listed.status == 200);
    const auto inst = instance_of(c, g.name());
    CHECK(inst["stale"] == true);
    CHECK(inst["state"] == "running");  // the last state seen
    auto snaps = snapshots_of(c, g.name());
    REQUIRE(snaps.size() == 1);
    CHECK(snaps[0]["name"] == "before-outage");
    CHECK(c.get("/v1/jobs").status == 200);

    libvirtd("start");
    const auto started_at = std::chrono::steady_clock::now();
    REQUIRE(eventually([&] { return c.get("/readyz").status == 200; }, 10s));
    CHECK(std::chrono::steady_clock::now() - started_at < 10s);
    CHECK_FALSE(instance_of(c, g.name()).contains("stale"));

    // Events flow again: a lifecycle change shows in the instance's state.
    g.destroy();
    CHECK(eventually([&] { return instance_of(c, g.name())["state"] == "shutoff"; }, 10s));
    // And mutations work again.
    auto after = take_snapshot(c, g.name(), {{"mode", "stopped"}, {"name", "after-outage"}});
    CHECK(after.job["state"] == "succeeded");
}

TEST_CASE("libvirtd stopping in the middle of a job: the job waits, then recovery ends it", "[e2e][outage]") {
    TestGuest g({.tag = "midjob"});
    g.wait_booted();
    Daemon d;
    auto c = d.client();
    auto accepted = c.post("/v1/instances/" + g.name() + "/snapshots", {{"mode", "stopped"}, {"shutdown_timeout_s", 60}});
    REQUIRE(accepted.status == 202);
    const std::string id = accepted.json()["job"]["id"];
    REQUIRE(eventually([&] { return c.get("/v1/jobs/" + id).json()["progress"]["phase"] == "shutting_down"; }, 10s, 20ms));

    LibvirtdBack restore;
    libvirtd("stop");
    REQUIRE(eventually([&] { return c.get("/readyz").status == 503; }, 10s));
    // Reads answer within their deadline; the job is not stuck, it waits for libvirt.
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(c.get("/v1/jobs/" + id).status == 200);
    CHECK(c.get("/v1/instances/" + g.name()).status == 200);
    CHECK(std::chrono::steady_clock::now() - t0 < 3s);
    REQUIRE(eventually([&] { return c.get("/v1/jobs/" + id).json()["progress"]["phase"] == "waiting_for_libvirt"; }, 10s));

    libvirtd("start");
    REQUIRE(eventually([&] { return c.get("/readyz").status == 200; }, 10s));
    nlohmann::json job;
    REQUIRE(eventually(
        [&] {
            job = c.get("/v1/jobs/" + id).json();
            return job["state"] == "failed" || job["state"] == "succeeded";
        },
        20s));
    INFO(job.dump());
    CHECK(job["state"] == "failed");
    CHECK(job["recovered"] == true);
    CHECK(g.state() == "running");
    CHECK(snapshots_of(c, g.name()).empty());
    CHECK(g.snapshot_count() == 0);
    CHECK(c.get("/v1/instances/" + g.name()).json()["busy_job_id"].is_null());
}

TEST_CASE("A libvirtd restart during a memory save does not leave the guest paused", "[e2e][outage]") {
    TestGuest g({.tag = "savekill", .memory_mib = 256, .fill_mib = 200});
    g.wait_booted();
    Daemon d;
    auto c = d.client();
    auto accepted = c.post("/v1/instances/" + g.name() + "/snapshots", {{"mode", "memory"}, {"name", "interrupted"}});
    REQUIRE(accepted.status == 202);
    const std::string id = accepted.json()["job"]["id"];
    REQUIRE(eventually([&] { return c.get("/v1/jobs/" + id).json()["progress"]["phase"] == "saving"; }, 20s, 5ms));
    {
        LibvirtdBack restore;
        libvirtd("stop");
    }
    REQUIRE(eventually([&] { return c.get("/readyz").status == 200; }, 20s));
    nlohmann::json job;
    REQUIRE(eventually(
        [&] {
            job = c.get("/v1/jobs/" + id).json();
            return job["state"] == "failed" || job["state"] == "succeeded";
        },
        60s));
    INFO(job.dump());
    CHECK(eventually([&] { return g.state() == "running"; }, 20s));
    CHECK(c.get("/v1/instances/" + g.name()).json()["state"] == "running");
    // The catalog and libvirt agree on whether the snapshot exists.
    const bool in_catalog = !snapshots_of(c, g.name()).empty();
    CHECK(in_catalog == g.has_snapshot("interrupted"));
    CHECK(job["state"] == (in_catalog ? "succeeded" : "failed"));
}
