// Exercises every endpoint of the built snapvirtd against real QEMU guests and records each
// answer (tests/openapi/recorder.hpp); validate.mjs then checks every recorded answer against
// api/openapi.json. Also runs `promtool check metrics` on the live /metrics output.

#include "tests/openapi/recorder.hpp"
#include "tests/support/daemon.hpp"
#include "tests/support/guest.hpp"

#include "tests/support/catch.hpp"

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <set>
#include <thread>

using namespace snapvirt;
using namespace snapvirt::test;
using namespace snapvirt::openapi_test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

std::string error_code(const client::Response& r) {
    try {
        auto j = r.json();
        return j.contains("error") ? j["error"]["code"].get<std::string>() : std::string();
    } catch (const std::exception&) {
        return {};
    }
}

// Runs a command, returns its exit status and (in `output`) what it printed.
int run(const std::string& command, std::string* output = nullptr) {
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    REQUIRE(p);
    std::string out;
    char buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    const int status = ::pclose(p);
    if (output) *output = out;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// `snapvirtd token create` prints the token alone on its last line.
std::string create_token(const Daemon& d, const std::string& scope, const std::string& name) {
    std::string out;
    // --state-dir belongs to snapvirtd itself, before the subcommand.
    const int rc = run(Daemon::binary().string() + " --state-dir " + d.state_dir().string() + " token create --scope " +
                           scope + " --name " + name,
                       &out);
    INFO(out);
    REQUIRE(rc == 0);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    const auto nl = out.rfind('\n');
    return nl == std::string::npos ? out : out.substr(nl + 1);
}

bool terminal(const json& job) {
    const std::string s = job.value("state", "");
    return s == "succeeded" || s == "failed" || s == "cancelled";
}

// Long-polls a job through the recorder until it ends.
json wait_recorded(Recorder& rec, const client::Client& c, const std::string& id) {
    const auto deadline = std::chrono::steady_clock::now() + 180s;
    json job;
    while (std::chrono::steady_clock::now() < deadline) {
        auto r = rec.get(c, "/v1/jobs/" + id + "?wait=30");
        REQUIRE(r.status == 200);
        job = r.json();
        if (terminal(job)) {
            // The instance is released just after its job is seen to end; what follows waits for that.
            const std::string instance = "/v1/instances/" + job["instance"]["uuid"].get<std::string>();
            CHECK(eventually([&] { return c.get(instance).json()["busy_job_id"].is_null(); }, 10s, 20ms));
            return job;
        }
    }
    FAIL("job " << id << " did not end: " << job.dump());
    return job;
}

std::string job_id(const client::Response& r) {
    auto j = r.json();
    return j.contains("job") ? j["job"]["id"].get<std::string>() : j["id"].get<std::string>();
}

}  // namespace

