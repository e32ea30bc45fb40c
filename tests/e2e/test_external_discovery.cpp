// External snapshots made behind snapvirt's back, straight through libvirt's C API as virsh
// would make them, and external snapshots whose files vanish (docs/recovery.md): discovered
// with their method, reverted and deleted through the API without losing a file a disk chain
// uses; missing while a file their revert needs is gone, ready again when it is back, and
// deleted from libvirt too (not imported again). Skipped where libvirt cannot revert external
// snapshots (before 9.7: the 9.0 stack).

#include "tests/e2e/helpers.hpp"
#include "tests/support/libvirtd.hpp"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <filesystem>
#include <set>
#include <thread>

using namespace snapvirt;
using namespace snapvirt::test;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Reconciles every 2 s, so that what happens behind its back shows soon.
DaemonOptions quick_reconcile() {
    DaemonOptions o;
    o.config = "[reconcile]\ninterval_s = 2\n";
    return o;
}

// An external memory snapshot made the way `virsh snapshot-create-as --memspec … --diskspec …`
// makes it, on the test's own libvirt connection: memory state and overlay in `dir`.
void snapshot_behind_its_back(const TestGuest& g, const fs::path& dir, const std::string& name) {
    const std::string doc = "<domainsnapshot><name>" + name + "</name><description>made by hand</description>" +
                            "<memory snapshot='external' file='" + (dir / (name + ".mem")).string() + "'/>" +
                            "<disks><disk name='vda' snapshot='external' type='file'><source file='" +
                            (dir / (name + "-vda.qcow2")).string() + "'/></disk></disks></domainsnapshot>";
    virConnectPtr conn = virConnectOpen(libvirt_uri().c_str());
    REQUIRE(conn);
    virDomainPtr dom = virDomainLookupByUUIDString(conn, g.uuid().c_str());
    virDomainSnapshotPtr snap = dom ? virDomainSnapshotCreateXML(dom, doc.c_str(), 0) : nullptr;
    virErrorPtr err = snap ? nullptr : virGetLastError();
    const std::string why = err && err->message ? err->message : "";
    const bool made = snap != nullptr;
    if (snap) virDomainSnapshotFree(snap);
    if (dom) virDomainFree(dom);
    virConnectClose(conn);
    INFO(why);
    REQUIRE(made);
}

// Every file the domain's definitions (running and persistent) and its snapshots in libvirt name.
std::set<std::string> named_by_libvirt(const TestGuest& g) {
    std::set<std::string> out;
    auto collect = [&](const char* xml) {
        const std::string doc = xml ? xml : "";
        for (const std::string attr : {"file='", "file=\""})
            for (auto at = doc.find(attr); at != std::string::npos; at = doc.find(attr, at + 1)) {
                const auto start = at + attr.size();
                out.insert(doc.substr(start, doc.find(attr.back(), start) - start));
            }
    };
    virConnectPtr conn = virConnectOpen(libvirt_uri().c_str());
    REQUIRE(conn);
    virDomainPtr dom = virDomainLookupByUUIDString(conn, g.uuid().c_str());
    REQUIRE(dom);
    for (unsigned flags : {0u, static_cast<unsigned>(VIR_DOMAIN_XML_INACTIVE)}) {
        char* xml = virDomainGetXMLDesc(dom, flags);
        collect(xml);
        free(xml);
    }
    virDomainSnapshotPtr* snaps = nullptr;
    const int n = virDomainListAllSnapshots(dom, &snaps, 0);
    for (int i = 0; i < n; ++i) {
        char* xml = virDomainSnapshotGetXMLDesc(snaps[i], 0);
        collect(xml);
        free(xml);
        virDomainSnapshotFree(snaps[i]);
    }
    free(snaps);
    virDomainFree(dom);
    virConnectClose(conn);
    return out;
}

