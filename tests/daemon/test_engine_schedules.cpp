// Schedules through the engine against libvirt's test driver: making, reading, editing and
// deleting them with the checks api/ cannot make, and the create of a scheduled run recorded
// once per slot in the transaction of its job. The scheduler itself is tested in its own files.

#include "daemon/engine.hpp"
#include "hypervisor/hypervisor.hpp"
#include "tests/support/daemon.hpp"

#include "tests/support/catch.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <mutex>

using namespace snapvirt;
using namespace snapvirt::daemon;
using namespace std::chrono_literals;

namespace {

const char* const node_xml = R"(<node>
  <domain type='test'>
    <name>web1</name><uuid>11111111-0000-0000-0000-0000000000a1</uuid>
    <memory unit='MiB'>128</memory><vcpu>1</vcpu><os><type>hvm</type></os>
    <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/w.qcow2'/><target dev='vda'/></disk></devices>
  </domain>
  <domain type='test'>
    <name>db1</name><uuid>11111111-0000-0000-0000-0000000000a2</uuid>
    <memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os>
    <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/d.qcow2'/><target dev='vda'/></disk></devices>
  </domain>
</node>)";

// Records the schedule events (type, name) and the snapshots made.
class ScheduleSink final : public api::EventSink {
public:
    void job_updated(const api::Job&) override {}
    void snapshot_created(const api::Snapshot& s) override { add("snapshot.created", s.name); }
    void snapshot_updated(const api::Snapshot&) override {}
    void snapshot_deleted(const api::Snapshot&) override {}
    void instance_updated(const api::Instance&) override {}
    void schedule_created(const Schedule& s) override { add("schedule.created", s.name); }
    void schedule_updated(const Schedule& s) override { add("schedule.updated", s.name); }
    void schedule_deleted(const Schedule& s) override { add("schedule.deleted", s.name); }
    void schedule_run(const Schedule& s, const ScheduleRun&) override { add("schedule.run", s.name); }
    std::size_t count(const std::string& type) {
        std::lock_guard lock(mu_);
        std::size_t n = 0;
        for (const auto& e : events_) n += e.first == type;
        return n;
    }
    bool saw(const std::string& type, const std::string& what) {
        std::lock_guard lock(mu_);
        for (const auto& e : events_)
            if (e.first == type && e.second == what) return true;
        return false;
    }

private:
    void add(std::string type, std::string what) {
        std::lock_guard lock(mu_);
        events_.emplace_back(std::move(type), std::move(what));
    }
    std::mutex mu_;
    std::vector<std::pair<std::string, std::string>> events_;
};

struct Harness {
    explicit Harness(EngineOptions opts = {}) : dir(test::make_temp_dir("snapvirt-schedules-engine")) {
        std::ofstream(dir / "node.xml") << node_xml;
        hv::LibvirtOptions ho;
        ho.uri = "test://" + (dir / "node.xml").string();
        hypervisor = hv::make_libvirt_hypervisor(ho);
        REQUIRE(test::eventually([&] { return hypervisor->connected(); }, 5s, 10ms));
        catalog = std::make_unique<Catalog>(dir / "state");
        opts.poll_interval = 10ms;
        engine = std::make_unique<Engine>(opts, *catalog, *hypervisor, sink);
        engine->start();
        REQUIRE(test::eventually([&] { return engine->reconciled_once(); }, 5s, 10ms));
    }
    ~Harness() {
        engine->stop(5s);
        engine.reset();
        hypervisor.reset();
        catalog.reset();
        std::filesystem::remove_all(dir);
    }
    api::Job wait(const std::string& id) {
        api::Job j;
        REQUIRE(test::eventually(
            [&] {
                j = engine->get_job(id);
                return j.terminal();
            },
            10s, 5ms));
        return j;
    }

    std::filesystem::path dir;
    ScheduleSink sink;
    std::unique_ptr<hv::Hypervisor> hypervisor;
    std::unique_ptr<Catalog> catalog;
    std::unique_ptr<Engine> engine;
};

api::ScheduleRequest nightly(const std::string& name = "nightly") {
    api::ScheduleRequest r;
    r.name = name;
    r.cron = "0 2 * * *";
    r.mode = SnapshotMode::memory;
    r.keep_last = 7u;
    return r;
}

