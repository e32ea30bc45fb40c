// External snapshots on real QEMU (docs/api.md, "Snapshot methods"): raw-disk guests snapshotted
// with and without RAM, reverted and deleted through libvirt's own external API, their files
// accounted for — and, on a libvirt that cannot revert external snapshots, refused before
// anything is touched. Each case asks GET /v1/host which stack it runs on.

#include "tests/e2e/helpers.hpp"
#include "tests/support/libvirtd.hpp"

#include <libvirt/libvirt.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <thread>

using namespace snapvirt;
using namespace snapvirt::test;
using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The files in `dir` whose names carry `id`.
std::set<std::string> files_of(const fs::path& dir, const std::string& id) {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().filename().string().find(id) != std::string::npos) out.insert(e.path().filename().string());
    return out;
}

// The file the domain's first disk writes to now (the top of its chain), read with libvirt's
// C API on the test's own connection.
std::string active_disk(const TestGuest& g) {
    virConnectPtr conn = virConnectOpen(libvirt_uri().c_str());
    REQUIRE(conn);
    virDomainPtr dom = virDomainLookupByUUIDString(conn, g.uuid().c_str());
    REQUIRE(dom);
    char* xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE);
    std::string doc = xml ? xml : "";
    free(xml);
    virDomainFree(dom);
    virConnectClose(conn);
    const auto disk = doc.find("<disk");
    const auto at = doc.find("<source file='", disk);
    REQUIRE(at != std::string::npos);
    const auto start = at + std::string("<source file='").size();
    return doc.substr(start, doc.find('\'', start) - start);
}

std::string path_of(const json& snapshot) { return "/v1/snapshots/" + snapshot["id"].get<std::string>(); }

// Every file the domain's definitions (running and persistent) name for its disks' chains.
std::set<std::string> domain_files(const TestGuest& g) {
    std::set<std::string> out;
    virConnectPtr conn = virConnectOpen(libvirt_uri().c_str());
    REQUIRE(conn);
    virDomainPtr dom = virDomainLookupByUUIDString(conn, g.uuid().c_str());
    for (unsigned flags : {0u, static_cast<unsigned>(VIR_DOMAIN_XML_INACTIVE)}) {
        char* xml = dom ? virDomainGetXMLDesc(dom, flags) : nullptr;
        const std::string doc = xml ? xml : "";
        free(xml);
        for (auto at = doc.find("<source file='"); at != std::string::npos; at = doc.find("<source file='", at + 1)) {
            const auto start = at + std::string("<source file='").size();
            out.insert(doc.substr(start, doc.find('\'', start) - start));
        }
    }
    if (dom) virDomainFree(dom);
    virConnectClose(conn);
    return out;
}

// No orphan: every snapvirt-{id}* file in `dir` belongs to a snapshot the catalog has, or a
// disk chain of the domain still uses it.
void check_no_orphans(const client::Client& c, const TestGuest& g, const fs::path& dir) {
    std::set<std::string> ids;
    for (const auto& s : snapshots_of(c, g.name())) ids.insert(s["id"].get<std::string>());
    const auto used = domain_files(g);
    for (const auto& e : fs::directory_iterator(dir)) {
        const std::string name = e.path().filename().string();
        if (name.rfind("snapvirt-", 0) != 0) continue;
        const std::string id = name.substr(9, 36);
        INFO(name);
        CHECK((ids.count(id) || used.count(e.path().string())));
    }
}

// The running domain's live definition.
std::string live_xml(const TestGuest& g) {
    virConnectPtr conn = virConnectOpen(libvirt_uri().c_str());
    REQUIRE(conn);
    virDomainPtr dom = virDomainLookupByUUIDString(conn, g.uuid().c_str());
    char* xml = dom ? virDomainGetXMLDesc(dom, 0) : nullptr;
    const std::string doc = xml ? xml : "";
    free(xml);
    if (dom) virDomainFree(dom);
    virConnectClose(conn);
    return doc;
}

// The value of attribute `attr` of the first `<element ` after `from` in `doc`.
std::string attr_after(const std::string& doc, std::size_t from, const std::string& element, const std::string& attr) {
    const auto at = doc.find("<" + element + " ", from);
    REQUIRE(at != std::string::npos);
    const auto a = doc.find(attr + "='", at);
    REQUIRE(a < doc.find('>', at));
    const auto start = a + attr.size() + 2;
    return doc.substr(start, doc.find('\'', start) - start);
}