// The guest's disk chains are whole: every file its definitions name exists.
void check_chains_whole(const TestGuest& g) {
    virConnectPtr conn = virConnectOpen(libvirt_uri().c_str());
    REQUIRE(conn);
    virDomainPtr dom = virDomainLookupByUUIDString(conn, g.uuid().c_str());
    REQUIRE(dom);
    for (unsigned flags : {0u, static_cast<unsigned>(VIR_DOMAIN_XML_INACTIVE)}) {
        char* xml = virDomainGetXMLDesc(dom, flags);
        const std::string doc = xml ? xml : "";
        free(xml);
        for (auto at = doc.find("<source file='"); at != std::string::npos; at = doc.find("<source file='", at + 1)) {
            const auto start = at + std::string("<source file='").size();
            const std::string file = doc.substr(start, doc.find('\'', start) - start);
            INFO(file);
            CHECK(fs::exists(file));
        }
    }
    virDomainFree(dom);
    virConnectClose(conn);
}

json snapshot_named(const client::Client& c, const std::string& instance, const std::string& name) {
    for (const auto& s : snapshots_of(c, instance))
        if (s["name"] == name) return s;
    return json();
}

std::string path_to(const json& snapshot) { return "/v1/snapshots/" + snapshot["id"].get<std::string>(); }

std::string state_of(const client::Client& c, const json& snapshot) {
    auto r = c.get(path_to(snapshot));
    return r.status == 200 ? r.json()["state"].get<std::string>() : "";
}

// Long enough for two reconciliation rounds of quick_reconcile().
void two_rounds() { std::this_thread::sleep_for(5s); }

}  // namespace

TEST_CASE("An external snapshot made with libvirt directly is discovered as external, reverted and deleted "
          "through the API",
          "[e2e][external]") {
    OwnDir dir;
    TestGuest g({.tag = "disc", .memory_mib = 64, .fill_mib = 16, .disk_format = "raw", .disk_dir = dir.path});
    Daemon d(quick_reconcile());
    auto c = d.client();
    if (!external_revert(c)) {
        SUCCEED("libvirt before 9.7 cannot revert external snapshots: nothing external to discover");
        return;
    }
    g.wait_booted();
    const std::uint64_t before = g.counter();
    snapshot_behind_its_back(g, dir.path, "outside");
    const std::uint64_t at_snapshot = g.counter();
    json found;
    REQUIRE(eventually([&] { return !(found = snapshot_named(c, g.name(), "outside")).is_null(); }, 10s));
    INFO(found.dump());
    CHECK(found["method"] == "external");
    CHECK(found["origin"] == "discovered");
    CHECK(found["mode"] == "memory");
    CHECK(found["state"] == "ready");
    CHECK(found["is_current"] == true);
    CHECK(found["description"] == "made by hand");

    // The instance's method is now external: a snapshot through the API (auto) follows it.
    auto after = take_snapshot(c, g.name(), {{"mode", "memory"}, {"name", "after"}});
    INFO(after.job.dump());
    REQUIRE(after.job["state"] == "succeeded");
    CHECK(after.snapshot["method"] == "external");
    CHECK(after.snapshot["parent_id"] == found["id"]);

    // Reverted through the API: the RAM of its moment. libvirt deletes the overlay of "after"
    // (nothing needs it), and "after" stays ready: its state is in files that are all there.
    std::this_thread::sleep_for(2500ms);
    const std::uint64_t before_revert = g.counter();
    auto reverted = run_job(c, c.post(path_to(found) + "/revert", json::object()));
    INFO(reverted.dump());
    REQUIRE(reverted["state"] == "succeeded");
    check_counter_back(before, at_snapshot, before_revert, g.counter(), 1500);
    CHECK(g.state() == "running");
    CHECK(c.get(path_to(found)).json()["is_current"] == true);
    two_rounds();
    CHECK(state_of(c, found) == "ready");
    CHECK(state_of(c, after.snapshot) == "ready");

    // Deleted through the API, the leaf first, then the discovered one: gone from libvirt, and
    // of its files only those a disk chain uses are left (libvirt merged the revert's overlay
    // into its overlay, which the guest now runs on).
    auto leaf = run_job(c, c.del(path_to(after.snapshot)));
    INFO(leaf.dump());
    REQUIRE(leaf["state"] == "succeeded");
    check_chains_whole(g);
    auto gone = run_job(c, c.del(path_to(found)));
    INFO(gone.dump());
    REQUIRE(gone["state"] == "succeeded");
    CHECK(g.snapshot_count() == 0);
    CHECK(c.get(path_to(found)).status == 404);
    check_chains_whole(g);
    const auto named = named_by_libvirt(g);
    for (const std::string f : {"outside.mem", "outside-vda.qcow2"}) {
        INFO(f);
        CHECK((!fs::exists(dir.path / f) || named.count((dir.path / f).string())));
    }
    const std::uint64_t running_on = g.counter();
    std::this_thread::sleep_for(300ms);
    CHECK(g.counter() > running_on);  // the guest runs on its chain
    two_rounds();
    CHECK(snapshots_of(c, g.name()).empty());
}

