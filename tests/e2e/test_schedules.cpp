// Schedules on real QEMU guests (docs/api.md, "Schedules"): six-field crons every few seconds,
// retention by count and by age, busy retry then missed, skipped, catch-up after a restart, a
// SIGKILL during a run, and the snapshot limit.

#include "tests/e2e/helpers.hpp"

#include <sqlite3.h>

#include <cstdio>
#include <set>
#include <thread>

using namespace snapvirt;
using namespace snapvirt::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

json make_schedule(const client::Client& c, const std::string& instance, const json& body) {
    auto r = c.post("/v1/instances/" + client::escape(instance) + "/schedules", body);
    INFO(r.body);
    REQUIRE(r.status == 201);
    return r.json();
}

json schedule_of(const client::Client& c, const std::string& id) {
    auto r = c.get("/v1/schedules/" + id);
    INFO(r.body);
    REQUIRE(r.status == 200);
    return r.json();
}

void disable(const client::Client& c, const std::string& id) {
    auto r = c.patch("/v1/schedules/" + id, {{"enabled", false}});
    INFO(r.body);
    REQUIRE(r.status == 200);
}

json jobs_of(const client::Client& c, const std::string& instance) {
    return c.get("/v1/jobs?instance=" + client::escape(instance) + "&limit=1000").json()["items"];
}

int count_jobs(const client::Client& c, const std::string& instance, const std::string& kind, const std::string& state) {
    int n = 0;
    for (const auto& j : jobs_of(c, instance))
        if (j["kind"] == kind && (state.empty() || j["state"] == state)) ++n;
    return n;
}

bool idle(const client::Client& c, const std::string& instance) {
    for (const auto& j : jobs_of(c, instance))
        if (j["state"] == "queued" || j["state"] == "running") return false;
    return true;
}

std::vector<json> schedule_snapshots(const client::Client& c, const std::string& instance, const std::string& id) {
    std::vector<json> out;
    for (const auto& s : snapshots_of(c, instance))
        if (s.value("schedule_id", json()) == id) out.push_back(s);
    return out;
}

// Rows of the daemon's catalog, read through SQLite's C API on a read-only connection (WAL lets
// it read while the daemon writes); columns joined by '|', NULL as "", as the sqlite3 shell
// prints them.
std::vector<std::string> sql(const Daemon& d, const std::string& query) {
    const std::string path = (d.state_dir() / "catalog.db").string();
    sqlite3* db = nullptr;
    const int open_rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    if (open_rc != SQLITE_OK) {
        sqlite3_close(db);
        FAIL("cannot open " << path << ": " << sqlite3_errstr(open_rc));
    }
    sqlite3_busy_timeout(db, 5000);
    std::vector<std::string> rows;
    auto add_row = [](void* out, int n, char** values, char**) -> int {
        std::string row;
        for (int i = 0; i < n; ++i) {
            if (i) row += '|';
            if (values[i]) row += values[i];
        }
        static_cast<std::vector<std::string>*>(out)->push_back(std::move(row));
        return 0;
    };
    char* err = nullptr;
    const int rc = sqlite3_exec(db, query.c_str(), add_row, &rows, &err);
    const std::string message = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    INFO(query << ": " << message);
    REQUIRE(rc == SQLITE_OK);
    return rows;
}

// Every create job a schedule made has exactly one run row, and no slot has two.
void check_no_double_run(const Daemon& d, const client::Client& c, const std::string& instance,
                         const std::string& schedule_id) {
    const auto dup = sql(d, "SELECT slot FROM schedule_runs WHERE schedule_id='" + schedule_id +
                                "' GROUP BY slot HAVING count(*) > 1");
    CHECK(dup.empty());
    const auto runs_with_jobs =
        sql(d, "SELECT count(DISTINCT job_id) FROM schedule_runs WHERE schedule_id='" + schedule_id + "' AND job_id IS NOT NULL");
    REQUIRE(runs_with_jobs.size() == 1);
    std::set<std::string> schedule_jobs;
    for (const auto& j : jobs_of(c, instance))
        if (j["kind"] == "create") {
            const auto rows = sql(d, "SELECT count(*) FROM schedule_runs WHERE job_id='" + j["id"].get<std::string>() + "'");
            if (!rows.empty() && rows[0] != "0") schedule_jobs.insert(j["id"]);
        }
    CHECK(std::to_string(schedule_jobs.size()) == runs_with_jobs[0]);
}