// The live definition's first disk: type='block' on the device, or type='file' on an image.
std::string live_disk_type(const TestGuest& g) { return attr_after(live_xml(g), 0, "disk", "type"); }

// Whether the running guest's disk (the image its chain is on now, read beside QEMU with
// qemu-io -U) holds `pattern` at `where`.
bool guest_disk_holds(const TestGuest& g, const std::string& pattern, const std::string& where) {
    const std::string doc = live_xml(g);
    const auto disk = doc.find("<disk ");
    const std::string format = attr_after(doc, disk, "driver", "type");
    const auto src = doc.find("<source ", disk);
    const std::string top = doc.compare(src, 14, "<source file='") == 0 ? attr_after(doc, disk, "source", "file")
                                                                        : attr_after(doc, disk, "source", "dev");
    std::string out;
    return TestGuest::qemu_io(top, "read -P " + pattern + " " + where, &out, format, true) == 0;
}

// Writes `pattern` at `where` through the running guest's disk device (qemu-io in QEMU's
// monitor, on the virtio disk's backend) and flushes it.
void guest_disk_write(const TestGuest& g, const std::string& pattern, const std::string& where) {
    const std::string dev = "qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend ";
    g.monitor(dev + "\"write -P " + pattern + " " + where + "\"");
    g.monitor(dev + "\"flush\"");
    REQUIRE(guest_disk_holds(g, pattern, where));
}

}  // namespace

TEST_CASE("Without libvirt 9.7, what needs an external snapshot is refused and internal works as before",
          "[e2e][external]") {
    OwnDir dir;
    TestGuest raw({.tag = "raw9", .disk_format = "raw", .disk_dir = dir.path});
    TestGuest qcow({.tag = "qcow9", .disk_dir = dir.path});
    Daemon d;
    auto c = d.client();
    if (external_revert(c)) {
        SUCCEED("this libvirt reverts external snapshots: see the other cases");
        return;
    }
    const auto host = c.get("/v1/host").json();
    CHECK(host["capabilities"]["methods"] == json::array({"internal"}));
    for (const json& body : {json{{"mode", "memory"}}, json{{"mode", "memory"}, {"method", "external"}},
                             json{{"mode", "stopped"}, {"method", "auto"}}}) {
        auto r = c.post("/v1/instances/" + raw.name() + "/snapshots", body);
        INFO(body.dump() << " -> " << r.body);
        CHECK(r.status == 422);
        CHECK(error_code(r) == "unsupported_libvirt");
        CHECK(r.json()["error"]["details"]["required"] == "9.7.0");
        CHECK(r.json()["error"]["details"]["running"] == host["libvirt_version"]);
        CHECK_THAT(r.json()["error"]["message"].get<std::string>(), Catch::Contains("bookworm-backports"));
    }
    auto r = c.post("/v1/instances/" + raw.name() + "/snapshots", {{"mode", "memory"}, {"method", "internal"}});
    CHECK(error_code(r) == "unsupported_disk");
    r = c.post("/v1/instances/" + qcow.name() + "/snapshots", {{"mode", "memory"}, {"method", "external"}});
    CHECK(error_code(r) == "unsupported_libvirt");
    CHECK(raw.snapshot_count() == 0);
    CHECK(qcow.snapshot_count() == 0);
    CHECK(snapshots_of(c, raw.name()).empty());
    CHECK(fs::directory_iterator(dir.path) != fs::directory_iterator());  // only the two disks
    CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 2);

    // auto on a qcow2 guest is internal, exactly as before.
    qcow.wait_booted();
    auto taken = take_snapshot(c, qcow.name(), {{"mode", "memory"}});
    REQUIRE(taken.job["state"] == "succeeded");
    CHECK(taken.snapshot["method"] == "internal");
    CHECK(taken.snapshot["size_bytes"].is_null());
}