// The ApiError `fn` throws; fails the test when it throws none.
api::ApiError error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const api::ApiError& e) {
        return e;
    }
    FAIL("no ApiError");
    return api::ApiError(api::ErrorCode::internal, "");
}

// The field an invalid_request names.
std::string refused_field(const std::function<void()>& fn) {
    const auto e = error_of(fn);
    CHECK(e.code() == api::ErrorCode::invalid_request);
    return e.details().value("field", "");
}

constexpr TimeMs day_ms = 24 * 3600 * 1000;

}  // namespace

TEST_CASE("A schedule is made with its defaults and next run, and read back", "[engine][schedules]") {
    Harness h;
    const TimeMs before = now_ms();
    const auto s = h.engine->create_schedule("web1", nightly());
    CHECK_FALSE(s.id.empty());
    CHECK(s.instance.name == "web1");
    CHECK(s.instance.uuid == "11111111-0000-0000-0000-0000000000a1");
    CHECK(s.name == "nightly");
    CHECK(s.timezone == "UTC");
    CHECK(s.mode == SnapshotMode::memory);
    CHECK(s.enabled);
    CHECK(s.jitter_s == 0);
    CHECK(s.keep_last == 7u);
    CHECK_FALSE(s.max_age);
    CHECK_FALSE(s.display_name_template);
    CHECK_FALSE(s.last_run);
    CHECK(s.created_at >= before);
    CHECK(s.updated_at == s.created_at);
    REQUIRE(s.next_run_at);
    CHECK(*s.next_run_at > before);
    CHECK(*s.next_run_at <= before + day_ms);
    CHECK(*s.next_run_at % day_ms == 2 * 3600 * 1000);  // 02:00 UTC
    CHECK(h.sink.saw("schedule.created", "nightly"));

    // By name or UUID of the instance, by id, and in the host's list.
    CHECK(h.engine->get_schedule(s.id).name == "nightly");
    CHECK(h.engine->list_instance_schedules("web1").size() == 1);
    CHECK(h.engine->list_instance_schedules(s.instance.uuid).size() == 1);
    CHECK(h.engine->list_instance_schedules("db1").empty());
    auto berlin = nightly("berlin");
    berlin.timezone = "Europe/Berlin";
    const auto b = h.engine->create_schedule("db1", berlin);
    REQUIRE(b.next_run_at);
    // 02:00 in Berlin is 00:00 or 01:00 UTC.
    CHECK((*b.next_run_at % day_ms == 0 || *b.next_run_at % day_ms == 3600 * 1000));
    api::ScheduleQuery q;
    CHECK(h.engine->list_schedules(q).items.size() == 2);
    q.instance = "db1";
    const auto page = h.engine->list_schedules(q);
    REQUIRE(page.items.size() == 1);
    CHECK(page.items[0].id == b.id);
    q.instance = "ghost";
    CHECK(h.engine->list_schedules(q).items.empty());
    q = {};
    q.cursor = "nonsense";
    CHECK(refused_field([&] { h.engine->list_schedules(q); }) == "cursor");

    CHECK(error_of([&] { h.engine->get_schedule("no-such-id"); }).code() == api::ErrorCode::schedule_not_found);
    CHECK(error_of([&] { h.engine->create_schedule("ghost", nightly()); }).code() ==
          api::ErrorCode::instance_not_found);
    CHECK(error_of([&] { h.engine->list_instance_schedules("ghost"); }).code() == api::ErrorCode::instance_not_found);
}

