// The scheduler against a real catalog (a temporary directory), a manual clock and a fake
// host that does what the engine's create and delete paths do to the catalog.

#include "daemon/catalog.hpp"
#include "daemon/schedule/clock.hpp"
#include "daemon/schedule/scheduler.hpp"
#include "tests/support/daemon.hpp"

#include "tests/support/catch.hpp"

#include <filesystem>
#include <functional>
#include <thread>

using namespace snapvirt;
using namespace snapvirt::daemon;
using namespace snapvirt::daemon::schedule;
using api::ApiError;
using api::ErrorCode;

namespace {

constexpr TimeMs T0 = 1796083200000;  // 2026-12-01 00:00:00 UTC
constexpr TimeMs MIN = 60'000;
constexpr TimeMs SEC = 1'000;

struct TempCatalog {
    TempCatalog() : dir(test::make_temp_dir("snapvirt-scheduler")), catalog(std::make_unique<Catalog>(dir)) {}
    ~TempCatalog() {
        catalog.reset();
        std::filesystem::remove_all(dir);
    }
    std::filesystem::path dir;
    std::unique_ptr<Catalog> catalog;
};

// What the engine does to the catalog for a run's create and a retention delete, without libvirt.
class FakeHost final : public SchedulerHost {
public:
    FakeHost(Catalog& c, Clock& clock) : c_(c), clock_(clock) {}

    std::function<std::optional<ApiError>(const Schedule&)> refuse_run;  // a refusal for this call
    std::set<std::string> busy_for_deletes;                              // instance uuids
    unsigned limit = 0;
    int run_attempts = 0;
    std::vector<std::string> creates, deletes;  // job ids, in order
    std::vector<ScheduleRun> published_runs;

    std::optional<Job> submit_run(const Schedule& s, TimeMs slot, const std::string& display_name) override {
        ++run_attempts;
        if (refuse_run)
            if (auto e = refuse_run(s)) throw *e;
        if (limit && c_.count_snapshots(s.instance.uuid) >= limit)
            throw ApiError(ErrorCode::snapshot_limit_reached, "The instance has the most snapshots allowed.");
        Snapshot snap;
        snap.id = new_uuid();
        snap.instance = s.instance;
        snap.name = "run-" + std::to_string(++made_);
        snap.display_name = display_name;
        snap.mode = s.mode;
        snap.state = SnapshotState::creating;
        snap.created_at = clock_.now();
        snap.schedule_id = s.id;
        JobRecord rec = job(JobKind::create, s.instance, snap.id);
        try {
            c_.write_transaction([&] {
                c_.insert_schedule_run(s.id, ScheduleRun{slot, clock_.now(), rec.job.id, ScheduleOutcome::running, {}});
                c_.insert_snapshot(snap);
                c_.insert_job(rec);
            });
        } catch (const CatalogError& e) {
            if (e.kind() == CatalogError::Kind::conflict && c_.schedule_run(s.id, slot)) return std::nullopt;
            throw;
        }
        creates.push_back(rec.job.id);
        return rec.job;
    }

    Job submit_retention_delete(const std::string& snapshot_id) override {
        auto snap = c_.snapshot(snapshot_id);
        if (!snap) throw ApiError(ErrorCode::snapshot_not_found, "No such snapshot.");
        if (busy_for_deletes.count(snap->instance.uuid))
            throw ApiError(ErrorCode::instance_busy, "The instance is busy.");
        JobRecord rec = job(JobKind::delete_, snap->instance, snap->id);
        c_.write_transaction([&] {
            snap->state = SnapshotState::deleting;
            c_.update_snapshot(*snap);
            c_.insert_job(rec);
        });
        deletes.push_back(rec.job.id);
        return rec.job;
    }

    std::optional<Job> find_job(const std::string& id) override {
        if (auto r = c_.job(id)) return r->job;
        return std::nullopt;
    }
    void publish_schedule(const std::string&) override { ++schedule_updates; }
    void publish_run(const Schedule&, const ScheduleRun& run) override { published_runs.push_back(run); }
    int schedule_updates = 0;