TEST_CASE("A raw-disk guest's memory snapshot is external: the guest runs on, revert brings RAM back",
          "[e2e][external]") {
    OwnDir dir;
    TestGuest g({.tag = "extmem", .memory_mib = 64, .fill_mib = 24, .disk_format = "raw", .disk_dir = dir.path});
    Daemon d;
    auto c = d.client();
    if (!external_revert(c)) {
        SUCCEED("libvirt before 9.7: covered by the unsupported_libvirt case");
        return;
    }
    CHECK(c.get("/v1/host").json()["capabilities"]["methods"] == json::array({"internal", "external"}));
    g.wait_booted();
    const std::uint64_t before = g.counter();
    auto taken = take_snapshot(c, g.name(), {{"mode", "memory"}, {"name", "ram"}});
    INFO(taken.job.dump());
    REQUIRE(taken.job["state"] == "succeeded");
    const std::uint64_t at_snapshot = g.counter();
    const json s = taken.snapshot;
    const std::string id = s["id"];
    CHECK(s["method"] == "external");
    CHECK(s["mode"] == "memory");
    CHECK(s["state"] == "ready");
    CHECK(s["is_current"] == true);
    CHECK(s["size_bytes"].get<std::uint64_t>() > 0);
    CHECK(s["guest_paused_ms"].is_number());
    CHECK(g.state() == "running");
    // The memory state and the overlay sit next to the disk, named from the snapshot's id.
    CHECK(files_of(dir.path, id) == std::set<std::string>{"snapvirt-" + id + ".mem", "snapvirt-" + id + "-vda.qcow2"});
    CHECK(active_disk(g) == (dir.path / ("snapvirt-" + id + "-vda.qcow2")).string());

    // One method per instance.
    auto r = c.post("/v1/instances/" + g.name() + "/snapshots", {{"mode", "memory"}, {"method", "internal"}});
    CHECK(r.status == 409);
    CHECK(error_code(r) == "method_conflict");
    CHECK(r.json()["error"]["details"]["method"] == "external");

    std::this_thread::sleep_for(2500ms);
    const std::uint64_t before_revert = g.counter();
    REQUIRE(before_revert > at_snapshot + 1500);
    auto reverted = run_job(c, c.post(path_of(s) + "/revert", json::object()));
    INFO(reverted.dump());
    REQUIRE(reverted["state"] == "succeeded");
    check_counter_back(before, at_snapshot, before_revert, g.counter(), 1500);  // 1000 Hz: within 1.5 s
    CHECK(g.state() == "running");
    CHECK(c.get(path_of(s)).json()["is_current"] == true);

    // A second snapshot (auto: external, the instance's method), then both go, leaves first.
    auto second = take_snapshot(c, g.name(), {{"mode", "memory"}, {"name", "ram2"}});
    REQUIRE(second.job["state"] == "succeeded");
    CHECK(second.snapshot["method"] == "external");
    CHECK(second.snapshot["parent_id"] == id);
    auto deleted = run_job(c, c.del(path_of(s) + "?children=true"));
    INFO(deleted.dump());
    REQUIRE(deleted["state"] == "succeeded");
    CHECK(snapshots_of(c, g.name()).empty());
    CHECK(g.snapshot_count() == 0);
    CHECK(g.state() == "running");
    // No file of either snapshot is left unless the guest's disk chain still uses it.
    const std::string top = active_disk(g);
    for (const auto& sid : {id, second.snapshot["id"].get<std::string>()})
        for (const auto& f : files_of(dir.path, sid)) CHECK((dir.path / f).string() == top);
}

TEST_CASE("A raw-disk guest's stopped snapshot is a disk-only external one, revert restores the disk",
          "[e2e][external]") {
    OwnDir dir;
    TestGuest g({.tag = "extdisk", .disk_format = "raw", .disk_dir = dir.path});
    Daemon d;
    auto c = d.client();
    if (!external_revert(c)) {
        SUCCEED("libvirt before 9.7: covered by the unsupported_libvirt case");
        return;
    }
    g.wait_booted();
    auto taken = take_snapshot(c, g.name(), {{"mode", "stopped"}, {"name", "clean"}, {"force_stop", true},
                                             {"shutdown_timeout_s", 5}, {"keep_stopped", true}});
    INFO(taken.job.dump());
    REQUIRE(taken.job["state"] == "succeeded");
    const json s = taken.snapshot;
    const std::string id = s["id"];
    CHECK(s["method"] == "external");
    CHECK(s["mode"] == "stopped");
    CHECK(s["guest_paused_ms"].is_null());
    CHECK(files_of(dir.path, id) == std::set<std::string>{"snapvirt-" + id + "-vda.qcow2"});
    REQUIRE(g.state() == "shutoff");

    // Written after the snapshot, into the disk's active layer; gone after the revert.
    std::string out;
    const std::string top = active_disk(g);
    REQUIRE(TestGuest::qemu_io(top, "write -P 0xab 512k 4k", &out) == 0);
    REQUIRE(TestGuest::qemu_io(top, "read -P 0xab 512k 4k", &out) == 0);
    auto reverted = run_job(c, c.post(path_of(s) + "/revert", json::object()));
    INFO(reverted.dump());
    REQUIRE(reverted["state"] == "succeeded");
    CHECK(g.state() == "shutoff");
    const std::string new_top = active_disk(g);
    CHECK(TestGuest::qemu_io(new_top, "read -P 0xab 512k 4k", &out) != 0);
    CHECK(TestGuest::qemu_io(new_top, "read -P 0x00 512k 4k", &out) == 0);

    // start running: the guest boots from the reverted disk.
    auto started = run_job(c, c.post(path_of(s) + "/revert", {{"start", "running"}}));
    REQUIRE(started["state"] == "succeeded");
    CHECK(g.state() == "running");
    g.wait_booted();

    auto deleted = run_job(c, c.del(path_of(s)));
    INFO(deleted.dump());
    REQUIRE(deleted["state"] == "succeeded");
    CHECK(g.snapshot_count() == 0);
    CHECK(c.get(path_of(s)).status == 404);
}

