#include "daemon/catalog.hpp"
#include "tests/support/daemon.hpp"

#include "tests/support/catch.hpp"

#include <filesystem>

using namespace snapvirt;
using namespace snapvirt::daemon;

namespace {
struct TempCatalog {
    TempCatalog() : dir(test::make_temp_dir("snapvirt-catalog")), catalog(std::make_unique<Catalog>(dir)) {}
    ~TempCatalog() {
        catalog.reset();
        std::filesystem::remove_all(dir);
    }
    std::filesystem::path dir;
    std::unique_ptr<Catalog> catalog;
};

Snapshot snap(const std::string& id, const std::string& instance, const std::string& name,
                   std::optional<std::string> parent = std::nullopt, TimeMs created = 0) {
    Snapshot s;
    s.id = id;
    s.instance.uuid = instance;
    s.name = name;
    s.display_name = name;
    s.mode = SnapshotMode::memory;
    s.state = SnapshotState::ready;
    s.parent_id = std::move(parent);
    s.created_at = created;
    return s;
}
}  // namespace

TEST_CASE("The catalog is created with the current schema and reopens", "[catalog]") {
    TempCatalog t;
    t.catalog->upsert_instance({"u1", "web1", "running", 64, 1, true});
    t.catalog->insert_snapshot(snap("s1", "u1", "a"));
    t.catalog.reset();
    Catalog again(t.dir);
    auto s = again.snapshot("s1");
    REQUIRE(s);
    CHECK(s->instance.name == "web1");
    CHECK(again.list_instances().at(0).snapshot_count == 1);
}

TEST_CASE("Instance snapshots come parents first", "[catalog]") {
    TempCatalog t;
    auto& c = *t.catalog;
    c.upsert_instance({"u1", "web1", "running", 64, 1, true});
    c.insert_snapshot(snap("c2", "u1", "child2", "root", 3));
    c.insert_snapshot(snap("gc", "u1", "grandchild", "c1", 4));
    c.insert_snapshot(snap("c1", "u1", "child1", "root", 2));
    c.insert_snapshot(snap("root", "u1", "root", std::nullopt, 1));
    std::vector<std::string> order;
    for (const auto& s : c.instance_snapshots("u1")) order.push_back(s.id);
    CHECK(order == std::vector<std::string>{"root", "c1", "gc", "c2"});
}

TEST_CASE("Names and display names are unique per instance", "[catalog]") {
    TempCatalog t;
    auto& c = *t.catalog;
    c.insert_snapshot(snap("s1", "u1", "a"));
    CHECK_THROWS_AS(c.insert_snapshot(snap("s2", "u1", "a")), sql::Error);
    CHECK_NOTHROW(c.insert_snapshot(snap("s3", "u2", "a")));
    CHECK(c.name_taken("u1", "a"));
    CHECK(c.display_name_taken("u1", "a"));
    CHECK_FALSE(c.display_name_taken("u1", "a", "s1"));
}

TEST_CASE("Cursor paging is stable while rows are added", "[catalog]") {
    TempCatalog t;
    auto& c = *t.catalog;
    for (int i = 0; i < 25; ++i) c.insert_snapshot(snap("s" + std::to_string(i), "u1", "n" + std::to_string(i)));
    SnapshotQuery q;
    q.limit = 10;
    auto p1 = c.query_snapshots(q, std::nullopt);
    REQUIRE(p1.items.size() == 10);
    CHECK(p1.items.front().id == "s24");  // newest first
    REQUIRE(p1.next_cursor);
    for (int i = 25; i < 30; ++i) c.insert_snapshot(snap("s" + std::to_string(i), "u1", "n" + std::to_string(i)));
    q.cursor = p1.next_cursor;
    auto p2 = c.query_snapshots(q, std::nullopt);
    REQUIRE(p2.items.size() == 10);
    CHECK(p2.items.front().id == "s14");
    q.cursor = p2.next_cursor;
    auto p3 = c.query_snapshots(q, std::nullopt);
    CHECK(p3.items.size() == 5);
    CHECK_FALSE(p3.next_cursor);
    q.cursor = "garbage";
    CHECK_THROWS_AS(c.query_snapshots(q, std::nullopt), CatalogError);
}