    // Ends a job as its kind would: a create's snapshot becomes ready (or goes), a delete's goes.
    void finish(const std::string& job_id, bool ok = true) {
        auto rec = c_.job(job_id);
        REQUIRE(rec);
        Job j = rec->job;
        j.state = ok ? JobState::succeeded : JobState::failed;
        j.finished_at = clock_.now();
        if (!ok) j.error = ErrorInfo{"create_failed", "libvirt refused."};
        auto snap = (j.snapshot_id ? c_.snapshot(*j.snapshot_id) : std::nullopt);
        if (j.kind == JobKind::create && snap) {
            if (ok) {
                snap->state = SnapshotState::ready;
                c_.update_snapshot(*snap);
            } else {
                c_.delete_snapshot(snap->id);
            }
        }
        if (j.kind == JobKind::delete_ && snap && ok) c_.delete_snapshot(snap->id);
        c_.update_job(j);
    }

private:
    JobRecord job(JobKind kind, const InstanceRef& instance, const std::string& snapshot_id) {
        JobRecord rec;
        rec.job.id = new_uuid();
        rec.job.kind = kind;
        rec.job.instance = instance;
        rec.job.snapshot_id = snapshot_id;
        rec.job.state = JobState::queued;
        rec.job.progress.phase = to_string(JobPhase::queued);
        rec.job.created_at = clock_.now();
        return rec;
    }
    Catalog& c_;
    Clock& clock_;
    int made_ = 0;
};

struct World {
    TempCatalog t;
    Catalog& c = *t.catalog;
    ManualClock clock{T0};
    FakeHost host{c, clock};
    SchedulerOptions opts;

    World() {
        c.upsert_instance({"u1", "web1", "running", 64, 1, true});
        c.upsert_instance({"u2", "db1", "running", 64, 1, true});
        opts.schedules.busy_retry_s = 10;
        opts.schedules.busy_window_s = 30;
    }

    Schedule schedule(const std::string& id, const std::string& cron, std::optional<TimeMs> next,
                      std::optional<unsigned> keep_last = 2, const std::string& instance = "u1") {
        Schedule s;
        s.id = id;
        s.instance = {instance, instance == "u1" ? "web1" : "db1"};
        s.name = "sched-" + id;
        s.cron = cron;
        s.mode = SnapshotMode::memory;
        s.keep_last = keep_last;
        s.next_run_at = next;
        s.created_at = T0 - MIN;
        s.updated_at = s.created_at;
        return s;
    }
    void add(const Schedule& s) { c.insert_schedule(s); }

    Snapshot snapshot(const std::string& id, TimeMs created, std::optional<std::string> schedule_id,
                      const std::string& instance = "u1") {
        Snapshot s;
        s.id = id;
        s.instance = {instance, instance == "u1" ? "web1" : "db1"};
        s.name = id;
        s.display_name = id;
        s.mode = SnapshotMode::memory;
        s.state = SnapshotState::ready;
        s.created_at = created;
        s.schedule_id = std::move(schedule_id);
        c.insert_snapshot(s);
        return s;
    }

    std::vector<std::string> snapshot_ids(const std::string& instance = "u1") {
        std::vector<std::string> out;
        for (const auto& s : c.instance_snapshots(instance)) out.push_back(s.id);
        std::sort(out.begin(), out.end());
        return out;
    }
    void at(TimeMs t) { clock.set(t); }
};

std::optional<ScheduleRun> run_of(Catalog& c, const std::string& id, TimeMs slot) { return c.schedule_run(id, slot); }

}  // namespace