TEST_CASE("An external snapshot whose memory file vanished is missing, and deleting it removes it from libvirt "
          "too",
          "[e2e][external]") {
    OwnDir dir;
    TestGuest g({.tag = "vanish", .memory_mib = 64, .fill_mib = 16, .disk_format = "raw", .disk_dir = dir.path});
    Daemon d(quick_reconcile());
    auto c = d.client();
    if (!external_revert(c)) {
        SUCCEED("libvirt before 9.7 cannot revert external snapshots: none to go missing");
        return;
    }
    g.wait_booted();
    snapshot_behind_its_back(g, dir.path, "lost");
    json lost;
    REQUIRE(eventually([&] { return !(lost = snapshot_named(c, g.name(), "lost")).is_null(); }, 10s));
    auto kept = take_snapshot(c, g.name(), {{"mode", "memory"}, {"name", "kept"}});
    INFO(kept.job.dump());
    REQUIRE(kept.job["state"] == "succeeded");
    REQUIRE(kept.snapshot["parent_id"] == lost["id"]);

    // Its memory state moved away: missing (libvirt still has it); back: ready again.
    const fs::path mem = dir.path / "lost.mem";
    fs::rename(mem, dir.path / "lost.mem.away");
    REQUIRE(eventually([&] { return state_of(c, lost) == "missing"; }, 10s));
    CHECK(g.has_snapshot("lost"));
    auto refused = c.post(path_to(lost) + "/revert", json::object());
    CHECK(refused.status == 409);
    CHECK(error_code(refused) == "snapshot_not_ready");
    CHECK(refused.json()["error"]["details"]["state"] == "missing");
    CHECK(state_of(c, kept.snapshot) == "ready");  // its child needs other files
    fs::rename(dir.path / "lost.mem.away", mem);
    REQUIRE(eventually([&] { return state_of(c, lost) == "ready"; }, 10s));

    // Gone for good: missing; deleted through the API it leaves libvirt as well (its metadata
    // only), and no reconciliation brings it back.
    fs::remove(mem);
    REQUIRE(eventually([&] { return state_of(c, lost) == "missing"; }, 10s));
    auto deleted = run_job(c, c.del(path_to(lost)));
    INFO(deleted.dump());
    REQUIRE(deleted["state"] == "succeeded");
    CHECK_FALSE(g.has_snapshot("lost"));
    CHECK(g.has_snapshot("kept"));
    two_rounds();
    const auto left = snapshots_of(c, g.name());
    REQUIRE(left.size() == 1);
    CHECK(left[0]["name"] == "kept");
    CHECK(left[0]["state"] == "ready");
    CHECK(left[0]["parent_id"].is_null());
    // Its overlay holds the state of "kept": a snapshot in libvirt names it, so it was kept.
    CHECK(fs::exists(dir.path / "lost-vda.qcow2"));
    check_chains_whole(g);

    // And "kept" is whole: it reverts, then goes.
    auto reverted = run_job(c, c.post(path_to(kept.snapshot) + "/revert", json::object()));
    INFO(reverted.dump());
    CHECK(reverted["state"] == "succeeded");
    CHECK(g.state() == "running");
    auto last = run_job(c, c.del(path_to(kept.snapshot)));
    INFO(last.dump());
    CHECK(last["state"] == "succeeded");
    CHECK(g.snapshot_count() == 0);
    check_chains_whole(g);
}
