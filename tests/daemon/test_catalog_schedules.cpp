// The catalog's schedules and runs: storage, the last run, paging, what deleting a schedule
// does to its snapshots, a slot recorded once, and the migration of a version-1 catalog.

#include "daemon/catalog.hpp"
#include "daemon/sqlite.hpp"
#include "tests/support/daemon.hpp"

#include "tests/support/catch.hpp"

#include <algorithm>
#include <filesystem>

using namespace snapvirt;
using namespace snapvirt::daemon;

namespace {

struct TempCatalog {
    TempCatalog() : dir(test::make_temp_dir("snapvirt-schedules")), catalog(std::make_unique<Catalog>(dir)) {}
    ~TempCatalog() {
        catalog.reset();
        std::filesystem::remove_all(dir);
    }
    std::filesystem::path dir;
    std::unique_ptr<Catalog> catalog;
};

Schedule schedule(const std::string& id, const std::string& instance, const std::string& name) {
    Schedule s;
    s.id = id;
    s.instance.uuid = instance;
    s.name = name;
    s.cron = "0 2 * * *";
    s.mode = SnapshotMode::memory;
    s.keep_last = 7;
    s.created_at = 1000;
    s.updated_at = 1000;
    return s;
}

Snapshot snapshot(const std::string& id, const std::string& instance, std::optional<std::string> schedule_id,
                  TimeMs created) {
    Snapshot s;
    s.id = id;
    s.instance.uuid = instance;
    s.name = id;
    s.display_name = id;
    s.mode = SnapshotMode::memory;
    s.state = SnapshotState::ready;
    s.created_at = created;
    s.schedule_id = std::move(schedule_id);
    return s;
}

ScheduleRun run(TimeMs slot, ScheduleOutcome outcome, std::optional<std::string> job = std::nullopt) {
    ScheduleRun r;
    r.slot = slot;
    r.at = slot + 5;
    r.job_id = std::move(job);
    r.outcome = outcome;
    return r;
}

std::vector<std::string> ids(const std::vector<Snapshot>& snaps) {
    std::vector<std::string> out;
    for (const auto& s : snaps) out.push_back(s.id);
    return out;
}

// The schema snapvirtd 1 wrote (schema_version 1), as it is in a catalog of that version.
const char* const version_1_schema = R"sql(
CREATE TABLE instances (
  uuid TEXT PRIMARY KEY, name TEXT NOT NULL, state TEXT NOT NULL, memory_mib INTEGER NOT NULL DEFAULT 0,
  vcpus INTEGER NOT NULL DEFAULT 0, present INTEGER NOT NULL DEFAULT 1, updated_at INTEGER NOT NULL);
CREATE INDEX instances_name ON instances(name);
CREATE TABLE snapshots (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, instance_uuid TEXT NOT NULL, name TEXT NOT NULL,
  display_name TEXT NOT NULL, description TEXT NOT NULL DEFAULT '', mode TEXT NOT NULL, state TEXT NOT NULL,
  parent_id TEXT, is_current INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, size_bytes INTEGER,
  guest_paused_ms INTEGER, origin TEXT NOT NULL, error_code TEXT, error_message TEXT,
  UNIQUE (instance_uuid, name), UNIQUE (instance_uuid, display_name));
CREATE INDEX snapshots_instance ON snapshots(instance_uuid, seq);
CREATE INDEX snapshots_state ON snapshots(state, seq);
CREATE TABLE jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, instance_uuid TEXT NOT NULL,
  instance_name TEXT NOT NULL, snapshot_id TEXT, state TEXT NOT NULL, phase TEXT NOT NULL DEFAULT '',
  percent INTEGER, created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER, error_code TEXT,
  error_message TEXT, recovered INTEGER NOT NULL DEFAULT 0, params TEXT NOT NULL DEFAULT '{}',
  intent TEXT NOT NULL DEFAULT '{}');
CREATE INDEX jobs_instance ON jobs(instance_uuid, seq);
CREATE INDEX jobs_state ON jobs(state, seq);
CREATE TABLE idempotency (
  key TEXT PRIMARY KEY, request_hash TEXT NOT NULL, status INTEGER NOT NULL, body TEXT NOT NULL,
  location TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL);
CREATE TABLE tokens (
  name TEXT PRIMARY KEY, scope TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL,
  last_used_at INTEGER);