TEST_CASE("A schedule's slot runs once, at its time, and gets its job's outcome", "[scheduler]") {
    World w;
    w.add(w.schedule("s1", "* * * * *", T0 + MIN));
    Scheduler sched(w.opts, w.c, w.host, w.clock);

    CHECK(sched.tick() == T0 + MIN);  // sleeps until the slot: nothing to do before
    CHECK(w.host.creates.empty());

    w.at(T0 + MIN);
    sched.tick();
    REQUIRE(w.host.creates.size() == 1);
    auto run = run_of(w.c, "s1", T0 + MIN);
    REQUIRE(run);
    CHECK(run->outcome == ScheduleOutcome::running);
    CHECK(w.c.schedule("s1")->next_run_at == T0 + 2 * MIN);
    const auto snap = w.c.job(w.host.creates[0])->job.snapshot_id.value();
    CHECK(w.c.snapshot(snap)->display_name == "sched-s1 2026-12-01 00:01");

    w.at(T0 + MIN + 5 * SEC);
    sched.tick();
    CHECK(w.host.creates.size() == 1);  // the slot does not run twice

    w.host.finish(w.host.creates[0]);
    sched.tick();
    run = run_of(w.c, "s1", T0 + MIN);
    CHECK(run->outcome == ScheduleOutcome::succeeded);
    CHECK(run->job_id == w.host.creates[0]);
    CHECK(sched.runs(ScheduleOutcome::succeeded) == 1);
    CHECK(w.c.schedule("s1")->last_run->outcome == ScheduleOutcome::succeeded);

    // A new scheduler (a restart) with next_run_at set back to that slot never runs it again.
    auto s = *w.c.schedule("s1");
    s.next_run_at = T0 + MIN;
    w.c.update_schedule(s);
    Scheduler again(w.opts, w.c, w.host, w.clock);
    again.tick();
    CHECK(w.host.creates.size() == 1);
    CHECK(w.c.schedule("s1")->next_run_at == T0 + 2 * MIN);
}

TEST_CASE("A run whose display name is taken gets #2", "[scheduler]") {
    World w;
    w.add(w.schedule("s1", "* * * * *", T0 + MIN));
    w.snapshot("manual", T0, std::nullopt);
    auto m = *w.c.snapshot("manual");
    m.display_name = "sched-s1 2026-12-01 00:01";
    w.c.update_snapshot(m);
    Scheduler sched(w.opts, w.c, w.host, w.clock);
    w.at(T0 + MIN);
    sched.tick();
    REQUIRE(w.host.creates.size() == 1);
    CHECK(w.c.snapshot(w.c.job(w.host.creates[0])->job.snapshot_id.value())->display_name == "sched-s1 2026-12-01 00:01 #2");
}

TEST_CASE("A busy instance is retried every busy_retry_s, then the run is missed", "[scheduler]") {
    World w;
    w.add(w.schedule("s1", "* * * * *", T0 + MIN));
    w.host.refuse_run = [](const Schedule&) { return ApiError(ErrorCode::instance_busy, "Instance 'web1' is busy."); };
    Scheduler sched(w.opts, w.c, w.host, w.clock);
    w.at(T0 + MIN);
    CHECK(sched.tick() == T0 + MIN + 10 * SEC);  // the next try, not a busy loop
    CHECK(w.host.run_attempts == 1);
    CHECK_FALSE(run_of(w.c, "s1", T0 + MIN));
    CHECK(sched.overdue_seconds() == 0);
    w.at(T0 + MIN + 5 * SEC);
    CHECK(sched.overdue_seconds() == Approx(5));
    sched.tick();
    CHECK(w.host.run_attempts == 1);
    for (int i = 1; i <= 3; ++i) {
        w.at(T0 + MIN + i * 10 * SEC);
        sched.tick();
        CHECK(w.host.run_attempts == 1 + i);
    }
    auto run = run_of(w.c, "s1", T0 + MIN);
    REQUIRE(run);
    CHECK(run->outcome == ScheduleOutcome::missed);
    REQUIRE(run->error);
    CHECK(run->error->code == "instance_busy");
    CHECK_FALSE(run->job_id);
    CHECK(sched.runs(ScheduleOutcome::missed) == 1);
    CHECK(sched.overdue_seconds() == 0);
    w.at(T0 + MIN + 50 * SEC);
    sched.tick();
    CHECK(w.host.run_attempts == 4);  // nothing more for that slot
}

TEST_CASE("The busy window ends at the next slot", "[scheduler]") {
    World w;
    w.opts.schedules.busy_window_s = 600;
    w.add(w.schedule("s1", "* * * * *", T0 + MIN));
    w.host.refuse_run = [](const Schedule&) { return ApiError(ErrorCode::hypervisor_unavailable, "libvirt is away."); };
    Scheduler sched(w.opts, w.c, w.host, w.clock);
    for (TimeMs t = T0 + MIN; t <= T0 + 2 * MIN; t += 10 * SEC) {
        w.at(t);
        sched.tick();
    }
    auto run = run_of(w.c, "s1", T0 + MIN);
    REQUIRE(run);
    CHECK(run->outcome == ScheduleOutcome::missed);
    CHECK(run->error->code == "hypervisor_unavailable");
}