TEST_CASE("External trees: a snapshot libvirt deletes only with its subtree is refused alone, never stuck",
          "[e2e][external]") {
    OwnDir dir;
    TestGuest g({.tag = "exttree", .disk_format = "raw", .running = false, .disk_dir = dir.path});
    Daemon d;
    auto c = d.client();
    if (!external_revert(c)) {
        SUCCEED("libvirt before 9.7: covered by the unsupported_libvirt case");
        return;
    }
    // a <- b, then back to a: a is current and has a child.
    auto a = take_snapshot(c, g.name(), {{"mode", "stopped"}, {"name", "a"}});
    REQUIRE(a.job["state"] == "succeeded");
    auto b = take_snapshot(c, g.name(), {{"mode", "stopped"}, {"name", "b"}});
    REQUIRE(b.job["state"] == "succeeded");
    REQUIRE(run_job(c, c.post(path_of(a.snapshot) + "/revert", json::object()))["state"] == "succeeded");
    auto r = c.del(path_of(a.snapshot));
    INFO(r.body);
    CHECK(r.status == 409);
    CHECK(error_code(r) == "snapshot_has_children");
    CHECK(r.json()["error"]["details"]["children"] == 1);
    CHECK(r.json()["error"]["details"]["current"] == true);
    CHECK(c.get(path_of(a.snapshot)).json()["state"] == "ready");
    CHECK(g.snapshot_count() == 2);

    // The leaf goes alone; then a is a leaf and goes too; the disk is the raw image again.
    REQUIRE(run_job(c, c.del(path_of(b.snapshot)))["state"] == "succeeded");
    auto last = run_job(c, c.del(path_of(a.snapshot)));
    INFO(last.dump());
    REQUIRE(last["state"] == "succeeded");
    CHECK(g.snapshot_count() == 0);
    CHECK(snapshots_of(c, g.name()).empty());
    CHECK(active_disk(g) == g.disk().string());
    for (const auto& id : {a.snapshot["id"].get<std::string>(), b.snapshot["id"].get<std::string>()})
        CHECK(files_of(dir.path, id).empty());
    // With no snapshots left the method is free again: internal is refused only for the raw disk.
    auto again = c.post("/v1/instances/" + g.name() + "/snapshots", {{"mode", "stopped"}, {"method", "internal"}});
    CHECK(error_code(again) == "unsupported_disk");
}

TEST_CASE("An external snapshot that does not fit is 507 insufficient_storage and touches nothing",
          "[e2e][external]") {
    OwnDir dir;
    TestGuest g({.tag = "extfull", .disk_format = "raw", .running = false, .disk_dir = dir.path});
    Daemon d({.config = "[snapshots]\nexternal_headroom_mib = 1048576\n"});  // 1 TiB per overlay
    auto c = d.client();
    if (!external_revert(c)) {
        SUCCEED("libvirt before 9.7: covered by the unsupported_libvirt case");
        return;
    }
    auto r = c.post("/v1/instances/" + g.name() + "/snapshots", {{"mode", "stopped"}});
    INFO(r.body);
    CHECK(r.status == 507);
    CHECK(error_code(r) == "insufficient_storage");
    CHECK(r.json()["error"]["details"]["path"] == dir.path.string());
    CHECK(r.json()["error"]["details"]["needed_bytes"].get<std::uint64_t>() == (std::uint64_t{1} << 40));
    CHECK(g.snapshot_count() == 0);
    CHECK(snapshots_of(c, g.name()).empty());
    CHECK(c.get("/v1/jobs?instance=" + g.name()).json()["items"].empty());
    CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);  // the disk alone
}

