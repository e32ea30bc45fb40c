// A mutation refused for want of a token or of the write scope changes nothing: not in the
// catalog, not in the job list, not in libvirt (a real QEMU guest).

#include "tests/e2e/helpers.hpp"
#include "tests/security/security_support.hpp"

#include <thread>

using namespace snapvirt;
using namespace snapvirt::sec;
using namespace snapvirt::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

json jobs_of(const client::Client& c, const std::string& instance) {
    auto r = c.get("/v1/jobs?instance=" + client::escape(instance));
    REQUIRE(r.status == 200);
    return r.json()["items"];
}

}  // namespace

TEST_CASE("A refused mutation changes nothing in libvirt", "[security][auth][libvirt]") {
    TestGuest g;
    Daemon d;
    const auto admin = d.client();
    const std::string read = create_token(d.state_dir(), "read", "viewer");
    REQUIRE(eventually([&] { return d.client(read).get("/v1/instances").status == 200; }, 2s, 50ms));
    const std::string bogus = "svt_" + std::string(43, 'B');
    const std::string inst = "/v1/instances/" + client::escape(g.name());

    // Create: memory and (the one that would stop the guest) stopped with force_stop.
    for (const auto& token : {std::string(), bogus, read}) {
        INFO("token: " << (token.empty() ? "none" : token == read ? "read" : "bogus"));
        const auto c = d.client(token);
        const int expected = token == read ? 403 : 401;
        CHECK(c.post(inst + "/snapshots", {{"mode", "memory"}, {"name", "refused-1"}}).status == expected);
        CHECK(c.post(inst + "/snapshots", {{"mode", "stopped"}, {"force_stop", true}, {"shutdown_timeout_s", 1}})
                  .status == expected);
        CHECK(c.post(inst + "/snapshots", {{"mode", "memory"}}, {{"Idempotency-Key", "refused-key"}}).status == expected);
    }
    CHECK(g.snapshot_count() == 0);
    CHECK(!g.has_snapshot("refused-1"));
    CHECK(g.state() == "running");
    CHECK(snapshots_of(admin, g.name()).empty());
    CHECK(jobs_of(admin, g.name()).empty());
    // The refused Idempotency-Key was not remembered: the same key now makes a real job.
    const auto first = admin.post(inst + "/snapshots", {{"mode", "memory"}, {"name", "allowed-1"}},
                                  {{"Idempotency-Key", "refused-key"}});
    INFO(first.body);
    REQUIRE(first.status == 202);
    CHECK(first.header("idempotent-replayed") == nullptr);
    const auto job = wait_job(admin, first.json()["job"]["id"]);
    REQUIRE(job["state"] == "succeeded");
    const std::string snap_id = first.json()["snapshot"]["id"];
    REQUIRE(g.snapshot_count() == 1);

    // Edit, revert, delete, cancel of that snapshot and its job: all refused, nothing moves.
    const std::string before = admin.get("/v1/snapshots/" + snap_id).json().dump();
    const auto current = g.current_snapshot();
    for (const auto& token : {std::string(), bogus, read}) {
        INFO("token: " << (token.empty() ? "none" : token == read ? "read" : "bogus"));
        const auto c = d.client(token);
        const int expected = token == read ? 403 : 401;
        CHECK(c.patch("/v1/snapshots/" + snap_id, {{"display_name", "renamed"}, {"description", "x"}}).status == expected);
        CHECK(c.post("/v1/snapshots/" + snap_id + "/revert", {{"start", "paused"}, {"force", true}}).status == expected);
        CHECK(c.del("/v1/snapshots/" + snap_id).status == expected);
        CHECK(c.del("/v1/snapshots/" + snap_id + "?children=true").status == expected);
        CHECK(c.post("/v1/jobs/" + job["id"].get<std::string>() + "/cancel", nullptr).status == expected);
    }
    std::this_thread::sleep_for(500ms);
    CHECK(admin.get("/v1/snapshots/" + snap_id).json().dump() == before);
    CHECK(jobs_of(admin, g.name()).size() == 1);
    CHECK(g.snapshot_count() == 1);
    CHECK(g.has_snapshot("allowed-1"));
    CHECK(g.current_snapshot() == current);
    CHECK(g.state() == "running");
    check_log_hygiene(d.log(), {d.token(), read});
}