TEST_CASE("A memory run of a shut-off or vanished instance is skipped without a job", "[scheduler]") {
    World w;
    w.add(w.schedule("s1", "* * * * *", T0 + MIN));
    ErrorCode code = ErrorCode::instance_not_running;
    w.host.refuse_run = [&](const Schedule&) { return ApiError(code, "Instance 'web1' is shutoff."); };
    Scheduler sched(w.opts, w.c, w.host, w.clock);
    w.at(T0 + MIN);
    sched.tick();
    auto run = run_of(w.c, "s1", T0 + MIN);
    REQUIRE(run);
    CHECK(run->outcome == ScheduleOutcome::skipped);
    CHECK(run->error->code == "instance_not_running");
    CHECK(w.host.creates.empty());
    CHECK(w.host.run_attempts == 1);

    code = ErrorCode::instance_not_found;
    w.at(T0 + 2 * MIN);
    sched.tick();
    run = run_of(w.c, "s1", T0 + 2 * MIN);
    REQUIRE(run);
    CHECK(run->outcome == ScheduleOutcome::skipped);
    CHECK(run->error->code == "instance_not_found");
    CHECK(sched.runs(ScheduleOutcome::skipped) == 2);
}

TEST_CASE("A run that cannot be submitted, or whose job fails, is failed with the error", "[scheduler]") {
    World w;
    w.add(w.schedule("s1", "* * * * *", T0 + MIN));
    bool refuse = true;
    w.host.refuse_run = [&](const Schedule&) -> std::optional<ApiError> {
        if (refuse) return ApiError(ErrorCode::unsupported_disk, "Disk 'vda' is raw.");
        return std::nullopt;
    };
    Scheduler sched(w.opts, w.c, w.host, w.clock);
    w.at(T0 + MIN);
    sched.tick();
    auto run = run_of(w.c, "s1", T0 + MIN);
    REQUIRE(run);
    CHECK(run->outcome == ScheduleOutcome::failed);
    CHECK(run->error->code == "unsupported_disk");

    refuse = false;
    w.at(T0 + 2 * MIN);
    sched.tick();
    REQUIRE(w.host.creates.size() == 1);
    w.host.finish(w.host.creates[0], false);
    sched.tick();
    run = run_of(w.c, "s1", T0 + 2 * MIN);
    CHECK(run->outcome == ScheduleOutcome::failed);
    CHECK(run->error->code == "create_failed");
    CHECK(run->job_id == w.host.creates[0]);
    CHECK(sched.runs(ScheduleOutcome::failed) == 2);
}

TEST_CASE("Retention deletes the schedule's oldest beyond keep_last, one job at a time, and nothing else",
          "[scheduler]") {
    World w;
    w.add(w.schedule("s1", "* * * * *", T0 + MIN, 2));
    w.add(w.schedule("s2", "* * * * *", T0 + 10 * MIN, 1));
    w.snapshot("a-old", T0 - 40 * MIN, "s1");
    w.snapshot("b-old", T0 - 30 * MIN, "s1");
    w.snapshot("c-mid", T0 - 20 * MIN, "s1");
    w.snapshot("manual1", T0 - 50 * MIN, std::nullopt);
    w.snapshot("other1", T0 - 45 * MIN, "s2");
    w.snapshot("other2", T0 - 44 * MIN, "s2");  // s2 is beyond its keep_last too: its own retention
    auto busy = w.snapshot("d-reverting", T0 - 35 * MIN, "s1");
    busy.state = SnapshotState::reverting;
    w.c.update_snapshot(busy);
    w.snapshot("x-db", T0 - 60 * MIN, "s1", "u2");  // another instance's (a schedule never has those)

    Scheduler sched(w.opts, w.c, w.host, w.clock);
    // Start-up retention runs first; finish its deletes.
    auto settle = [&] {
        for (int i = 0; i < 20; ++i) {
            sched.tick();
            bool open = false;
            for (const auto& id : w.host.deletes) {
                auto j = w.c.job(id);
                if (!terminal(j->job.state)) {
                    // one delete job at a time
                    int unfinished = 0;
                    for (const auto& d : w.host.deletes) unfinished += !terminal(w.c.job(d)->job.state);
                    CHECK(unfinished == 1);
                    w.host.finish(id);
                    open = true;
                }
            }
            if (!open) return;
        }
    };
    settle();
    w.at(T0 + MIN);
    sched.tick();
    REQUIRE(w.host.creates.size() == 1);
    const std::string taken = w.c.job(w.host.creates[0])->job.snapshot_id.value();
    w.host.finish(w.host.creates[0]);
    settle();

    std::vector<std::string> deleted_order;
    for (const auto& id : w.host.deletes) deleted_order.push_back(w.c.job(id)->job.snapshot_id.value());
    // s1 had a, b, c, d(reverting), x + the run: keep the newest two (c and the run); d is in
    // flight and never touched; s2's own retention removed other1 (oldest first).
    CHECK(std::find(deleted_order.begin(), deleted_order.end(), "manual1") == deleted_order.end());
    CHECK(std::find(deleted_order.begin(), deleted_order.end(), "d-reverting") == deleted_order.end());
    CHECK(std::find(deleted_order.begin(), deleted_order.end(), taken) == deleted_order.end());
    auto pos = [&](const std::string& id) {
        return std::find(deleted_order.begin(), deleted_order.end(), id) - deleted_order.begin();
    };
    CHECK(pos("a-old") < pos("b-old"));
    CHECK(pos("x-db") < static_cast<long>(deleted_order.size()));
    CHECK(pos("other1") < static_cast<long>(deleted_order.size()));
    CHECK(w.c.snapshot("manual1"));
    CHECK(w.c.snapshot("other2"));
    CHECK(w.c.snapshot("c-mid"));
    CHECK(w.c.snapshot("d-reverting"));
    CHECK(w.c.snapshot(taken));
    CHECK_FALSE(w.c.snapshot("a-old"));
    CHECK_FALSE(w.c.snapshot("b-old"));
}