TEST_CASE("Every endpoint answers a real guest as the document says", "[openapi][e2e]") {
    TestGuest g({.tag = "oa", .memory_mib = 64, .fill_mib = 8});
    TestGuest off({.tag = "oaoff", .memory_mib = 64, .fill_mib = 8, .running = false});
    g.wait_booted();
    // A small body limit, so that the 413 below needs no large body (which the server would leave unread).
    Daemon d({.config = "[server]\nmax_body_bytes = 4096\n"});
    Recorder rec("endpoints");
    const auto c = d.client();
    const auto unix_c = d.unix_client();
    const client::Client anonymous(d.url());
    const client::Client bad_token(d.url(), "not-a-token");
    const client::Client reader(d.url(), create_token(d, "read", "openapi-reader"));
    const std::string gi = "/v1/instances/" + client::escape(g.name());
    const std::string oi = "/v1/instances/" + client::escape(off.name());
    const std::string none = "00000000-0000-4000-8000-000000000000";

    // ---- operations, web, instances
    CHECK(rec.get(anonymous, "/healthz").status == 200);
    CHECK(rec.get(anonymous, "/readyz").status == 200);
    CHECK(rec.get(anonymous, "/openapi.json").status == 200);
    CHECK(rec.get(anonymous, "/").status == 200);
    CHECK(rec.get(anonymous, "/ui/index.html").status == 200);
    CHECK(rec.get(anonymous, "/ui/no-such-asset.css").status == 404);
    CHECK(rec.get(c, "/metrics").status == 200);
    CHECK(rec.get(reader, "/metrics").status == 200);
    auto host = rec.get(c, "/v1/host");
    CHECK(host.status == 200);
    CHECK_FALSE(host.json()["libvirt_version"].is_null());
    CHECK(rec.get(reader, "/v1/host").status == 200);
    CHECK(rec.get(c, "/v1/instances").status == 200);
    CHECK(rec.get(unix_c, "/v1/instances").status == 200);
    CHECK(rec.get(reader, "/v1/instances").status == 200);
    CHECK(rec.get(c, gi).status == 200);
    CHECK(rec.get(c, "/v1/instances/" + g.uuid()).status == 200);
    CHECK(rec.get(c, oi).status == 200);
    CHECK(rec.get(c, "/v1/instances/no-such-instance-oa").status == 404);
    CHECK(rec.get(c, "/v1/instances/no-such-instance-oa/snapshots").status == 404);
    CHECK(rec.get(c, gi + "/snapshots").status == 200);

    // ---- a memory snapshot, with an Idempotency-Key
    const json memory_body = {{"mode", "memory"}, {"name", "oa-mem"}, {"display_name", "OpenAPI memory"},
                              {"description", "recorded\tby the OpenAPI test\n"}};
    auto created = rec.post(c, gi + "/snapshots", memory_body, {{"Idempotency-Key", "oa-key-1"}});
    INFO(created.body);
    REQUIRE(created.status == 202);
    const std::string mem_job = job_id(created);
    const std::string mem_id = created.json()["snapshot"]["id"];
    auto replay = rec.post(c, gi + "/snapshots", memory_body, {{"Idempotency-Key", "oa-key-1"}});
    CHECK(replay.status == 202);
    CHECK(replay.header("idempotent-replayed"));
    CHECK(job_id(replay) == mem_job);
    auto conflict = rec.post(c, gi + "/snapshots", {{"mode", "memory"}}, {{"Idempotency-Key", "oa-key-1"}});
    CHECK(conflict.status == 409);
    CHECK(error_code(conflict) == "idempotency_conflict");
    CHECK(rec.get(c, "/v1/jobs/" + mem_job).status == 200);
    CHECK(wait_recorded(rec, c, mem_job)["state"] == "succeeded");
    CHECK(rec.get(c, "/v1/snapshots/" + mem_id).status == 200);

    // ---- a stopped snapshot of the shut-off guest, and what refuses
    auto cold = rec.post(c, oi + "/snapshots", {{"mode", "stopped"}, {"name", "oa-cold"}, {"display_name", "OpenAPI cold"},
                                                {"shutdown_timeout_s", 30}, {"keep_stopped", true}});
    REQUIRE(cold.status == 202);
    const std::string cold_id = cold.json()["snapshot"]["id"];
    CHECK(wait_recorded(rec, c, job_id(cold))["state"] == "succeeded");
    auto exists = rec.post(c, oi + "/snapshots", {{"mode", "stopped"}, {"name", "oa-cold"}});
    CHECK(exists.status == 409);
    CHECK(error_code(exists) == "snapshot_exists");
    auto not_running = rec.post(c, oi + "/snapshots", {{"mode", "memory"}});
    CHECK(not_running.status == 422);
    CHECK(error_code(not_running) == "instance_not_running");
    // The instance's snapshots are internal: another method is a conflict (with its details).
    auto other_method = rec.post(c, oi + "/snapshots", {{"mode", "stopped"}, {"method", "external"}});
    CHECK(other_method.status == 409);
    CHECK(error_code(other_method) == "method_conflict");
    CHECK(rec.post(c, oi + "/snapshots", {{"mode", "stopped"}, {"method", "sideways"}}).status == 400);

    // ---- lists, filters and paging
    CHECK(rec.get(c, gi + "/snapshots").status == 200);
    CHECK(rec.get(c, oi + "/snapshots").status == 200);
    CHECK(rec.get(c, "/v1/snapshots").status == 200);
    CHECK(rec.get(c, "/v1/snapshots?instance=" + client::escape(g.name()) + "&state=ready&mode=memory&q=openapi").status == 200);
    CHECK(rec.get(c, "/v1/snapshots?instance=no-such-instance-oa").status == 200);
    auto page = rec.get(c, "/v1/snapshots?limit=1");
    REQUIRE(page.status == 200);
    if (page.json()["next_cursor"].is_string())
        CHECK(rec.get(c, "/v1/snapshots?limit=1&cursor=" + client::escape(page.json()["next_cursor"])).status == 200);
    CHECK(rec.get(c, "/v1/jobs").status == 200);
    CHECK(rec.get(c, "/v1/jobs?instance=" + g.uuid() + "&kind=create&state=succeeded").status == 200);
    auto jobs_page = rec.get(c, "/v1/jobs?limit=1");
    REQUIRE(jobs_page.status == 200);
    REQUIRE(jobs_page.json()["next_cursor"].is_string());
    CHECK(rec.get(c, "/v1/jobs?limit=1&cursor=" + client::escape(jobs_page.json()["next_cursor"])).status == 200);

    // ---- edits
    CHECK(rec.patch(c, "/v1/snapshots/" + mem_id, {{"display_name", "OpenAPI memory (edited)"}}).status == 200);
    CHECK(rec.patch(c, "/v1/snapshots/" + cold_id, {{"description", "cold, edited"}}).status == 200);
    auto taken = rec.patch(c, "/v1/snapshots/" + mem_id, {{"display_name", "OpenAPI memory (edited)"}});
    CHECK(taken.status == 200);  // unchanged is no conflict with itself

    // ---- reverts
    auto rv = rec.post(c, "/v1/snapshots/" + mem_id + "/revert", {{"start", "running"}});
    REQUIRE(rv.status == 202);
    CHECK(wait_recorded(rec, c, job_id(rv))["state"] == "succeeded");
    auto rv_cold = rec.send(c, "POST", "/v1/snapshots/" + cold_id + "/revert", "");  // no body: start auto
    REQUIRE(rv_cold.status == 202);
    const std::string rv_cold_job = job_id(rv_cold);
    CHECK(wait_recorded(rec, c, rv_cold_job)["state"] == "succeeded");
    auto ended = rec.post(c, "/v1/jobs/" + rv_cold_job + "/cancel", nullptr);
    CHECK(ended.status == 409);
    CHECK(error_code(ended) == "job_not_cancellable");

    // ---- a stopped snapshot of the running guest waits for a shutdown the guest never does:
    // the instance is busy meanwhile, and the job can be cancelled.
    auto slow = rec.post(c, gi + "/snapshots", {{"mode", "stopped"}, {"name", "oa-slow"}, {"shutdown_timeout_s", 120}});
    REQUIRE(slow.status == 202);
    const std::string slow_job = job_id(slow);
    REQUIRE(eventually([&] { return c.get("/v1/jobs/" + slow_job).json()["progress"]["phase"] == "shutting_down"; }, 60s));
    CHECK(rec.get(c, "/v1/jobs/" + slow_job + "?wait=1").status == 200);  // times out: still running
    auto busy = rec.post(c, gi + "/snapshots", {{"mode", "memory"}});
    CHECK(busy.status == 409);
    CHECK(error_code(busy) == "instance_busy");
    CHECK(rec.patch(c, "/v1/snapshots/" + mem_id, {{"description", "busy"}}).status == 409);
    CHECK(rec.del(c, "/v1/snapshots/" + mem_id).status == 409);
    CHECK(rec.post(c, "/v1/snapshots/" + mem_id + "/revert", json::object()).status == 409);
    CHECK(rec.get(c, gi).status == 200);  // busy_job_id set
    auto cancel = rec.post(c, "/v1/jobs/" + slow_job + "/cancel", nullptr, {{"Idempotency-Key", "oa-cancel-1"}});
    CHECK(cancel.status == 202);
    CHECK(wait_recorded(rec, c, slow_job)["state"] == "cancelled");

    // ---- schedules: made, read, changed and deleted; their events on a stream opened first.
    // Their slots are on 1 January at 03:00 (and weekly, disabled), so no run starts during the test.
    {
        client::Connection stream(d.url());
        auto stream_head = stream.open_stream("/v1/events", {{"Authorization", "Bearer " + d.token()}});
        REQUIRE(stream_head.status == 200);
        const json nightly = {{"name", "oa-nightly"}, {"cron", "0 3 1 1 *"}, {"timezone", "Europe/Berlin"}, {"mode", "memory"},
                              {"keep_last", 3}, {"display_name_template", "{schedule} {date}"}};
        auto made = rec.post(c, gi + "/schedules", nightly, {{"Idempotency-Key", "oa-schedule-1"}});
        INFO(made.body);
        REQUIRE(made.status == 201);
        const std::string sched_id = made.json()["id"];
        CHECK(*made.header("location") == "/v1/schedules/" + sched_id);
        auto made_again = rec.post(c, gi + "/schedules", nightly, {{"Idempotency-Key", "oa-schedule-1"}});
        CHECK(made_again.status == 201);
        CHECK(made_again.header("idempotent-replayed"));
        auto cold_made = rec.post(c, oi + "/schedules", {{"name", "oa-weekly"}, {"cron", "@weekly"}, {"mode", "stopped"},
                                                         {"shutdown_timeout_s", 30}, {"force_stop", true}, {"max_age", "4w"},
                                                         {"jitter_s", 30}, {"enabled", false}});
        REQUIRE(cold_made.status == 201);
        const std::string cold_sched = cold_made.json()["id"];
        CHECK(cold_made.json()["next_run_at"].is_null());
        auto second = rec.post(c, gi + "/schedules", {{"name", "oa-second"}, {"cron", "0 3 1 1 *"}, {"mode", "memory"}, {"max_age", "90m"}});
        REQUIRE(second.status == 201);
        const std::string second_id = second.json()["id"];

        CHECK(error_code(rec.post(c, gi + "/schedules", nightly)) == "schedule_exists");
        CHECK(error_code(rec.post(c, gi + "/schedules", {{"name", "oa-x"}, {"cron", "0 3 * *"}, {"mode", "memory"}, {"keep_last", 1}})) ==
              "invalid_request");
        CHECK(error_code(rec.post(c, gi + "/schedules", {{"name", "oa-x"}, {"cron", "@daily"}, {"mode", "memory"}})) == "invalid_request");
        CHECK(error_code(rec.post(c, gi + "/schedules", {{"name", "oa-x"}, {"cron", "@daily"}, {"mode", "memory"}, {"keep_last", 1},
                                                         {"timezone", "Mars/Olympus"}})) == "invalid_request");
        CHECK(error_code(rec.post(c, gi + "/schedules", {{"name", "oa-x"}, {"cron", "@daily"}, {"mode", "memory"}, {"keep_last", 1},
                                                         {"colour", "red"}})) == "unknown_field");
        CHECK(error_code(rec.post(c, "/v1/instances/no-such-instance-oa/schedules",
                                  {{"name", "oa-x"}, {"cron", "@daily"}, {"mode", "memory"}, {"keep_last", 1}})) == "instance_not_found");

        CHECK(rec.get(c, gi + "/schedules").status == 200);
        CHECK(rec.get(reader, oi + "/schedules").status == 200);
        CHECK(rec.get(c, "/v1/instances/no-such-instance-oa/schedules").status == 404);
        CHECK(rec.get(c, "/v1/schedules").status == 200);
        CHECK(rec.get(c, "/v1/schedules?instance=" + client::escape(g.name())).status == 200);
        auto sched_page = rec.get(c, "/v1/schedules?limit=1");
        REQUIRE(sched_page.status == 200);
        REQUIRE(sched_page.json()["next_cursor"].is_string());
        CHECK(rec.get(c, "/v1/schedules?limit=1&cursor=" + client::escape(sched_page.json()["next_cursor"])).status == 200);
        CHECK(error_code(rec.get(c, "/v1/schedules?limit=0")) == "invalid_request");
        CHECK(rec.get(reader, "/v1/schedules/" + sched_id).status == 200);
        CHECK(error_code(rec.get(c, "/v1/schedules/" + none)) == "schedule_not_found");

        auto disabled = rec.patch(c, "/v1/schedules/" + sched_id, {{"enabled", false}});
        REQUIRE(disabled.status == 200);
        CHECK(disabled.json()["next_run_at"].is_null());
        CHECK(rec.patch(c, "/v1/schedules/" + sched_id, {{"enabled", true}, {"keep_last", nullptr}, {"max_age", "7d"}}).status == 200);
        CHECK(rec.patch(c, "/v1/schedules/" + cold_sched, {{"display_name_template", nullptr}, {"force_stop", false}}).status == 200);
        CHECK(error_code(rec.patch(c, "/v1/schedules/" + second_id, {{"name", "oa-nightly"}})) == "schedule_exists");
        CHECK(error_code(rec.patch(c, "/v1/schedules/" + sched_id, json::object())) == "invalid_request");
        CHECK(error_code(rec.patch(c, "/v1/schedules/" + sched_id, {{"mode", nullptr}})) == "invalid_request");
        CHECK(error_code(rec.patch(c, "/v1/schedules/" + none, {{"enabled", true}})) == "schedule_not_found");
        CHECK(error_code(rec.patch(reader, "/v1/schedules/" + sched_id, {{"enabled", true}})) == "forbidden");
        CHECK(error_code(rec.post(reader, gi + "/schedules", nightly)) == "forbidden");
        CHECK(error_code(rec.del(reader, "/v1/schedules/" + sched_id)) == "forbidden");
        CHECK(rec.send(c, "PUT", "/v1/schedules/" + sched_id, "{}", {}).status == 405);

        CHECK(error_code(rec.del(c, "/v1/schedules/" + sched_id + "?snapshots=maybe")) == "invalid_request");
        CHECK(rec.del(c, "/v1/schedules/" + sched_id).status == 204);
        CHECK(error_code(rec.del(c, "/v1/schedules/" + sched_id)) == "schedule_not_found");
        CHECK(rec.del(c, "/v1/schedules/" + second_id + "?snapshots=true").status == 204);
        CHECK(rec.del(c, "/v1/schedules/" + cold_sched + "?snapshots=false").status == 204);
        CHECK(rec.get(c, "/v1/schedules").json()["items"].empty());

        json events = json::array();
        std::set<std::string> types;
        for (int i = 0; i < 60; ++i) {
            auto e = stream.next_event(2s);
            if (!e) break;
            types.insert(e->type);
            events.push_back({{"id", e->id}, {"type", e->type}, {"data", e->data}});
        }
        CHECK(types.count("schedule.created") == 1);
        CHECK(types.count("schedule.updated") == 1);
        CHECK(types.count("schedule.deleted") == 1);
        rec.record("GET", "/v1/events", stream_head, events);
    }

    // ---- the event stream, replayed from the start of this daemon's backlog
    {
        client::Connection conn(d.url());
        auto head = conn.open_stream("/v1/events?last_event_id=0", {{"Authorization", "Bearer " + d.token()}});
        json events = json::array();
        if (head.status == 200)
            for (int i = 0; i < 40; ++i) {
                auto e = conn.next_event(2s);
                if (!e) break;
                events.push_back({{"id", e->id}, {"type", e->type}, {"data", e->data}});
            }
        CHECK(head.status == 200);
        CHECK(events.size() >= 10);
        rec.record("GET", "/v1/events?last_event_id=0", head, events);
    }
    {
        client::Connection conn(d.url());
        auto head = conn.open_stream("/v1/events", {{"Authorization", "Bearer " + d.token()}, {"Last-Event-ID", "3"}});
        json events = json::array();
        if (auto e = conn.next_event(2s)) events.push_back({{"id", e->id}, {"type", e->type}, {"data", e->data}});
        CHECK(head.status == 200);
        rec.record("GET", "/v1/events", head, events);
    }
    CHECK(rec.get(c, "/v1/events", {{"Last-Event-ID", "not-a-number"}}).status == 400);

    // ---- errors
    auto bad_json = rec.send(c, "POST", gi + "/snapshots", "{\"mode\":", {{"Content-Type", "application/json"}});
    CHECK(error_code(bad_json) == "invalid_json");
    CHECK(error_code(rec.post(c, gi + "/snapshots", {{"mode", "warm"}})) == "invalid_request");
    CHECK(error_code(rec.post(c, gi + "/snapshots", {{"mode", "memory"}, {"name", "-bad"}})) == "invalid_request");
    CHECK(error_code(rec.post(c, gi + "/snapshots", {{"mode", "memory"}, {"force_stop", true}})) == "invalid_request");
    CHECK(error_code(rec.post(c, gi + "/snapshots", {{"mode", "memory"}, {"colour", "red"}})) == "unknown_field");
    CHECK(error_code(rec.send(c, "POST", gi + "/snapshots", "", {})) == "invalid_request");
    CHECK(error_code(rec.patch(c, "/v1/snapshots/" + mem_id, json::object())) == "invalid_request");
    CHECK(error_code(rec.patch(c, "/v1/snapshots/" + mem_id, {{"display_name", ""}})) == "invalid_request");
    CHECK(error_code(rec.post(c, "/v1/snapshots/" + mem_id + "/revert", {{"start", "sideways"}})) == "invalid_request");
    CHECK(error_code(rec.send(c, "DELETE", "/v1/snapshots/" + mem_id, "{}", {})) == "invalid_request");
    CHECK(error_code(rec.get(c, "/v1/snapshots?limit=0")) == "invalid_request");
    CHECK(error_code(rec.get(c, "/v1/snapshots?limit=1001")) == "invalid_request");
    CHECK(error_code(rec.get(c, "/v1/snapshots?cursor=not-a-cursor")) == "invalid_request");
    CHECK(error_code(rec.get(c, "/v1/jobs?state=done")) == "invalid_request");
    CHECK(error_code(rec.get(c, "/v1/jobs/" + mem_job + "?wait=61")) == "invalid_request");
    CHECK(error_code(rec.get(c, "/v1/instances?colour=red")) == "invalid_request");
    CHECK(error_code(rec.get(anonymous, "/healthz?x=1")) == "invalid_request");
    CHECK(error_code(rec.del(c, "/v1/snapshots/" + mem_id + "?children=maybe")) == "invalid_request");
    CHECK(error_code(rec.post(c, gi + "/snapshots", {{"mode", "memory"}}, {{"Idempotency-Key", "has space"}})) ==
          "invalid_request");
    CHECK(error_code(rec.get(c, "/v1/snapshots/%zz")) == "invalid_request");

    auto unauth = rec.get(anonymous, "/v1/instances");
    CHECK(unauth.status == 401);
    CHECK(unauth.header("www-authenticate"));
    CHECK(rec.get(bad_token, "/v1/jobs").status == 401);
    CHECK(rec.get(anonymous, "/metrics").status == 401);
    CHECK(rec.get(anonymous, "/v1/events").status == 401);
    CHECK(rec.get(anonymous, "/v1/host").status == 401);
    CHECK(rec.post(anonymous, gi + "/snapshots", {{"mode", "memory"}}).status == 401);
    CHECK(error_code(rec.post(reader, gi + "/snapshots", {{"mode", "memory"}})) == "forbidden");
    CHECK(error_code(rec.patch(reader, "/v1/snapshots/" + mem_id, {{"description", "x"}})) == "forbidden");
    CHECK(error_code(rec.del(reader, "/v1/snapshots/" + mem_id)) == "forbidden");
    CHECK(error_code(rec.post(reader, "/v1/snapshots/" + mem_id + "/revert", nullptr)) == "forbidden");
    CHECK(error_code(rec.post(reader, "/v1/jobs/" + mem_job + "/cancel", nullptr)) == "forbidden");

    CHECK(error_code(rec.get(c, "/v1/snapshots/" + none)) == "snapshot_not_found");
    CHECK(error_code(rec.patch(c, "/v1/snapshots/" + none, {{"description", "x"}})) == "snapshot_not_found");
    CHECK(error_code(rec.del(c, "/v1/snapshots/" + none)) == "snapshot_not_found");
    CHECK(error_code(rec.post(c, "/v1/snapshots/" + none + "/revert", nullptr)) == "snapshot_not_found");
    CHECK(error_code(rec.get(c, "/v1/jobs/" + none)) == "job_not_found");
    CHECK(error_code(rec.post(c, "/v1/jobs/" + none + "/cancel", nullptr)) == "job_not_found");
    CHECK(error_code(rec.get(c, "/v1/no-such-thing")) == "not_found");
    CHECK(error_code(rec.get(anonymous, "/nothing/here")) == "not_found");

    auto not_allowed = rec.send(c, "PUT", "/v1/instances", "{}", {});
    CHECK(not_allowed.status == 405);
    CHECK(not_allowed.header("allow"));
    CHECK(rec.send(c, "DELETE", "/v1/jobs/" + mem_job, "", {}).status == 405);
    CHECK(rec.send(c, "POST", "/healthz", "", {}).status == 405);

    const json big = {{"mode", "memory"}, {"description", std::string(5000, 'x')}};
    CHECK(error_code(rec.post(c, gi + "/snapshots", big)) == "body_too_large");
    CHECK(error_code(rec.send(c, "POST", gi + "/snapshots", "{\"mode\":\"memory\"}", {{"Content-Type", "text/plain"}})) ==
          "unsupported_media_type");
    CHECK(error_code(rec.send(c, "PATCH", "/v1/snapshots/" + mem_id, "{\"description\":\"x\"}",
                              {{"Content-Type", "application/x-www-form-urlencoded"}})) == "unsupported_media_type");
    CHECK(error_code(rec.get(c, "/v1/instances", {{"X-Padding", std::string(17 * 1024, 'p')}})) == "header_too_large");

    // ---- deletes: the stopped snapshot alone, the memory snapshot with its subtree
    auto del_cold = rec.del(c, "/v1/snapshots/" + cold_id);
    REQUIRE(del_cold.status == 202);
    CHECK(wait_recorded(rec, c, job_id(del_cold))["state"] == "succeeded");
    auto del_mem = rec.del(c, "/v1/snapshots/" + mem_id + "?children=true");
    REQUIRE(del_mem.status == 202);
    const int deleting = rec.get(c, "/v1/snapshots/" + mem_id).status;  // deleting, or gone already
    CHECK((deleting == 200 || deleting == 404));
    CHECK(wait_recorded(rec, c, job_id(del_mem))["state"] == "succeeded");
    CHECK(rec.get(c, "/v1/snapshots/" + mem_id).status == 404);
    CHECK(rec.get(c, "/v1/jobs?kind=delete").status == 200);
    CHECK(rec.get(c, "/metrics").status == 200);
    CHECK(rec.count() > 100);
}