PRAGMA user_version = 1;
)sql";

}  // namespace

TEST_CASE("A schedule is stored with every field and reads back the same", "[catalog][schedules]") {
    TempCatalog t;
    auto& c = *t.catalog;
    c.upsert_instance({"u1", "web1", "running", 64, 1, true});
    Schedule s = schedule("sc1", "u1", "nightly");
    s.cron = "*/20 * * * * *";
    s.timezone = "Europe/Berlin";
    s.mode = SnapshotMode::stopped;
    s.stopped = {120, true, true};
    s.display_name_template = "nightly {date}";
    s.keep_last = 3;
    s.max_age = "7d";
    s.jitter_s = 30;
    s.enabled = false;
    s.next_run_at = std::nullopt;
    c.insert_schedule(s);

    auto got = c.schedule("sc1");
    REQUIRE(got);
    CHECK(got->instance.name == "web1");
    CHECK(got->name == "nightly");
    CHECK(got->cron == "*/20 * * * * *");
    CHECK(got->timezone == "Europe/Berlin");
    CHECK(got->mode == SnapshotMode::stopped);
    CHECK(got->stopped.shutdown_timeout_s == 120u);
    CHECK(got->stopped.force_stop);
    CHECK(got->stopped.keep_stopped);
    CHECK(got->display_name_template == "nightly {date}");
    CHECK(got->keep_last == 3u);
    CHECK(got->max_age == "7d");
    CHECK(got->jitter_s == 30);
    CHECK_FALSE(got->enabled);
    CHECK_FALSE(got->next_run_at);
    CHECK_FALSE(got->last_run);
    CHECK(got->created_at == 1000);
    CHECK(got->updated_at == 1000);
    CHECK_FALSE(c.schedule("nope"));

    // An edit changes every writable field, never the instance or created_at.
    got->name = "hourly";
    got->mode = SnapshotMode::memory;
    got->stopped = {};
    got->display_name_template.reset();
    got->keep_last.reset();
    got->enabled = true;
    got->next_run_at = 5000;
    got->updated_at = 2000;
    got->created_at = 9999;
    got->instance.uuid = "u2";
    c.update_schedule(*got);
    auto edited = c.schedule("sc1");
    REQUIRE(edited);
    CHECK(edited->name == "hourly");
    CHECK(edited->mode == SnapshotMode::memory);
    CHECK_FALSE(edited->stopped.shutdown_timeout_s);
    CHECK_FALSE(edited->stopped.force_stop);
    CHECK_FALSE(edited->display_name_template);
    CHECK_FALSE(edited->keep_last);
    CHECK(edited->max_age == "7d");
    CHECK(edited->enabled);
    CHECK(edited->next_run_at == 5000);
    CHECK(edited->updated_at == 2000);
    CHECK(edited->created_at == 1000);
    CHECK(edited->instance.uuid == "u1");
}

TEST_CASE("Schedule names are unique per instance, also when renamed", "[catalog][schedules]") {
    TempCatalog t;
    auto& c = *t.catalog;
    c.insert_schedule(schedule("a", "u1", "nightly"));
    c.insert_schedule(schedule("b", "u1", "hourly"));
    try {
        c.insert_schedule(schedule("c", "u1", "nightly"));
        FAIL("a second schedule named nightly was stored");
    } catch (const CatalogError& e) {
        CHECK(e.kind() == CatalogError::Kind::conflict);
    }
    CHECK_NOTHROW(c.insert_schedule(schedule("d", "u2", "nightly")));
    auto b = *c.schedule("b");
    b.name = "nightly";
    try {
        c.update_schedule(b);
        FAIL("a rename onto a taken name was stored");
    } catch (const CatalogError& e) {
        CHECK(e.kind() == CatalogError::Kind::conflict);
    }
    CHECK(c.schedule("b")->name == "hourly");
    CHECK(c.count_schedules("u1") == 2);
    CHECK(c.count_schedules("u2") == 1);
    CHECK(c.count_schedules("u3") == 0);
}