TEST_CASE("A schedule that cannot work is refused naming the field, and nothing is stored", "[engine][schedules]") {
    EngineOptions o;
    o.max_snapshots_per_instance = 10;
    o.schedules.max_per_instance = 2;
    Harness h(o);
    auto r = nightly();

    r.cron = "61 * * * *";
    auto e = error_of([&] { h.engine->create_schedule("web1", r); });
    CHECK(e.code() == api::ErrorCode::invalid_request);
    CHECK(e.details().at("field") == "cron");
    CHECK(e.details().at("cron_field") == "minute");
    r.cron = "0 2 * *";
    e = error_of([&] { h.engine->create_schedule("web1", r); });
    CHECK(e.details().at("field") == "cron");
    CHECK(e.details().at("cron_field") == "expression");
    r = nightly();

    r.timezone = "Mars/Olympus_Mons";
    CHECK(refused_field([&] { h.engine->create_schedule("web1", r); }) == "timezone");
    r = nightly();
    r.max_age = std::optional<std::string>("7 days");
    CHECK(refused_field([&] { h.engine->create_schedule("web1", r); }) == "max_age");
    r = nightly();
    r.keep_last = 11u;  // more than max_snapshots_per_instance
    CHECK(refused_field([&] { h.engine->create_schedule("web1", r); }) == "keep_last");
    r.keep_last = 0u;
    CHECK(refused_field([&] { h.engine->create_schedule("web1", r); }) == "keep_last");
    r.keep_last = std::optional<unsigned>();  // neither keep_last nor max_age
    CHECK(refused_field([&] { h.engine->create_schedule("web1", r); }) == "keep_last");
    r = nightly();
    r.force_stop = true;  // a stopped option with memory mode
    CHECK(refused_field([&] { h.engine->create_schedule("web1", r); }) == "force_stop");
    r = nightly();
    r.display_name_template = std::optional<std::string>("nightly {hostname}");
    CHECK(refused_field([&] { h.engine->create_schedule("web1", r); }) == "display_name_template");
    r.display_name_template = std::optional<std::string>("nightly {date");
    CHECK(refused_field([&] { h.engine->create_schedule("web1", r); }) == "display_name_template");
    r = nightly();
    r.jitter_s = config::ScheduleConfig::jitter_max_s + 1;
    CHECK(refused_field([&] { h.engine->create_schedule("web1", r); }) == "jitter_s");
    CHECK(h.engine->list_instance_schedules("web1").empty());
    CHECK(h.sink.count("schedule.created") == 0);

    // What works: every placeholder, max_age alone, stopped options with stopped mode.
    r = nightly();
    r.display_name_template = std::optional<std::string>("{schedule} of {instance}: {date} {time} ({datetime})");
    r.keep_last = std::optional<unsigned>();
    r.max_age = std::optional<std::string>("12h");
    r.mode = SnapshotMode::stopped;
    r.shutdown_timeout_s = 90u;
    r.force_stop = true;
    const auto made = h.engine->create_schedule("web1", r);
    CHECK(made.stopped.shutdown_timeout_s == 90u);
    CHECK(made.stopped.force_stop);
    CHECK(made.max_age == "12h");

    // A name once per instance; another instance may use it.
    e = error_of([&] { h.engine->create_schedule("web1", nightly()); });
    CHECK(e.code() == api::ErrorCode::schedule_exists);
    CHECK(e.details().at("field") == "name");
    CHECK_NOTHROW(h.engine->create_schedule("db1", nightly()));

    // schedules.max_per_instance
    CHECK_NOTHROW(h.engine->create_schedule("web1", nightly("second")));
    e = error_of([&] { h.engine->create_schedule("web1", nightly("third")); });
    CHECK(e.code() == api::ErrorCode::invalid_request);
    CHECK(e.details().at("field") == "name");
    CHECK(e.details().at("limit") == 2);
    CHECK(h.engine->list_instance_schedules("web1").size() == 2);
}