TEST_CASE("The connection cap answers 503 as the document says", "[openapi]") {
    Recorder rec("connection-cap");
    Daemon d({.config = "[server]\nmax_connections = 2\n"});
    // Two idle connections fill the cap. One opened while the readiness probe's connection was
    // still counted is refused at once (it reads a 503): it is replaced until two are held.
    std::vector<std::unique_ptr<client::Connection>> held;
    for (int attempt = 0; attempt < 20 && held.size() < 2; ++attempt) {
        held.push_back(std::make_unique<client::Connection>(d.url()));
        bool refused = false;
        try {
            refused = !held.back()->read_raw(300ms).empty();
        } catch (const client::TransportError&) {  // nothing within the time: admitted, idle
        }
        if (refused) held.pop_back();
    }
    REQUIRE(held.size() == 2);
    auto r = rec.get(d.client(), "/v1/instances");
    CHECK(r.status == 503);
    CHECK(error_code(r) == "too_many_connections");
    held.clear();
    CHECK(eventually([&] { return d.client().get("/healthz").status == 200; }, 5s));
}

TEST_CASE("An unreachable libvirt is answered with 503 as the document says", "[openapi]") {
    Recorder rec("libvirt-down");
    Daemon d({.wait_ready = false, .libvirt_uri = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"});
    const auto c = d.client();
    REQUIRE(eventually([&] { return c.get("/healthz").status == 200; }, 10s));
    CHECK(error_code(rec.get(c, "/readyz")) == "hypervisor_unavailable");
    CHECK(error_code(rec.get(c, "/v1/instances/some-instance")) == "hypervisor_unavailable");
    CHECK(error_code(rec.post(c, "/v1/instances/some-instance/snapshots", {{"mode", "memory"}})) ==
          "hypervisor_unavailable");
    CHECK(rec.get(c, "/v1/instances").status == 200);
    CHECK(rec.get(c, "/v1/snapshots").status == 200);
    CHECK(rec.get(c, "/v1/jobs").status == 200);
    CHECK(rec.get(c, "/healthz").status == 200);
    // Never reached libvirt: no versions yet, and stale.
    auto host = rec.get(c, "/v1/host");
    REQUIRE(host.status == 200);
    CHECK(host.json()["libvirt_version"].is_null());
    CHECK(host.json()["qemu_version"].is_null());
    CHECK(host.json()["stale"] == true);
}

TEST_CASE("The live metrics pass promtool check metrics", "[openapi][metrics]") {
    std::string version;
    REQUIRE(run("promtool --version", &version) == 0);  // Debian package 'prometheus'
    TestGuest off({.tag = "oaprom", .memory_mib = 64, .fill_mib = 8, .running = false});
    Daemon d;
    const auto c = d.client();
    Recorder rec("metrics");
    // Some requests (ok, client errors, unmatched), a job that succeeds and one that is refused.
    rec.get(c, "/v1/instances");
    rec.get(c, "/v1/snapshots?limit=5");
    rec.get(c, "/v1/instances/no-such-instance-oa");
    rec.get(c, "/no/such/path");
    rec.get(client::Client(d.url()), "/v1/jobs");
    auto created = rec.post(c, "/v1/instances/" + client::escape(off.name()) + "/snapshots", {{"mode", "stopped"}});
    REQUIRE(created.status == 202);
    CHECK(wait_recorded(rec, c, job_id(created))["state"] == "succeeded");
    auto del = rec.del(c, "/v1/snapshots/" + created.json()["snapshot"]["id"].get<std::string>());
    REQUIRE(del.status == 202);
    CHECK(wait_recorded(rec, c, job_id(del))["state"] == "succeeded");

    auto metrics = rec.get(c, "/metrics");
    REQUIRE(metrics.status == 200);
    CHECK_THAT(metrics.body, Catch::Contains("snapvirt_jobs_total{kind=\"create\",outcome=\"succeeded\"} 1"));
    CHECK_THAT(metrics.body, Catch::Contains("route=\"/v1/instances/{instance}\",status=\"404\""));
    const std::string file = std::string(SNAPVIRT_OPENAPI_RECORD_DIR) + "/metrics.prom";
    std::ofstream(file, std::ios::trunc) << metrics.body;
    std::string out;
    const int rc = run("promtool check metrics < " + file, &out);
    INFO("promtool " << version << "\n" << out);
    CHECK(rc == 0);
}