TEST_CASE("A schedule's last run is the run with the newest slot", "[catalog][schedules]") {
    TempCatalog t;
    auto& c = *t.catalog;
    c.insert_schedule(schedule("sc1", "u1", "nightly"));
    c.insert_schedule_run("sc1", run(2000, ScheduleOutcome::succeeded, "j2"));
    c.insert_schedule_run("sc1", run(1000, ScheduleOutcome::missed));
    auto s = c.schedule("sc1");
    REQUIRE(s->last_run);
    CHECK(s->last_run->slot == 2000);
    CHECK(s->last_run->at == 2005);
    CHECK(s->last_run->job_id == "j2");
    CHECK(s->last_run->outcome == ScheduleOutcome::succeeded);
    CHECK_FALSE(s->last_run->error);

    auto failed = run(3000, ScheduleOutcome::running, "j3");
    c.insert_schedule_run("sc1", failed);
    CHECK(c.instance_schedules("u1").at(0).last_run->outcome == ScheduleOutcome::running);
    failed.outcome = ScheduleOutcome::failed;
    failed.at = 3100;
    failed.error = ErrorInfo{"create_failed", "libvirt refused."};
    c.update_schedule_run("sc1", failed);
    const auto all = c.all_schedules();
    REQUIRE(all.size() == 1);
    REQUIRE(all[0].last_run);
    CHECK(all[0].last_run->slot == 3000);
    CHECK(all[0].last_run->at == 3100);
    CHECK(all[0].last_run->outcome == ScheduleOutcome::failed);
    REQUIRE(all[0].last_run->error);
    CHECK(all[0].last_run->error->code == "create_failed");
    CHECK(all[0].last_run->error->message == "libvirt refused.");

    auto one = c.schedule_run("sc1", 1000);
    REQUIRE(one);
    CHECK(one->outcome == ScheduleOutcome::missed);
    CHECK_FALSE(one->job_id);
    CHECK_FALSE(c.schedule_run("sc1", 1500));
}

TEST_CASE("A slot is recorded once: a second run of it is refused and changes nothing", "[catalog][schedules]") {
    TempCatalog t;
    auto& c = *t.catalog;
    c.insert_schedule(schedule("sc1", "u1", "nightly"));
    c.insert_schedule(schedule("sc2", "u1", "hourly"));
    c.insert_schedule_run("sc1", run(1000, ScheduleOutcome::running, "j1"));
    try {
        c.insert_schedule_run("sc1", run(1000, ScheduleOutcome::running, "j2"));
        FAIL("the slot was recorded twice");
    } catch (const sql::Error& e) {
        CHECK(e.kind() == CatalogError::Kind::conflict);
    }
    CHECK(c.schedule_run("sc1", 1000)->job_id == "j1");
    CHECK_NOTHROW(c.insert_schedule_run("sc2", run(1000, ScheduleOutcome::running, "j3")));

    // In a transaction with other rows, the conflict takes them all back.
    try {
        c.write_transaction([&] {
            c.insert_snapshot(snapshot("snap-x", "u1", "sc1", 1));
            c.insert_schedule_run("sc1", run(1000, ScheduleOutcome::running, "j4"));
        });
        FAIL("the slot was recorded twice");
    } catch (const CatalogError& e) {
        CHECK(e.kind() == CatalogError::Kind::conflict);
    }
    CHECK_FALSE(c.snapshot("snap-x"));
}