// The value of one sample line of /metrics ("name{labels} value"), or -1.
double metric(const client::Client& c, const std::string& series) {
    const std::string body = c.get("/metrics").body;
    const auto at = body.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(body.substr(at + series.size() + 2));
}

DaemonOptions fast_schedules(const std::string& extra = "") {
    DaemonOptions o;
    o.config = "[schedules]\nbusy_retry_s = 1\nbusy_window_s = 3\n" + extra;
    return o;
}

}  // namespace

TEST_CASE("A schedule every 5 seconds keeps exactly keep_last of its snapshots and never touches manual ones",
          "[e2e][schedules]") {
    TestGuest g({.tag = "sched"});
    g.wait_booted();
    Daemon d(fast_schedules());
    auto c = d.client();
    auto manual = take_snapshot(c, g.name(), {{"mode", "memory"}, {"name", "by-hand"}});
    REQUIRE(manual.job["state"] == "succeeded");

    auto s = make_schedule(c, g.name(),
                           {{"name", "often"}, {"cron", "*/5 * * * * *"}, {"mode", "memory"}, {"keep_last", 2}});
    const std::string id = s["id"];
    CHECK(s["next_run_at"].is_string());
    REQUIRE(eventually([&] { return count_jobs(c, g.name(), "create", "succeeded") >= 1 + 4; }, 60s, 250ms));
    disable(c, id);
    REQUIRE(eventually([&] { return idle(c, g.name()) && schedule_snapshots(c, g.name(), id).size() <= 2; }, 30s));
    std::this_thread::sleep_for(1s);
    REQUIRE(idle(c, g.name()));

    const auto kept = schedule_snapshots(c, g.name(), id);
    CHECK(kept.size() == 2);
    for (const auto& k : kept) CHECK(k["state"] == "ready");
    const auto by_hand = c.get("/v1/snapshots/" + manual.snapshot["id"].get<std::string>());
    CHECK(by_hand.status == 200);
    CHECK(by_hand.json()["state"] == "ready");
    CHECK(g.snapshot_count() == 3);
    CHECK(count_jobs(c, g.name(), "delete", "succeeded") >= 2);
    const auto last = schedule_of(c, id)["last_run"];
    INFO(last.dump());
    CHECK(last["outcome"] == "succeeded");
    CHECK(schedule_of(c, id)["next_run_at"].is_null());  // disabled
    check_no_double_run(d, c, g.name(), id);

    CHECK(metric(c, "snapvirt_schedule_runs_total{outcome=\"succeeded\"}") >= 4);
    CHECK(metric(c, "snapvirt_schedules{state=\"disabled\"}") == 1);
    CHECK(metric(c, "snapvirt_schedules{state=\"enabled\"}") == 0);
    CHECK(metric(c, "snapvirt_schedule_overdue_seconds") == 0);
}

TEST_CASE("max_age deletes a schedule's snapshots once they are older", "[e2e][schedules]") {
    TestGuest g({.tag = "maxage"});
    g.wait_booted();
    Daemon d(fast_schedules());
    auto c = d.client();
    auto s = make_schedule(c, g.name(),
                           {{"name", "aging"}, {"cron", "*/20 * * * * *"}, {"mode", "memory"}, {"max_age", "1m"}});
    const std::string id = s["id"];
    // The first run's snapshot passes one minute; the run after that deletes it.
    std::string first;
    REQUIRE(eventually(
        [&] {
            auto snaps = schedule_snapshots(c, g.name(), id);
            if (!snaps.empty() && first.empty()) first = snaps.front()["id"];
            return !first.empty();
        },
        40s, 250ms));
    REQUIRE(eventually([&] { return c.get("/v1/snapshots/" + first).status == 404; }, 100s, 500ms));
    disable(c, id);
    REQUIRE(eventually([&] { return idle(c, g.name()); }, 30s));
    const auto kept = schedule_snapshots(c, g.name(), id);
    CHECK(!kept.empty());
    CHECK(kept.size() <= 4);  // a minute's worth (three runs) and the one just taken
}