TEST_CASE("max_age retention never deletes the snapshot the run just took", "[scheduler]") {
    World w;
    auto s = w.schedule("s1", "* * * * *", T0 + MIN, std::nullopt);
    s.max_age = "2m";
    w.add(s);
    w.snapshot("young", T0 - MIN, "s1");
    w.snapshot("old", T0 - 5 * MIN, "s1");
    Scheduler sched(w.opts, w.c, w.host, w.clock);
    sched.tick();  // start-up retention: "old" is past max_age
    REQUIRE(w.host.deletes.size() == 1);
    CHECK(w.c.job(w.host.deletes[0])->job.snapshot_id.value() == "old");
    w.host.finish(w.host.deletes[0]);
    sched.tick();
    CHECK(w.host.deletes.size() == 1);

    w.at(T0 + MIN);
    sched.tick();
    REQUIRE(w.host.creates.size() == 1);
    const std::string taken = w.c.job(w.host.creates[0])->job.snapshot_id.value();
    // The job takes long: by its end its own snapshot is past max_age too.
    w.at(T0 + 4 * MIN - 1);
    w.host.finish(w.host.creates[0]);
    sched.tick();
    REQUIRE(w.host.deletes.size() == 2);
    CHECK(w.c.job(w.host.deletes[1])->job.snapshot_id.value() == "young");
    w.host.finish(w.host.deletes[1]);
    sched.tick();
    CHECK(w.host.deletes.size() == 2);
    CHECK(w.c.snapshot(taken));
}

TEST_CASE("Retention on a busy instance tries again later", "[scheduler]") {
    World w;
    w.add(w.schedule("s1", "0 0 1 1 *", T0 + 400LL * 24 * 60 * MIN, 1));
    w.snapshot("a", T0 - 3 * MIN, "s1");
    w.snapshot("b", T0 - 2 * MIN, "s1");
    w.host.busy_for_deletes.insert("u1");
    Scheduler sched(w.opts, w.c, w.host, w.clock);
    CHECK(sched.tick() == T0 + 10 * SEC);
    CHECK(w.host.deletes.empty());
    w.host.busy_for_deletes.clear();
    w.at(T0 + 10 * SEC);
    sched.tick();
    REQUIRE(w.host.deletes.size() == 1);
    CHECK(w.c.job(w.host.deletes[0])->job.snapshot_id.value() == "a");
}

