// What a control plane relies on, against the real daemon and QEMU: the event stream through a
// whole create → revert → delete sequence with a resume, idempotent retries across a restart,
// and the metrics it scrapes.

#include "tests/e2e/helpers.hpp"

#include <regex>
#include <thread>

using namespace snapvirt;
using namespace snapvirt::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

struct Seen {
    std::string id;
    std::string type;
    json data;
};

// Reads events until `done` says so or `timeout` passes.
std::vector<Seen> read_until(client::Connection& stream, const std::function<bool(const Seen&)>& done,
                             std::chrono::seconds timeout) {
    std::vector<Seen> out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        auto ev = stream.next_event(1s);
        if (!ev) continue;
        out.push_back({ev->id, ev->type, json::parse(ev->data)});
        if (done(out.back())) break;
    }
    return out;
}

bool job_ended(const Seen& e, const std::string& job_id) {
    return e.type == "job.updated" && e.data["id"] == job_id &&
           (e.data["state"] == "succeeded" || e.data["state"] == "failed");
}

}  // namespace

TEST_CASE("The event stream follows create, revert and delete, and resumes after a disconnect", "[e2e][events]") {
    TestGuest g({.tag = "sse"});
    g.wait_booted();
    Daemon d;
    auto c = d.client();
    const client::Headers auth = {{"Authorization", "Bearer " + d.token()}};

    auto stream = std::make_unique<client::Connection>(d.url());
    REQUIRE(stream->open_stream("/v1/events", auth).status == 200);

    // Create: the snapshot appears as creating, the job runs through its phases, ends, and the
    // snapshot turns ready.
    auto created = c.post("/v1/instances/" + g.name() + "/snapshots", {{"mode", "memory"}, {"name", "ev"}});
    REQUIRE(created.status == 202);
    const std::string create_job = created.json()["job"]["id"], snap = created.json()["snapshot"]["id"];
    auto events = read_until(*stream, [&](const Seen& e) { return job_ended(e, create_job); }, 60s);
    std::vector<std::string> phases;
    bool saw_created = false, saw_instance_busy = false;
    for (const auto& e : events) {
        if (e.type == "snapshot.created" && e.data["id"] == snap) {
            saw_created = true;
            CHECK(e.data["state"] == "creating");
        }
        if (e.type == "job.updated" && e.data["id"] == create_job) phases.push_back(e.data["progress"]["phase"]);
        if (e.type == "instance.updated" && e.data["busy_job_id"] == create_job) saw_instance_busy = true;
    }
    CHECK(saw_created);
    CHECK(saw_instance_busy);
    REQUIRE_FALSE(phases.empty());
    CHECK(phases.front() == "queued");
    CHECK(std::find(phases.begin(), phases.end(), "saving") != phases.end());
    CHECK(phases.back() == "succeeded");
    // Ids increase.
    for (std::size_t i = 1; i < events.size(); ++i) CHECK(std::stoull(events[i].id) > std::stoull(events[i - 1].id));
    auto ready = read_until(*stream, [&](const Seen& e) { return e.type == "snapshot.updated" && e.data["id"] == snap && e.data["state"] == "ready"; }, 10s);
    const std::string last_seen = events.back().id;

    // Disconnect; meanwhile revert and delete run.
    stream.reset();
    auto revert = run_job(c, c.post("/v1/snapshots/" + snap + "/revert", json::object()));
    REQUIRE(revert["state"] == "succeeded");
    auto del = run_job(c, c.del("/v1/snapshots/" + snap));
    REQUIRE(del["state"] == "succeeded");

    // Resume after the last event seen: everything since comes, in order, nothing twice.
    client::Connection resumed(d.url());
    client::Headers h = auth;
    h.emplace_back("Last-Event-ID", last_seen);
    REQUIRE(resumed.open_stream("/v1/events", h).status == 200);
    auto missed = read_until(resumed, [&](const Seen& e) { return e.type == "snapshot.deleted" && e.data["id"] == snap; }, 30s);
    REQUIRE_FALSE(missed.empty());
    CHECK(std::stoull(missed.front().id) > std::stoull(last_seen));
    bool revert_done = false, deleted = false;
    for (const auto& e : missed) {
        if (job_ended(e, revert["id"])) revert_done = true;
        if (e.type == "snapshot.deleted" && e.data["id"] == snap) deleted = true;
    }
    CHECK(revert_done);
    CHECK(deleted);
    (void)ready;
}