TEST_CASE("Running runs are listed with their schedules", "[catalog][schedules]") {
    TempCatalog t;
    auto& c = *t.catalog;
    c.insert_schedule(schedule("sc1", "u1", "nightly"));
    c.insert_schedule(schedule("sc2", "u2", "nightly"));
    c.insert_schedule_run("sc1", run(1000, ScheduleOutcome::succeeded, "j1"));
    c.insert_schedule_run("sc1", run(2000, ScheduleOutcome::running, "j2"));
    c.insert_schedule_run("sc2", run(2000, ScheduleOutcome::running, "j3"));
    c.insert_schedule_run("sc2", run(1000, ScheduleOutcome::skipped));
    auto running = c.running_schedule_runs();
    REQUIRE(running.size() == 2);
    std::sort(running.begin(), running.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    CHECK(running[0].first == "sc1");
    CHECK(running[0].second.job_id == "j2");
    CHECK(running[1].first == "sc2");
    CHECK(running[1].second.job_id == "j3");
}

TEST_CASE("Schedules are listed by name per instance and paged newest first", "[catalog][schedules]") {
    TempCatalog t;
    auto& c = *t.catalog;
    for (int i = 0; i < 12; ++i) c.insert_schedule(schedule("s" + std::to_string(i), i % 3 == 0 ? "u2" : "u1",
                                                            "n" + std::to_string(100 - i)));
    const auto mine = c.instance_schedules("u1");
    REQUIRE(mine.size() == 8);
    CHECK(std::is_sorted(mine.begin(), mine.end(), [](const auto& a, const auto& b) { return a.name < b.name; }));
    CHECK(c.all_schedules().size() == 12);

    ScheduleQuery q;
    q.limit = 5;
    auto p1 = c.query_schedules(q, std::nullopt);
    REQUIRE(p1.items.size() == 5);
    CHECK(p1.items.front().id == "s11");
    REQUIRE(p1.next_cursor);
    q.cursor = p1.next_cursor;
    auto p2 = c.query_schedules(q, std::nullopt);
    REQUIRE(p2.items.size() == 5);
    CHECK(p2.items.front().id == "s6");
    q.cursor = p2.next_cursor;
    auto p3 = c.query_schedules(q, std::nullopt);
    CHECK(p3.items.size() == 2);
    CHECK_FALSE(p3.next_cursor);

    q = {};
    auto u2 = c.query_schedules(q, std::string("u2"));
    REQUIRE(u2.items.size() == 4);
    for (const auto& s : u2.items) CHECK(s.instance.uuid == "u2");
    q.cursor = "garbage";
    try {
        c.query_schedules(q, std::nullopt);
        FAIL("a cursor never handed out was accepted");
    } catch (const CatalogError& e) {
        CHECK(e.kind() == CatalogError::Kind::bad_cursor);
    }
}

TEST_CASE("A schedule's snapshots are its own, oldest first", "[catalog][schedules]") {
    TempCatalog t;
    auto& c = *t.catalog;
    c.insert_schedule(schedule("sc1", "u1", "nightly"));
    c.insert_schedule(schedule("sc2", "u1", "hourly"));
    c.insert_snapshot(snapshot("b", "u1", "sc1", 20));
    c.insert_snapshot(snapshot("a", "u1", "sc1", 10));
    c.insert_snapshot(snapshot("manual", "u1", std::nullopt, 5));
    c.insert_snapshot(snapshot("other", "u1", "sc2", 1));
    CHECK(ids(c.schedule_snapshots("sc1")) == std::vector<std::string>{"a", "b"});
    CHECK(ids(c.schedule_snapshots("sc2")) == std::vector<std::string>{"other"});
    CHECK(c.snapshot("a")->schedule_id == "sc1");
    CHECK_FALSE(c.snapshot("manual")->schedule_id);
    CHECK(c.orphaned_schedule_snapshots().empty());

    // A job or the reconciler writing a row back never changes its schedule.
    auto a = *c.snapshot("a");
    a.schedule_id.reset();
    a.description = "edited";
    c.update_snapshot(a);
    CHECK(c.snapshot("a")->schedule_id == "sc1");
    CHECK(c.snapshot("a")->description == "edited");
}

TEST_CASE("Deleting a schedule makes its snapshots ordinary, or leaves them to retention", "[catalog][schedules]") {
    TempCatalog t;
    auto& c = *t.catalog;
    c.insert_schedule(schedule("sc1", "u1", "nightly"));
    c.insert_schedule(schedule("sc2", "u1", "hourly"));
    c.insert_schedule(schedule("sc3", "u1", "weekly"));
    c.insert_snapshot(snapshot("a1", "u1", "sc1", 1));
    c.insert_snapshot(snapshot("b2", "u1", "sc2", 3));
    c.insert_snapshot(snapshot("b1", "u1", "sc2", 2));
    c.insert_snapshot(snapshot("c1", "u1", "sc3", 4));
    c.insert_schedule_run("sc1", run(1000, ScheduleOutcome::succeeded, "j1"));
    c.insert_schedule_run("sc2", run(1000, ScheduleOutcome::succeeded, "j2"));

    c.delete_schedule("sc1", false);
    CHECK_FALSE(c.schedule("sc1"));
    CHECK_FALSE(c.schedule_run("sc1", 1000));
    CHECK_FALSE(c.snapshot("a1")->schedule_id);
    CHECK(c.orphaned_schedule_snapshots().empty());

    c.delete_schedule("sc2", true);
    CHECK_FALSE(c.schedule("sc2"));
    CHECK_FALSE(c.schedule_run("sc2", 1000));
    CHECK(c.snapshot("b1")->schedule_id == "sc2");
    CHECK(ids(c.orphaned_schedule_snapshots()) == std::vector<std::string>{"b1", "b2"});

    CHECK(c.schedule("sc3"));
    CHECK(c.snapshot("c1")->schedule_id == "sc3");
    CHECK(c.count_schedules("u1") == 1);
    c.delete_schedule("never-was", false);  // nothing to do, no error
}

TEST_CASE("A version-1 catalog migrates in place (through every version) and keeps all its data", "[catalog][schedules]") {
    struct Dir {
        std::filesystem::path path = test::make_temp_dir("snapvirt-migrate");
        ~Dir() { std::filesystem::remove_all(path); }
    } temp;
    const auto& dir = temp.path;
    {
        sql::Database old((dir / "catalog.db").string(), false);
        old.exec(version_1_schema);
        old.exec("INSERT INTO instances (uuid, name, state, memory_mib, vcpus, present, updated_at) "
                 "VALUES ('u1', 'web1', 'running', 128, 2, 1, 1)");
        old.exec("INSERT INTO snapshots (id, instance_uuid, name, display_name, description, mode, state, parent_id, "
                 "is_current, created_at, origin) VALUES "
                 "('s1', 'u1', 'root', 'Root', 'first', 'memory', 'ready', NULL, 0, 10, 'api'), "
                 "('s2', 'u1', 'child', 'Child', '', 'stopped', 'ready', 's1', 1, 20, 'discovered')");
        old.exec("INSERT INTO jobs (id, kind, instance_uuid, instance_name, snapshot_id, state, created_at, params) "
                 "VALUES ('j1', 'create', 'u1', 'web1', 's2', 'succeeded', 20, '{\"name\":\"child\"}')");
        old.exec("INSERT INTO idempotency (key, request_hash, status, body, created_at) VALUES ('k', 'h', 202, '{}', 30)");
        old.exec("INSERT INTO tokens (name, scope, hash, created_at) VALUES ('admin', 'write', 'abc', 40)");
        REQUIRE(old.scalar("PRAGMA user_version") == 1);
    }
    {
        Catalog c(dir);
        const auto web = c.find_instance("web1");
        REQUIRE(web);
        CHECK(web->memory_mib == 128);
        CHECK(web->snapshot_count == 2);
        CHECK(web->current_snapshot_id == "s2");
        const auto snaps = c.instance_snapshots("u1");
        REQUIRE(snaps.size() == 2);
        CHECK(snaps[0].id == "s1");
        CHECK(snaps[0].description == "first");
        CHECK(snaps[1].parent_id == "s1");
        CHECK(snaps[1].origin == "discovered");
        for (const auto& s : snaps) {
            CHECK_FALSE(s.schedule_id);
            CHECK(s.method == SnapshotMethod::internal);  // version 3: every older snapshot was internal
            CHECK(s.files.empty());
        }
        const auto job = c.job("j1");
        REQUIRE(job);
        CHECK(job->params == "{\"name\":\"child\"}");
        CHECK(c.idempotent("k", 0));
        REQUIRE(c.tokens().size() == 1);
        CHECK(c.tokens()[0].name == "admin");

        // The new tables and column work on the migrated file.
        c.insert_schedule(schedule("sc1", "u1", "nightly"));
        c.insert_snapshot(snapshot("s3", "u1", "sc1", 30));
        c.insert_schedule_run("sc1", run(1000, ScheduleOutcome::running, "j2"));
        CHECK(ids(c.schedule_snapshots("sc1")) == std::vector<std::string>{"s3"});
        CHECK(c.schedule("sc1")->last_run->job_id == "j2");
    }
    {
        sql::Database check((dir / "catalog.db").string(), true);
        CHECK(check.scalar("PRAGMA user_version") == Catalog::schema_version);
        CHECK(Catalog::schema_version == 3);
    }
    Catalog again(dir);  // reopening a migrated catalog migrates nothing
    CHECK(again.schedule("sc1"));
    CHECK(again.snapshot("s3")->schedule_id == "sc1");
}