TEST_CASE("At the snapshot limit the schedule's own oldest make room, down to keep_last - 1", "[scheduler]") {
    World w;
    w.host.limit = 3;
    w.opts.max_snapshots_per_instance = 3;
    w.add(w.schedule("s1", "* * * * *", T0 + MIN, 2));
    w.snapshot("manual", T0 - 50 * MIN, std::nullopt);
    w.snapshot("own1", T0 - 40 * MIN, "s1");
    w.snapshot("own2", T0 - 30 * MIN, "s1");
    Scheduler sched(w.opts, w.c, w.host, w.clock);
    sched.tick();
    CHECK(w.host.deletes.empty());  // keep_last 2: start-up retention has nothing to do
    w.at(T0 + MIN);
    sched.tick();
    CHECK(w.host.creates.empty());
    REQUIRE(w.host.deletes.size() == 1);
    CHECK(w.c.job(w.host.deletes[0])->job.snapshot_id.value() == "own1");
    w.host.finish(w.host.deletes[0]);
    sched.tick();
    REQUIRE(w.host.creates.size() == 1);
    w.host.finish(w.host.creates[0]);
    sched.tick();
    CHECK(run_of(w.c, "s1", T0 + MIN)->outcome == ScheduleOutcome::succeeded);
    CHECK(w.c.snapshot("manual"));
    CHECK(w.c.snapshot("own2"));
    CHECK(w.c.count_snapshots("u1") == 3);
}

TEST_CASE("At the snapshot limit with nothing of its own to delete the run fails", "[scheduler]") {
    World w;
    w.host.limit = 2;
    w.opts.max_snapshots_per_instance = 2;
    w.add(w.schedule("s1", "* * * * *", T0 + MIN, 1));
    w.snapshot("manual1", T0 - 50 * MIN, std::nullopt);
    w.snapshot("manual2", T0 - 40 * MIN, std::nullopt);
    Scheduler sched(w.opts, w.c, w.host, w.clock);
    w.at(T0 + MIN);
    sched.tick();
    auto run = run_of(w.c, "s1", T0 + MIN);
    REQUIRE(run);
    CHECK(run->outcome == ScheduleOutcome::failed);
    CHECK(run->error->code == "snapshot_limit_reached");
    CHECK(w.host.deletes.empty());
    CHECK(w.c.snapshot("manual1"));
    CHECK(w.c.snapshot("manual2"));
}

TEST_CASE("After downtime a schedule catches up once within the window, else records one missed run",
          "[scheduler]") {
    SECTION("within one period: one run, now, for the newest missed slot") {
        World w;
        w.add(w.schedule("s1", "0 * * * *", T0 + 60 * MIN));
        w.at(T0 + 150 * MIN);  // slots at 01:00 and 02:00 passed; 02:00 is 30 minutes old
        Scheduler sched(w.opts, w.c, w.host, w.clock);
        sched.tick();
        REQUIRE(w.host.creates.size() == 1);
        CHECK(run_of(w.c, "s1", T0 + 120 * MIN));
        CHECK_FALSE(run_of(w.c, "s1", T0 + 60 * MIN));
        CHECK(w.c.schedule("s1")->next_run_at == T0 + 180 * MIN);
        sched.tick();
        CHECK(w.host.creates.size() == 1);
    }
    SECTION("older than catch_up_window_s: one missed run, no job") {
        World w;
        w.opts.schedules.catch_up_window_s = 600;
        w.add(w.schedule("s1", "0 * * * *", T0 + 60 * MIN));
        w.at(T0 + 150 * MIN);
        Scheduler sched(w.opts, w.c, w.host, w.clock);
        sched.tick();
        CHECK(w.host.creates.empty());
        auto run = run_of(w.c, "s1", T0 + 120 * MIN);
        REQUIRE(run);
        CHECK(run->outcome == ScheduleOutcome::missed);
        CHECK_FALSE(run_of(w.c, "s1", T0 + 60 * MIN));
        CHECK(w.c.schedule("s1")->next_run_at == T0 + 180 * MIN);
        CHECK(sched.runs(ScheduleOutcome::missed) == 1);
    }
    SECTION("a schedule whose slot has not come is left alone") {
        World w;
        w.add(w.schedule("s1", "0 * * * *", T0 + 60 * MIN));
        w.at(T0 + 59 * MIN + 30 * SEC);
        Scheduler sched(w.opts, w.c, w.host, w.clock);
        CHECK(sched.tick() == T0 + 60 * MIN);  // sleeps until the slot
        CHECK(w.host.creates.empty());
    }
}