TEST_CASE("A retried POST with the same Idempotency-Key gets the first answer, also after a restart", "[e2e][idempotency]") {
    TestGuest g({.tag = "idem", .running = false});
    Daemon d;
    auto c = d.client();
    const json body = {{"mode", "stopped"}, {"name", "once"}};
    auto first = c.post("/v1/instances/" + g.name() + "/snapshots", body, {{"Idempotency-Key", "cp-retry-1"}});
    REQUIRE(first.status == 202);
    const std::string job = first.json()["job"]["id"];
    wait_job(c, job);

    d.restart();
    c = d.client();
    auto retry = c.post("/v1/instances/" + g.name() + "/snapshots", body, {{"Idempotency-Key", "cp-retry-1"}});
    CHECK(retry.status == 202);
    CHECK(retry.json()["job"]["id"] == job);
    CHECK(*retry.header("location") == "/v1/jobs/" + job);
    CHECK(retry.header("idempotent-replayed") != nullptr);
    CHECK(snapshots_of(c, g.name()).size() == 1);
    CHECK(g.snapshot_count() == 1);

    auto other = c.post("/v1/instances/" + g.name() + "/snapshots", {{"mode", "stopped"}, {"name", "twice"}},
                        {{"Idempotency-Key", "cp-retry-1"}});
    CHECK(other.status == 409);
    CHECK(error_code(other) == "idempotency_conflict");
    CHECK(g.snapshot_count() == 1);

    // A revert retried with its key is one revert.
    const std::string snap = snapshots_of(c, g.name())[0]["id"];
    auto r1 = c.post("/v1/snapshots/" + snap + "/revert", json::object(), {{"Idempotency-Key", "cp-revert-1"}});
    REQUIRE(r1.status == 202);
    auto r2 = c.post("/v1/snapshots/" + snap + "/revert", json::object(), {{"Idempotency-Key", "cp-revert-1"}});
    CHECK(r2.json()["job"]["id"] == r1.json()["job"]["id"]);
    wait_job(c, r1.json()["job"]["id"]);
    const auto jobs = c.get("/v1/jobs?instance=" + g.name() + "&kind=revert").json();
    CHECK(jobs["items"].size() == 1);
}

TEST_CASE("Metrics show requests, jobs, durations, guest pauses, libvirt and the catalog", "[e2e][metrics]") {
    TestGuest g({.tag = "metrics"});
    g.wait_booted();
    Daemon d;
    auto c = d.client();
    auto taken = take_snapshot(c, g.name(), {{"mode", "memory"}, {"name", "m"}});
    REQUIRE(taken.job["state"] == "succeeded");
    run_job(c, c.post("/v1/snapshots/" + taken.snapshot["id"].get<std::string>() + "/revert", json::object()));
    c.get("/v1/nothing-here");

    auto r = c.get("/metrics");
    REQUIRE(r.status == 200);
    CHECK(r.header("content-type")->find("text/plain") == 0);
    const std::string m = r.body;
    CHECK_THAT(m, Catch::Contains("snapvirt_http_requests_total{method=\"POST\",route=\"/v1/instances/{instance}/snapshots\",status=\"202\"} 1"));
    CHECK_THAT(m, Catch::Contains("route=\"unmatched\",status=\"404\"} 1"));
    CHECK_THAT(m, Catch::Contains("snapvirt_http_request_duration_seconds_bucket{method=\"GET\""));
    CHECK_THAT(m, Catch::Contains("snapvirt_jobs_total{kind=\"create\",outcome=\"succeeded\"} 1"));
    CHECK_THAT(m, Catch::Contains("snapvirt_jobs_total{kind=\"revert\",outcome=\"succeeded\"} 1"));
    CHECK_THAT(m, Catch::Contains("snapvirt_create_duration_seconds_count{mode=\"memory\",method=\"internal\"} 1"));
    CHECK_THAT(m, Catch::Contains("snapvirt_revert_duration_seconds_count 1"));
    CHECK_THAT(m, Catch::Contains("snapvirt_guest_paused_seconds_count{method=\"internal\"} 1"));
    CHECK_THAT(m, Catch::Contains("snapvirt_libvirt_connected 1"));
    // The daemon sees every domain of the host, other tests' too: at least this guest's snapshot.
    std::smatch count;
    REQUIRE(std::regex_search(m, count, std::regex("\nsnapvirt_catalog_snapshots (\\d+)\n")));
    CHECK(std::stoi(count[1]) >= 1);
    // The read scope may scrape; no token may not.
    CHECK(d.client("").get("/metrics").status == 401);
}