TEST_CASE("Snapshot filters: instance, state, mode and text", "[catalog]") {
    TempCatalog t;
    auto& c = *t.catalog;
    auto a = snap("a", "u1", "alpha");
    a.description = "Before the 100% upgrade";
    c.insert_snapshot(a);
    auto b = snap("b", "u2", "beta");
    b.mode = SnapshotMode::stopped;
    b.state = SnapshotState::missing;
    c.insert_snapshot(b);
    SnapshotQuery q;
    q.q = "100%";
    CHECK(c.query_snapshots(q, std::nullopt).items.size() == 1);
    q.q = "ALPH";
    CHECK(c.query_snapshots(q, std::nullopt).items.size() == 1);
    q.q.reset();
    q.mode = SnapshotMode::stopped;
    CHECK(c.query_snapshots(q, std::nullopt).items.at(0).id == "b");
    q.mode.reset();
    q.state = SnapshotState::missing;
    CHECK(c.query_snapshots(q, std::nullopt).items.size() == 1);
    q.state.reset();
    CHECK(c.query_snapshots(q, std::string("u1")).items.size() == 1);
}

TEST_CASE("Jobs are stored, listed newest first and found unfinished", "[catalog]") {
    TempCatalog t;
    auto& c = *t.catalog;
    for (int i = 0; i < 3; ++i) {
        JobRecord r;
        r.job.id = "j" + std::to_string(i);
        r.job.kind = JobKind::create;
        r.job.instance = {"u1", "web1"};
        r.job.state = i == 2 ? JobState::running : JobState::succeeded;
        r.job.created_at = i;
        r.params = "{\"mode\":\"memory\"}";
        c.insert_job(r);
    }
    c.set_job_intent("j2", "{\"step\":\"save\"}");
    auto page = c.query_jobs({}, std::nullopt);
    REQUIRE(page.items.size() == 3);
    CHECK(page.items[0].id == "j2");
    auto unfinished = c.unfinished_jobs();
    REQUIRE(unfinished.size() == 1);
    CHECK(unfinished[0].intent == "{\"step\":\"save\"}");
    CHECK(unfinished[0].params == "{\"mode\":\"memory\"}");
}

TEST_CASE("Idempotency keys expire after their window", "[catalog]") {
    TempCatalog t;
    auto& c = *t.catalog;
    c.remember_idempotent("k", {"hash", 202, "{}", "/v1/jobs/x"}, 1000);
    CHECK(c.idempotent("k", 500));
    CHECK_FALSE(c.idempotent("k", 2000));
    CHECK(c.forget_idempotent_before(2000) == 1);
}

TEST_CASE("A snapshot's method and files survive a reopen, older rows read as internal", "[catalog]") {
    TempCatalog t;
    t.catalog->upsert_instance({"u1", "web1", "running", 64, 1, true});
    Snapshot ext = snap("s1", "u1", "a");
    ext.method = SnapshotMethod::external;
    ext.files = {"/var/lib/libvirt/images/snapvirt-s1-vda.qcow2", "/var/lib/snapvirt/external/u1/snapvirt-s1.mem"};
    ext.size_bytes = 4096;
    t.catalog->insert_snapshot(ext);
    t.catalog->insert_snapshot(snap("s2", "u1", "b", "s1"));
    t.catalog.reset();
    Catalog again(t.dir);
    auto s1 = again.snapshot("s1");
    REQUIRE(s1);
    CHECK(s1->method == SnapshotMethod::external);
    CHECK(s1->files == ext.files);
    CHECK(s1->size_bytes == std::optional<std::uint64_t>(4096));
    auto s2 = again.snapshot("s2");
    REQUIRE(s2);
    CHECK(s2->method == SnapshotMethod::internal);
    CHECK(s2->files.empty());
    s2->method = SnapshotMethod::external;
    s2->files = {"/x"};
    again.update_snapshot(*s2);
    CHECK(again.snapshot("s2")->files == std::vector<std::string>{"/x"});
}