TEST_CASE("A schedule whose instance stays busy retries and then records missed", "[e2e][schedules]") {
    TestGuest g({.tag = "busy"});  // ignores ACPI: a stopped job waits its whole timeout
    g.wait_booted();
    Daemon d(fast_schedules());
    auto c = d.client();
    auto hold = c.post("/v1/instances/" + g.name() + "/snapshots",
                       {{"mode", "stopped"}, {"force_stop", true}, {"shutdown_timeout_s", 15}});
    REQUIRE(hold.status == 202);
    const std::string holder = hold.json()["job"]["id"];
    auto s = make_schedule(c, g.name(),
                           {{"name", "blocked"}, {"cron", "*/5 * * * * *"}, {"mode", "memory"}, {"keep_last", 1}});
    const std::string id = s["id"];
    json last;
    REQUIRE(eventually(
        [&] {
            last = schedule_of(c, id)["last_run"];
            return last.is_object() && last["outcome"] == "missed";
        },
        14s, 200ms));
    INFO(last.dump());
    CHECK(last["error"]["code"] == "instance_busy");
    CHECK(last["job_id"].is_null());
    CHECK(c.get("/v1/jobs/" + holder).json()["state"] == "running");  // the miss came while it held the guest
    disable(c, id);
    CHECK(wait_job(c, holder, 60s)["state"] == "succeeded");
    REQUIRE(eventually([&] { return idle(c, g.name()); }, 30s));
    CHECK(metric(c, "snapvirt_schedule_runs_total{outcome=\"missed\"}") >= 1);
}

TEST_CASE("A memory schedule of a shut-off guest is skipped without a job", "[e2e][schedules]") {
    TestGuest g({.tag = "off", .running = false});
    Daemon d(fast_schedules());
    auto c = d.client();
    auto s = make_schedule(c, g.name(),
                           {{"name", "ram"}, {"cron", "*/5 * * * * *"}, {"mode", "memory"}, {"keep_last", 1}});
    const std::string id = s["id"];
    json last;
    REQUIRE(eventually(
        [&] {
            last = schedule_of(c, id)["last_run"];
            return last.is_object();
        },
        15s, 200ms));
    INFO(last.dump());
    CHECK(last["outcome"] == "skipped");
    CHECK(last["error"]["code"] == "instance_not_running");
    CHECK(last["job_id"].is_null());
    disable(c, id);
    CHECK(jobs_of(c, g.name()).empty());
    CHECK(g.snapshot_count() == 0);
}

TEST_CASE("After a restart across a slot the schedule catches up exactly once", "[e2e][schedules]") {
    TestGuest g({.tag = "catchup", .running = false});
    Daemon d(fast_schedules());
    auto c = d.client();
    auto s = make_schedule(c, g.name(),
                           {{"name", "halfmin"}, {"cron", "*/30 * * * * *"}, {"mode", "stopped"}, {"keep_last", 3}});
    const std::string id = s["id"];
    REQUIRE(eventually([&] { return schedule_of(c, id)["last_run"].is_object(); }, 35s, 200ms));
    REQUIRE(eventually([&] { return idle(c, g.name()); }, 20s));
    const json before = schedule_of(c, id);
    REQUIRE(before["last_run"]["outcome"] == "succeeded");
    const std::string missed_slot = before["next_run_at"];
    const int creates_before = count_jobs(c, g.name(), "create", "");
    REQUIRE(d.stop() == 0);
    // Down across the next slot.
    const auto down_until = std::chrono::system_clock::now() + 32s;
    std::this_thread::sleep_until(down_until - 1s);
    std::this_thread::sleep_for(1s);
    d.start();
    c = d.client();
    json after;
    REQUIRE(eventually(
        [&] {
            after = schedule_of(c, id);
            return after["last_run"].is_object() && after["last_run"]["slot"] != before["last_run"]["slot"];
        },
        15s, 200ms));
    INFO(after.dump());
    // The run for the slot that passed while snapvirtd was down, once.
    CHECK(after["last_run"]["slot"] == missed_slot);
    CHECK(after["next_run_at"].get<std::string>() > missed_slot);
    REQUIRE(eventually([&] { return idle(c, g.name()); }, 20s));
    CHECK(count_jobs(c, g.name(), "create", "") == creates_before + 1);
    disable(c, id);
    check_no_double_run(d, c, g.name(), id);
}