TEST_CASE("Editing a schedule changes what was sent and recomputes its next run", "[engine][schedules]") {
    Harness h;
    const auto s = h.engine->create_schedule("web1", nightly());
    h.engine->create_schedule("web1", nightly("hourly"));

    // Nothing changes: no event, no new updated_at.
    api::ScheduleRequest same;
    same.cron = s.cron;
    CHECK(h.engine->edit_schedule(s.id, same).updated_at == s.updated_at);
    CHECK(h.sink.count("schedule.updated") == 0);

    api::ScheduleRequest off;
    off.enabled = false;
    auto edited = h.engine->edit_schedule(s.id, off);
    CHECK_FALSE(edited.enabled);
    CHECK_FALSE(edited.next_run_at);
    CHECK(edited.updated_at >= s.updated_at);
    CHECK(edited.created_at == s.created_at);
    CHECK(h.sink.saw("schedule.updated", "nightly"));

    api::ScheduleRequest on;
    on.enabled = true;
    on.cron = "30 4 * * *";
    edited = h.engine->edit_schedule(s.id, on);
    REQUIRE(edited.next_run_at);
    CHECK(*edited.next_run_at % day_ms == (4 * 60 + 30) * 60 * 1000);
    CHECK(edited.keep_last == 7u);  // what was not sent stays

    // To stopped mode with its options, and back to memory, which drops them.
    api::ScheduleRequest stopped;
    stopped.mode = SnapshotMode::stopped;
    stopped.keep_stopped = true;
    stopped.shutdown_timeout_s = 45u;
    edited = h.engine->edit_schedule(s.id, stopped);
    CHECK(edited.mode == SnapshotMode::stopped);
    CHECK(edited.stopped.keep_stopped);
    CHECK(edited.stopped.shutdown_timeout_s == 45u);
    api::ScheduleRequest memory;
    memory.mode = SnapshotMode::memory;
    edited = h.engine->edit_schedule(s.id, memory);
    CHECK(edited.mode == SnapshotMode::memory);
    CHECK_FALSE(edited.stopped.keep_stopped);
    CHECK_FALSE(edited.stopped.shutdown_timeout_s);
    CHECK(h.engine->get_schedule(s.id).stopped.shutdown_timeout_s == std::nullopt);
    api::ScheduleRequest option_only;
    option_only.force_stop = true;  // the schedule is in memory mode
    CHECK(refused_field([&] { h.engine->edit_schedule(s.id, option_only); }) == "force_stop");

    // The merged schedule must still keep something; null clears.
    api::ScheduleRequest clear;
    clear.keep_last = std::optional<unsigned>();
    CHECK(refused_field([&] { h.engine->edit_schedule(s.id, clear); }) == "keep_last");
    clear.max_age = std::optional<std::string>("4w");
    edited = h.engine->edit_schedule(s.id, clear);
    CHECK_FALSE(edited.keep_last);
    CHECK(edited.max_age == "4w");
    api::ScheduleRequest bad_cron;
    bad_cron.cron = "* * * * * * *";
    CHECK(refused_field([&] { h.engine->edit_schedule(s.id, bad_cron); }) == "cron");
    CHECK(h.engine->get_schedule(s.id).cron == "30 4 * * *");

    // Renaming onto another schedule's name.
    api::ScheduleRequest rename;
    rename.name = "hourly";
    const auto e = error_of([&] { h.engine->edit_schedule(s.id, rename); });
    CHECK(e.code() == api::ErrorCode::schedule_exists);
    CHECK(e.details().at("field") == "name");
    rename.name = "daily";
    CHECK(h.engine->edit_schedule(s.id, rename).name == "daily");
    CHECK(error_of([&] { h.engine->edit_schedule("no-such-id", rename); }).code() ==
          api::ErrorCode::schedule_not_found);
}