TEST_CASE("A run a crash left running gets its job's outcome at start-up", "[scheduler]") {
    World w;
    w.add(w.schedule("s1", "0 * * * *", T0 + 60 * MIN));
    w.at(T0 - 2 * MIN);
    w.host.submit_run(*w.c.schedule("s1"), T0 - 2 * MIN, "x");
    const std::string job_id = w.host.creates[0];
    auto j = w.c.job(job_id)->job;
    j.state = JobState::failed;
    j.error = ErrorInfo{"interrupted", "snapvirtd stopped during the job."};
    w.c.update_job(j);
    w.at(T0);
    Scheduler sched(w.opts, w.c, w.host, w.clock);
    sched.tick();
    auto run = run_of(w.c, "s1", T0 - 2 * MIN);
    REQUIRE(run);
    CHECK(run->outcome == ScheduleOutcome::failed);
    CHECK(run->error->code == "interrupted");
    CHECK(w.c.running_schedule_runs().empty());
}

TEST_CASE("Jitter is a fixed offset per schedule and slot within jitter_s", "[scheduler]") {
    std::set<TimeMs> seen;
    for (TimeMs slot = T0; slot < T0 + 200 * MIN; slot += MIN) {
        const auto a = jitter_offset("s1", slot, 30, MIN).count();
        CHECK(a == jitter_offset("s1", slot, 30, MIN).count());
        CHECK(a >= 0);
        CHECK(a <= 30 * SEC);
        seen.insert(a);
        const auto capped = jitter_offset("s1", slot, 3600, MIN).count();
        CHECK(capped < MIN);  // never as late as the next slot
    }
    CHECK(seen.size() > 100);  // spread, not one value
    CHECK(jitter_offset("s1", T0, 0, MIN).count() == 0);
    CHECK(jitter_offset("s1", T0, 30, MIN) != jitter_offset("s2", T0, 30, MIN));

    World w;
    auto s = w.schedule("s1", "0 * * * *", T0 + 60 * MIN);
    s.jitter_s = 600;
    w.add(s);
    Scheduler sched(w.opts, w.c, w.host, w.clock);
    const TimeMs due = T0 + 60 * MIN + jitter_offset("s1", T0 + 60 * MIN, 600, 60 * MIN).count();
    // Sleeps until the slot plus its offset (at most a minute at a time).
    CHECK(sched.tick() == std::min(due, T0 + MIN));
    w.at(due - 30 * SEC);
    CHECK(sched.tick() == due);
    w.at(due - 1);
    sched.tick();
    CHECK(w.host.creates.empty());
    w.at(due);
    sched.tick();
    CHECK(w.host.creates.size() == 1);
}

TEST_CASE("A disabled schedule never runs", "[scheduler]") {
    World w;
    auto s = w.schedule("s1", "* * * * *", T0 + MIN);
    s.enabled = false;
    w.add(s);
    Scheduler sched(w.opts, w.c, w.host, w.clock);
    for (int i = 1; i < 5; ++i) {
        w.at(T0 + i * MIN);
        sched.tick();
    }
    CHECK(w.host.creates.empty());
    CHECK(w.host.run_attempts == 0);
    CHECK_FALSE(run_of(w.c, "s1", T0 + MIN));
}

TEST_CASE("The scheduler's thread wakes when schedules change and when the clock reaches a slot",
          "[scheduler]") {
    World w;
    Scheduler sched(w.opts, w.c, w.host, w.clock);
    sched.start();
    auto eventually = [](const std::function<bool()>& f) {
        for (int i = 0; i < 500; ++i) {
            if (f()) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return false;
    };
    // A schedule without next_run_at gets one as soon as the scheduler hears of it (its thread
    // sleeps up to a minute otherwise, and the manual clock does not move).
    w.add(w.schedule("s1", "* * * * *", std::nullopt));
    sched.schedules_changed();
    CHECK(eventually([&] { return w.c.schedule("s1")->next_run_at == T0 + MIN; }));
    w.at(T0 + MIN);
    CHECK(eventually([&] { return w.c.schedule("s1")->next_run_at == T0 + 2 * MIN; }));
    CHECK(run_of(w.c, "s1", T0 + MIN));
    sched.stop();
}