TEST_CASE("A SIGKILL during a run neither runs its slot twice nor leaves a job running", "[e2e][schedules]") {
    TestGuest g({.tag = "kill"});
    g.wait_booted();
    DaemonOptions o = fast_schedules();
    o.env["SNAPVIRT_TEST_DELAYS"] = "saving=20000";
    Daemon d(o);
    auto c = d.client();
    auto s = make_schedule(c, g.name(),
                           {{"name", "killed"}, {"cron", "*/5 * * * * *"}, {"mode", "memory"}, {"keep_last", 2}});
    const std::string id = s["id"];
    REQUIRE(eventually([&] { return d.log().find("at 'saving'") != std::string::npos; }, 30s, 50ms));
    const json during = schedule_of(c, id);
    REQUIRE(during["last_run"]["outcome"] == "running");
    const std::string killed_job = during["last_run"]["job_id"];
    const std::string killed_slot = during["last_run"]["slot"];
    d.kill();
    d.options().env.clear();
    d.start();
    c = d.client();
    json job;
    REQUIRE(eventually(
        [&] {
            job = c.get("/v1/jobs/" + killed_job).json();
            return job["state"] != "queued" && job["state"] != "running";
        },
        30s));
    CHECK(job["recovered"] == true);
    // The killed run got its job's outcome; later slots run anew, that one never again.
    REQUIRE(eventually([&] { return count_jobs(c, g.name(), "create", "succeeded") >= 1; }, 30s, 250ms));
    disable(c, id);
    REQUIRE(eventually([&] { return idle(c, g.name()); }, 30s));
    const auto runs = sql(d, "SELECT outcome FROM schedule_runs WHERE schedule_id='" + id + "' AND job_id='" +
                                 killed_job + "'");
    REQUIRE(runs.size() == 1);
    CHECK(runs[0] != "running");
    check_no_double_run(d, c, g.name(), id);
    for (const auto& j : jobs_of(c, g.name())) CHECK((j["state"] != "queued" && j["state"] != "running"));
    (void)killed_slot;
}

TEST_CASE("At the snapshot limit a schedule deletes its own oldest first and fails when it cannot",
          "[e2e][schedules]") {
    TestGuest g({.tag = "limit"});
    g.wait_booted();
    Daemon d(fast_schedules("[snapshots]\nmax_snapshots_per_instance = 3\n"));
    auto c = d.client();
    auto manual = take_snapshot(c, g.name(), {{"mode", "memory"}, {"name", "by-hand"}});
    REQUIRE(manual.job["state"] == "succeeded");
    auto s = make_schedule(c, g.name(),
                           {{"name", "tight"}, {"cron", "*/5 * * * * *"}, {"mode", "memory"}, {"keep_last", 2}});
    const std::string id = s["id"];
    // Manual + 2 fill the instance; each later run first makes room by deleting the schedule's oldest.
    REQUIRE(eventually([&] { return count_jobs(c, g.name(), "create", "succeeded") >= 1 + 4; }, 60s, 250ms));
    CHECK(snapshots_of(c, g.name()).size() <= 3);
    CHECK(c.get("/v1/snapshots/" + manual.snapshot["id"].get<std::string>()).status == 200);

    // keep_last 3 cannot fit next to the manual one: the run fails with snapshot_limit_reached.
    auto patched = c.patch("/v1/schedules/" + id, {{"keep_last", 3}});
    INFO(patched.body);
    REQUIRE(patched.status == 200);
    json last;
    REQUIRE(eventually(
        [&] {
            last = schedule_of(c, id)["last_run"];
            return last["outcome"] == "failed";
        },
        30s, 200ms));
    INFO(last.dump());
    CHECK(last["error"]["code"] == "snapshot_limit_reached");
    disable(c, id);
    REQUIRE(eventually([&] { return idle(c, g.name()); }, 30s));
    CHECK(snapshots_of(c, g.name()).size() == 3);
    CHECK(c.get("/v1/snapshots/" + manual.snapshot["id"].get<std::string>()).status == 200);
    check_no_double_run(d, c, g.name(), id);
}