TEST_CASE("SIGKILL at every step of external create, revert and delete: no job left, no orphan file",
          "[e2e][external][recovery]") {
    {
        Daemon probe;
        if (!external_revert(probe.client())) {
            SUCCEED("libvirt before 9.7: no external snapshots to recover");
            return;
        }
    }
    for (const std::string point : {"saving", "saving.after", "snapshotting", "snapshotting.after"}) {
        DYNAMIC_SECTION("create, killed at " << point) {
            OwnDir dir;
            const bool memory = point.rfind("saving", 0) == 0;
            TestGuest g({.tag = "kext", .disk_format = "raw", .running = memory, .disk_dir = dir.path});
            if (memory) g.wait_booted();
            Daemon d(delayed(point));
            const json body = memory ? json{{"mode", "memory"}, {"name", "k"}} : json{{"mode", "stopped"}, {"name", "k"}};
            auto job = kill_at(d, point, [&] {
                return start_job(d.client(), "POST", "/v1/instances/" + g.name() + "/snapshots", body);
            });
            auto c = d.client();
            INFO(job.dump());
            CHECK(job["recovered"] == true);
            const bool after = point.find(".after") != std::string::npos;
            CHECK(job["state"] == (after ? "succeeded" : "failed"));
            CHECK(g.has_snapshot("k") == after);
            CHECK(g.state() == (memory ? "running" : "shutoff"));
            check_consistent(c, g, {"k"});
            check_no_orphans(c, g, dir.path);
            if (after) {
                const auto s = snapshots_of(c, g.name()).at(0);
                CHECK(s["method"] == "external");
                CHECK(s["size_bytes"].get<std::uint64_t>() > 0);
            }
        }
    }
    for (const std::string point : {"reverting", "reverting.after", "deleting", "deleting.after"}) {
        DYNAMIC_SECTION("killed at " << point) {
            OwnDir dir;
            TestGuest g({.tag = "kext2", .disk_format = "raw", .running = false, .disk_dir = dir.path});
            Daemon d(delayed(point));
            auto c = d.client();
            auto one = take_snapshot(c, g.name(), {{"mode", "stopped"}, {"name", "r1"}});
            auto two = take_snapshot(c, g.name(), {{"mode", "stopped"}, {"name", "r2"}});
            REQUIRE(two.job["state"] == "succeeded");
            const bool revert = point.rfind("reverting", 0) == 0;
            auto job = kill_at(d, point, [&] {
                return revert ? start_job(c, "POST", path_of(one.snapshot) + "/revert")
                              : start_job(c, "DELETE", path_of(two.snapshot));
            });
            c = d.client();
            INFO(job.dump());
            CHECK(job["recovered"] == true);
            const bool after = point.find(".after") != std::string::npos;
            CHECK(job["state"] == (after ? "succeeded" : "failed"));
            if (revert) CHECK(g.current_snapshot() == (after ? "r1" : "r2"));
            if (!revert) CHECK(g.has_snapshot("r2") == !after);
            CHECK(g.state() == "shutoff");
            check_consistent(c, g, {"r1", "r2"});
            check_no_orphans(c, g, dir.path);
            // Whatever is left can still be deleted, with its subtree.
            REQUIRE(run_job(c, c.del(path_of(one.snapshot) + "?children=true"))["state"] == "succeeded");
            CHECK(g.snapshot_count() == 0);
            check_no_orphans(c, g, dir.path);
        }
    }
}