TEST_CASE("A scheduled create records its run once per slot, with its job", "[engine][schedules]") {
    Harness h;
    const auto s = h.engine->create_schedule("web1", nightly());
    constexpr TimeMs slot = 1'800'000'000'000;
    api::CreateSnapshotRequest r;
    r.mode = SnapshotMode::memory;
    r.name = "run-1";
    r.schedule_id = s.id;
    r.schedule_slot = slot;
    const auto res = h.engine->create_snapshot("web1", r);
    CHECK(res.snapshot.schedule_id == s.id);
    CHECK(h.engine->get_snapshot(res.snapshot.id).schedule_id == s.id);
    const auto params = nlohmann::json::parse(h.catalog->job(res.job.id)->params);
    CHECK(params["schedule_id"] == s.id);
    CHECK(params["schedule_slot"] == slot);
    auto run = h.catalog->schedule_run(s.id, slot);
    REQUIRE(run);
    CHECK(run->job_id == res.job.id);
    CHECK(run->outcome == ScheduleOutcome::running);
    const auto last = h.engine->get_schedule(s.id).last_run;
    REQUIRE(last);
    CHECK(last->slot == slot);
    CHECK(last->job_id == res.job.id);
    CHECK(h.wait(res.job.id).state == JobState::succeeded);

    // The same slot again: refused, and neither a snapshot nor a job is left of it.
    const auto jobs_before = h.engine->list_jobs({}).items.size();
    r.name = "run-1-again";
    const auto e = error_of([&] { h.engine->create_snapshot("web1", r); });
    CHECK(e.code() == api::ErrorCode::idempotency_conflict);
    CHECK(e.details().at("schedule_id") == s.id);
    CHECK(e.details().at("slot") == slot);
    CHECK(h.engine->list_instance_snapshots("web1").size() == 1);
    CHECK(h.engine->list_jobs({}).items.size() == jobs_before);
    CHECK_FALSE(h.engine->get_instance("web1").busy_job_id);
    CHECK(h.catalog->schedule_run(s.id, slot)->job_id == res.job.id);

    // The next slot runs; a manual snapshot is not the schedule's.
    r.name = "run-2";
    r.schedule_slot = slot + day_ms;
    const auto second = h.engine->create_snapshot("web1", r);
    CHECK(h.wait(second.job.id).state == JobState::succeeded);
    api::CreateSnapshotRequest manual;
    manual.mode = SnapshotMode::memory;
    manual.name = "by-hand";
    const auto by_hand = h.engine->create_snapshot("web1", manual);
    CHECK(h.wait(by_hand.job.id).state == JobState::succeeded);
    CHECK_FALSE(h.engine->get_snapshot(by_hand.snapshot.id).schedule_id);
    CHECK(h.catalog->schedule_snapshots(s.id).size() == 2);
    CHECK(h.engine->get_schedule(s.id).last_run->slot == slot + day_ms);

    // A run of a schedule that is gone makes nothing.
    h.engine->delete_schedule(s.id, false);
    r.name = "run-3";
    r.schedule_slot = slot + 2 * day_ms;
    CHECK(error_of([&] { h.engine->create_snapshot("web1", r); }).code() == api::ErrorCode::schedule_not_found);
    CHECK(h.engine->list_instance_snapshots("web1").size() == 3);
}

TEST_CASE("Deleting a schedule keeps its snapshots as ordinary ones, or leaves them to retention",
          "[engine][schedules]") {
    Harness h;
    const auto keep = h.engine->create_schedule("web1", nightly("keep"));
    const auto drop = h.engine->create_schedule("web1", nightly("drop"));
    auto run = [&](const Schedule& s, const std::string& name) {
        api::CreateSnapshotRequest r;
        r.mode = SnapshotMode::memory;
        r.name = name;
        r.schedule_id = s.id;
        r.schedule_slot = 1'800'000'000'000;
        const auto res = h.engine->create_snapshot("web1", r);
        REQUIRE(h.wait(res.job.id).state == JobState::succeeded);
        return res.snapshot.id;
    };
    const auto kept = run(keep, "k1");
    const auto dropped = run(drop, "d1");

    h.engine->delete_schedule(keep.id, false);
    CHECK(h.sink.saw("schedule.deleted", "keep"));
    CHECK(error_of([&] { h.engine->get_schedule(keep.id); }).code() == api::ErrorCode::schedule_not_found);
    CHECK_FALSE(h.engine->get_snapshot(kept).schedule_id);
    CHECK(h.engine->get_snapshot(kept).state == SnapshotState::ready);

    h.engine->delete_schedule(drop.id, true);
    CHECK(h.sink.saw("schedule.deleted", "drop"));
    CHECK(h.engine->list_instance_schedules("web1").empty());
    // Never made ordinary: it keeps its link, for the scheduler's retention to delete it as a
    // delete job (which may have happened already where the scheduler runs).
    if (const auto left = h.catalog->snapshot(dropped)) CHECK(left->schedule_id == drop.id);
    for (const auto& orphan : h.catalog->orphaned_schedule_snapshots()) CHECK(orphan.id == dropped);
    CHECK_FALSE(h.engine->get_snapshot(kept).schedule_id);

    CHECK(error_of([&] { h.engine->delete_schedule(keep.id, false); }).code() == api::ErrorCode::schedule_not_found);
}