namespace {

std::string file_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("A UEFI guest: external snapshots with and without RAM, revert brings back RAM and the NVRAM "
          "of the snapshot's moment",
          "[e2e][external][uefi]") {
    OwnDir dir;
    TestGuest g({.tag = "efi", .memory_mib = 128, .fill_mib = 16, .disk_dir = dir.path, .firmware = Firmware::efi});
    Daemon d;
    auto c = d.client();
    if (!external_revert(c)) {
        auto r = c.post("/v1/instances/" + g.name() + "/snapshots", {{"mode", "stopped"}});
        CHECK(error_code(r) == "unsupported_libvirt");  // UEFI needs the external method
        return;
    }
    g.wait_booted();
    REQUIRE(TestGuest::nvram_boot_count(g.nvram()) == std::optional<std::uint64_t>(1));

    // With RAM: external (pflash firmware), the NVRAM copied beside the memory state.
    const std::uint64_t before = g.counter();
    auto ram = take_snapshot(c, g.name(), {{"mode", "memory"}, {"name", "uefi-ram"}});
    INFO(ram.job.dump());
    REQUIRE(ram.job["state"] == "succeeded");
    const std::uint64_t at_snapshot = g.counter();
    const std::string ram_id = ram.snapshot["id"];
    CHECK(ram.snapshot["method"] == "external");
    CHECK(files_of(dir.path, ram_id) == std::set<std::string>{"snapvirt-" + ram_id + ".mem",
                                                              "snapvirt-" + ram_id + "-vda.qcow2",
                                                              "snapvirt-" + ram_id + ".nvram"});
    const std::string ram_nvram = file_bytes(dir.path / ("snapvirt-" + ram_id + ".nvram"));
    CHECK(TestGuest::nvram_boot_count(dir.path / ("snapvirt-" + ram_id + ".nvram")) == std::optional<std::uint64_t>(1));

    // A reboot after the snapshot changes the NVRAM (the program counts its boots there).
    g.destroy();
    g.start();
    g.wait_booted();
    REQUIRE(TestGuest::nvram_boot_count(g.nvram()) == std::optional<std::uint64_t>(2));
    std::this_thread::sleep_for(2s);
    const std::uint64_t before_revert = g.counter();
    auto reverted = run_job(c, c.post(path_of(ram.snapshot) + "/revert", json::object()));
    INFO(reverted.dump());
    REQUIRE(reverted["state"] == "succeeded");
    CHECK(g.state() == "running");
    const std::uint64_t after_revert = g.counter();
    INFO("before=" << before << " at_snapshot=" << at_snapshot << " before_revert=" << before_revert
                   << " after_revert=" << after_revert);
    CHECK(after_revert >= before);
    CHECK(after_revert < at_snapshot + 150);  // 100 Hz: within 1.5 s of the snapshot's moment
    CHECK(g.efi_boot_count() == 1);           // RAM of the first boot
    CHECK(file_bytes(g.nvram()) == ram_nvram);  // and its NVRAM

    // Without RAM: the guest forced off (the program ignores ACPI), its disks and NVRAM kept.
    auto cold = take_snapshot(c, g.name(), {{"mode", "stopped"}, {"name", "uefi-cold"}, {"force_stop", true},
                                            {"shutdown_timeout_s", 2}, {"keep_stopped", true}});
    INFO(cold.job.dump());
    REQUIRE(cold.job["state"] == "succeeded");
    const std::string cold_id = cold.snapshot["id"];
    CHECK(cold.snapshot["method"] == "external");
    CHECK(cold.snapshot["parent_id"] == ram_id);
    REQUIRE(g.state() == "shutoff");
    const std::string cold_nvram = file_bytes(g.nvram());
    CHECK(file_bytes(dir.path / ("snapvirt-" + cold_id + ".nvram")) == cold_nvram);
    g.start();  // boot count 2 in the NVRAM
    g.wait_booted();
    g.destroy();
    REQUIRE(file_bytes(g.nvram()) != cold_nvram);
    auto back = run_job(c, c.post(path_of(cold.snapshot) + "/revert", json::object()));
    INFO(back.dump());
    REQUIRE(back["state"] == "succeeded");
    CHECK(g.state() == "shutoff");
    CHECK(file_bytes(g.nvram()) == cold_nvram);  // put back by snapvirt: libvirt leaves it as it is
    auto started = run_job(c, c.post(path_of(cold.snapshot) + "/revert", {{"start", "running"}}));
    REQUIRE(started["state"] == "succeeded");
    g.wait_booted();
    CHECK(g.efi_boot_count() == 2);  // counted on from the snapshot's NVRAM

    // Both go; nothing of theirs is left but what the disk chain uses.
    auto gone = run_job(c, c.del(path_of(ram.snapshot) + "?children=true"));
    INFO(gone.dump());
    REQUIRE(gone["state"] == "succeeded");
    CHECK(g.snapshot_count() == 0);
    check_no_orphans(c, g, dir.path);
}

TEST_CASE("A guest on a block device (LVM-like, a loop device): memory and stopped snapshots, revert, delete",
          "[e2e][external][block]") {
    OwnDir dir;
    TestGuest g({.tag = "blk", .memory_mib = 64, .fill_mib = 24, .disk_format = "raw", .disk_dir = dir.path,
                 .disk_kind = DiskKind::block});
    OwnDir ext;
    Daemon d({.config = "[snapshots]\nexternal_dir = \"" + ext.path.string() + "\"\n"});
    auto c = d.client();
    g.wait_booted();
    if (!external_revert(c)) {
        for (const json& body : {json{{"mode", "memory"}}, json{{"mode", "stopped"}, {"method", "external"}}}) {
            auto r = c.post("/v1/instances/" + g.name() + "/snapshots", body);
            INFO(r.body);
            CHECK(r.status == 422);
            CHECK(error_code(r) == "unsupported_libvirt");
        }
        CHECK(g.snapshot_count() == 0);
        CHECK(fs::directory_iterator(ext.path) == fs::directory_iterator());
        return;
    }
    const fs::path own = ext.path / g.uuid();
    REQUIRE(guest_disk_holds(g, "0x00", "512k 4k"));

    // Memory: the device gets its anchor in external_dir, then the snapshot; the guest runs on.
    const std::uint64_t before = g.counter();
    auto ram = take_snapshot(c, g.name(), {{"mode", "memory"}, {"name", "ram"}});
    INFO(ram.job.dump());
    REQUIRE(ram.job["state"] == "succeeded");
    const std::uint64_t at_snapshot = g.counter();
    const std::string id = ram.snapshot["id"];
    CHECK(ram.snapshot["method"] == "external");
    CHECK(files_of(own, id) == std::set<std::string>{"snapvirt-" + id + ".mem", "snapvirt-" + id + "-vda.qcow2",
                                                     "snapvirt-" + id + "-vda-base.qcow2"});
    CHECK(active_disk(g) == (own / ("snapvirt-" + id + "-vda.qcow2")).string());
    CHECK(g.state() == "running");

    // Written after the snapshot, RAM and disk; both gone after the revert.
    guest_disk_write(g, "0xab", "512k 4k");
    std::this_thread::sleep_for(2500ms);
    const std::uint64_t before_revert = g.counter();
    REQUIRE(before_revert > at_snapshot + 1500);
    auto reverted = run_job(c, c.post(path_of(ram.snapshot) + "/revert", json::object()));
    INFO(reverted.dump());
    REQUIRE(reverted["state"] == "succeeded");
    check_counter_back(before, at_snapshot, before_revert, g.counter(), 1500);
    CHECK(g.state() == "running");
    CHECK(guest_disk_holds(g, "0x00", "512k 4k"));
    CHECK_FALSE(guest_disk_holds(g, "0xab", "512k 4k"));

    // Stopped: the guest shut down, its disks snapshotted, started again; revert restores the disk.
    auto off = take_snapshot(c, g.name(), {{"mode", "stopped"}, {"name", "off"}, {"force_stop", true},
                                           {"shutdown_timeout_s", 5}});
    INFO(off.job.dump());
    REQUIRE(off.job["state"] == "succeeded");
    CHECK(off.snapshot["method"] == "external");
    CHECK(off.snapshot["parent_id"] == id);
    CHECK(g.state() == "running");
    g.wait_booted();
    guest_disk_write(g, "0xcd", "640k 4k");
    auto back = run_job(c, c.post(path_of(off.snapshot) + "/revert", {{"start", "running"}}));
    INFO(back.dump());
    REQUIRE(back["state"] == "succeeded");
    CHECK(g.state() == "running");
    g.wait_booted();
    CHECK(guest_disk_holds(g, "0x00", "640k 4k"));

    // A leaf goes alone; a second memory snapshot, then the rest as a subtree.
    REQUIRE(run_job(c, c.del(path_of(off.snapshot)))["state"] == "succeeded");
    auto ram2 = take_snapshot(c, g.name(), {{"mode", "memory"}, {"name", "ram2"}});
    REQUIRE(ram2.job["state"] == "succeeded");
    const std::string id2 = ram2.snapshot["id"];
    CHECK(files_of(own, id2) == std::set<std::string>{"snapvirt-" + id2 + ".mem", "snapvirt-" + id2 + "-vda.qcow2"});
    // Written while anchored: it must reach the device when the anchor goes.
    guest_disk_write(g, "0xef", "768k 4k");
    auto gone = run_job(c, c.del(path_of(ram.snapshot) + "?children=true"));
    INFO(gone.dump());
    REQUIRE(gone["state"] == "succeeded");
    CHECK(gone["progress"]["percent"].get<int>() >= 0);
    CHECK(g.snapshot_count() == 0);
    CHECK(snapshots_of(c, g.name()).empty());

    // No snapshot left: the disk is the block device again, with everything the guest wrote,
    // and nothing of snapvirt's is left in external_dir.
    CHECK(live_disk_type(g) == "block");
    CHECK(guest_disk_holds(g, "0xef", "768k 4k"));
    CHECK(g.state() == "running");
    std::set<std::string> left;
    if (fs::exists(own))
        for (const auto& e : fs::directory_iterator(own)) left.insert(e.path().filename().string());
    CHECK(left.empty());
    g.destroy();
    std::string out;
    CHECK(TestGuest::qemu_io(g.disk(), "read -P 0xef 768k 4k", &out, "raw") == 0);
}

TEST_CASE("SIGKILL around a block device's anchor: right after it is made, and before the last delete commits it back",
          "[e2e][external][block][recovery]") {
    {
        Daemon probe;
        if (!external_revert(probe.client())) {
            SUCCEED("libvirt before 9.7: no external snapshots to recover");
            return;
        }
    }
    auto files_in = [](const fs::path& own) {
        std::set<std::string> out;
        if (fs::exists(own))
            for (const auto& e : fs::directory_iterator(own)) out.insert(e.path().string());
        return out;
    };
    for (const std::string point : {"anchor.after", "deleting.after"}) {
        DYNAMIC_SECTION("killed at " << point) {
            OwnDir dir;
            TestGuest g({.tag = "kblk", .disk_format = "raw", .disk_dir = dir.path, .disk_kind = DiskKind::block});
            OwnDir ext;
            DaemonOptions opts = delayed(point);
            opts.config = "[snapshots]\nexternal_dir = \"" + ext.path.string() + "\"\n";
            Daemon d(opts);
            auto c = d.client();
            const fs::path own = ext.path / g.uuid();
            g.wait_booted();
            if (point == "anchor.after") {
                auto job = kill_at(d, point, [&] {
                    return start_job(c, "POST", "/v1/instances/" + g.name() + "/snapshots",
                                     {{"mode", "memory"}, {"name", "k"}});
                });
                c = d.client();
                INFO(job.dump());
                CHECK(job["recovered"] == true);
                CHECK(job["state"] == "failed");
                CHECK(g.snapshot_count() == 0);
                CHECK(snapshots_of(c, g.name()).empty());
                CHECK(g.state() == "running");
                // The anchor is the disk's image now: kept (the chain uses it), nothing else left.
                const auto left = files_in(own);
                CHECK(left.size() == 1);
                for (const auto& f : left) CHECK(domain_files(g).count(f) == 1);
                CHECK(live_disk_type(g) == "file");
                // The next snapshot takes the anchor as it is; its delete puts the disk back.
                auto next = take_snapshot(c, g.name(), {{"mode", "memory"}, {"name", "k2"}});
                REQUIRE(next.job["state"] == "succeeded");
                REQUIRE(run_job(c, c.del(path_of(next.snapshot)))["state"] == "succeeded");
            } else {
                auto taken = take_snapshot(c, g.name(), {{"mode", "memory"}, {"name", "k"}});
                REQUIRE(taken.job["state"] == "succeeded");
                CHECK(live_disk_type(g) == "file");
                auto job = kill_at(d, point, [&] { return start_job(c, "DELETE", path_of(taken.snapshot)); });
                c = d.client();
                INFO(job.dump());
                CHECK(job["recovered"] == true);
                CHECK(job["state"] == "succeeded");
                CHECK(g.snapshot_count() == 0);
            }
            // Either way: no snapshot, the disk on its block device again, nothing in external_dir.
            CHECK(snapshots_of(c, g.name()).empty());
            CHECK(live_disk_type(g) == "block");
            CHECK(files_in(own).empty());
            CHECK(g.state() == "running");
        }
    }
}
