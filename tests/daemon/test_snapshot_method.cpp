// The rules of docs/api.md, "Snapshot methods": which method a create gets, which external
// snapshots may be deleted alone, where the files go and whether they fit.

#include "daemon/external_files.hpp"
#include "daemon/snapshot_method.hpp"
#include "tests/support/daemon.hpp"

#include "tests/support/catch.hpp"

#include <filesystem>
#include <fstream>
#include <thread>

using namespace snapvirt;
using namespace snapvirt::daemon;
using api::ErrorCode;

namespace {

const hv::Version libvirt9{9'000'000};
const hv::Version libvirt11{11'003'000};

hv::DiskInfo disk(const std::string& target, const std::string& format, const std::string& source = "") {
    hv::DiskInfo d;
    d.target = target;
    d.device = "disk";
    d.type = "file";
    d.format = format;
    d.source = source.empty() ? "/images/" + target + "." + format : source;
    return d;
}

hv::DomainConfig config(std::vector<hv::DiskInfo> disks, bool uefi = false) {
    hv::DomainConfig c;
    c.disks = std::move(disks);
    c.pflash_firmware = uefi;
    if (uefi) c.nvram = "/var/lib/libvirt/qemu/nvram/vm_VARS.fd";
    return c;
}

MethodFacts facts(MethodChoice requested, hv::DomainConfig cfg, hv::Version libvirt,
                  std::optional<SnapshotMethod> existing = std::nullopt) {
    MethodFacts f;
    f.instance = "vm";
    f.requested = requested;
    f.config = std::move(cfg);
    f.libvirt = libvirt;
    f.existing = existing;
    return f;
}

ErrorCode refusal(const MethodFacts& f) {
    try {
        choose_method(f);
    } catch (const api::ApiError& e) {
        return e.code();
    }
    FAIL("choose_method did not refuse");
    return ErrorCode::internal;
}

}  // namespace

TEST_CASE("auto picks internal where it covers the instance, else external", "[method]") {
    const auto qcow2 = config({disk("vda", "qcow2")});
    const auto raw = config({disk("vda", "qcow2"), disk("vdb", "raw")});
    const auto uefi = config({disk("vda", "qcow2")}, true);
    CHECK(choose_method(facts(MethodChoice::automatic, qcow2, libvirt9)) == SnapshotMethod::internal);
    CHECK(choose_method(facts(MethodChoice::automatic, qcow2, libvirt11)) == SnapshotMethod::internal);
    CHECK(choose_method(facts(MethodChoice::automatic, raw, libvirt11)) == SnapshotMethod::external);
    CHECK(choose_method(facts(MethodChoice::automatic, uefi, libvirt11)) == SnapshotMethod::external);
    // A read-only or excluded raw disk (a CD, a scratch disk with snapshot='no') is no obstacle.
    auto cd = disk("sda", "raw");
    cd.readonly = true;
    auto scratch = disk("vdc", "raw");
    scratch.excluded = true;
    CHECK(choose_method(facts(MethodChoice::automatic, config({disk("vda", "qcow2"), cd, scratch}), libvirt9)) ==
          SnapshotMethod::internal);
}

TEST_CASE("auto keeps the method of the instance's snapshots", "[method]") {
    const auto qcow2 = config({disk("vda", "qcow2")});
    CHECK(choose_method(facts(MethodChoice::automatic, qcow2, libvirt11, SnapshotMethod::external)) ==
          SnapshotMethod::external);
    // Internal snapshots of a qcow2 guest stay internal even though external could be taken.
    CHECK(choose_method(facts(MethodChoice::automatic, qcow2, libvirt11, SnapshotMethod::internal)) ==
          SnapshotMethod::internal);
}

TEST_CASE("An explicit method that breaks the rules is refused with the contract's code", "[method]") {
    const auto qcow2 = config({disk("vda", "qcow2")});
    const auto raw = config({disk("vda", "raw")});
    const auto uefi = config({disk("vda", "qcow2")}, true);
    CHECK(refusal(facts(MethodChoice::internal, raw, libvirt11)) == ErrorCode::unsupported_disk);
    CHECK(refusal(facts(MethodChoice::internal, uefi, libvirt11)) == ErrorCode::unsupported_firmware);
    CHECK(refusal(facts(MethodChoice::external, qcow2, libvirt11, SnapshotMethod::internal)) ==
          ErrorCode::method_conflict);
    CHECK(refusal(facts(MethodChoice::internal, qcow2, libvirt11, SnapshotMethod::external)) ==
          ErrorCode::method_conflict);
    CHECK(choose_method(facts(MethodChoice::external, qcow2, libvirt11)) == SnapshotMethod::external);
    CHECK(choose_method(facts(MethodChoice::internal, qcow2, libvirt9, SnapshotMethod::internal)) ==
          SnapshotMethod::internal);
}

TEST_CASE("External needs a libvirt that reverts it: unsupported_libvirt with the versions", "[method]") {
    const auto raw = config({disk("vda", "raw")});
    for (auto choice : {MethodChoice::automatic, MethodChoice::external}) {
        try {
            choose_method(facts(choice, raw, libvirt9));
            FAIL("not refused");
        } catch (const api::ApiError& e) {
            CHECK(e.code() == ErrorCode::unsupported_libvirt);
            CHECK(e.details()["required"] == "9.7.0");
            CHECK(e.details()["running"] == "9.0.0");
            CHECK_THAT(std::string(e.what()), Catch::Contains("bookworm-backports"));
            CHECK_THAT(std::string(e.what()), Catch::Contains("'vda' is raw"));
        }
    }
    CHECK(choose_method(facts(MethodChoice::external, raw, hv::Version{9'007'000})) == SnapshotMethod::external);
    // Internal, asked for or picked, works on 9.0 as before.
    CHECK(choose_method(facts(MethodChoice::internal, config({disk("vda", "qcow2")}), libvirt9)) ==
          SnapshotMethod::internal);
}

TEST_CASE("A disk that is neither an image file nor a block device cannot be snapshotted externally where it "
          "would be unrevertable",
          "[method]") {
    auto lvm = disk("vda", "raw", "/dev/vg0/web");
    lvm.type = "block";
    // A block device (LVM) gets an anchor file in front of it: external, on 9.7 and later.
    CHECK(choose_method(facts(MethodChoice::automatic, config({lvm}), libvirt11)) == SnapshotMethod::external);
    auto pool = disk("vda", "raw", "web-volume");
    pool.type = "volume";
    try {
        choose_method(facts(MethodChoice::automatic, config({pool}), libvirt11));
        FAIL("not refused");
    } catch (const api::ApiError& e) {
        CHECK(e.code() == ErrorCode::unsupported_disk);
        CHECK(e.details()["source"] == "web-volume");
        CHECK_THAT(std::string(e.what()), Catch::Contains("not a regular file"));
    }
    // On 9.0 the libvirt is the first obstacle; a qcow2 image file next to it is none.
    CHECK(refusal(facts(MethodChoice::automatic, config({lvm}), libvirt9)) == ErrorCode::unsupported_libvirt);
    CHECK(choose_method(facts(MethodChoice::external, config({disk("vda", "qcow2")}), libvirt11)) ==
          SnapshotMethod::external);
}

namespace {

Snapshot ext(const std::string& id, std::optional<std::string> parent, bool current = false) {
    Snapshot s;
    s.id = id;
    s.name = id;
    s.display_name = id;
    s.method = SnapshotMethod::external;
    s.parent_id = std::move(parent);
    s.is_current = current;
    return s;
}

std::optional<ErrorCode> delete_refusal(const std::string& id, const std::vector<Snapshot>& all) {
    for (const auto& s : all)
        if (s.id == id) {
            auto e = external_delete_obstacle(s, all);
            return e ? std::optional(e->code()) : std::nullopt;
        }
    FAIL("no snapshot " + id);
    return std::nullopt;
}

}  // namespace

TEST_CASE("External snapshots are deleted alone only in the shapes libvirt merges", "[method]") {
    SECTION("a chain a <- b <- c (current): leaves and ancestors on the current branch go alone") {
        const std::vector<Snapshot> all{ext("a", std::nullopt), ext("b", "a"), ext("c", "b", true)};
        CHECK_FALSE(delete_refusal("a", all));
        CHECK_FALSE(delete_refusal("b", all));
        CHECK_FALSE(delete_refusal("c", all));
    }
    SECTION("reverted to a: a is current with a child; b has a child off the current branch") {
        const std::vector<Snapshot> all{ext("a", std::nullopt, true), ext("b", "a"), ext("c", "b")};
        CHECK(delete_refusal("a", all) == ErrorCode::snapshot_has_children);
        CHECK(delete_refusal("b", all) == ErrorCode::snapshot_has_children);
        CHECK_FALSE(delete_refusal("c", all));
    }
    SECTION("a branch: a has two children") {
        const std::vector<Snapshot> all{ext("a", std::nullopt), ext("b", "a"), ext("d", "a", true)};
        CHECK(delete_refusal("a", all) == ErrorCode::snapshot_has_children);
        CHECK_FALSE(delete_refusal("b", all));
        CHECK_FALSE(delete_refusal("d", all));
    }
    SECTION("internal snapshots are never refused here") {
        Snapshot a = ext("a", std::nullopt, true);
        a.method = SnapshotMethod::internal;
        Snapshot b = ext("b", "a");
        b.method = SnapshotMethod::internal;
        CHECK_FALSE(external_delete_obstacle(a, {a, b}));
    }
    SECTION("a parent loop in a damaged catalog ends the walk") {
        const std::vector<Snapshot> all{ext("a", "b"), ext("b", "a"), ext("c", "d", true), ext("d", "c")};
        CHECK(delete_refusal("a", all) == ErrorCode::snapshot_has_children);  // its child b is off c's branch
    }
}

TEST_CASE("External files are named from the snapshot id, next to writable disks or in external_dir", "[method]") {
    const auto dir = test::make_temp_dir("snapvirt-ext");
    auto cfg = config({disk("vda", "raw", (dir / "web.img").string()), disk("vdb", "raw", "/dev/vg0/data")}, true);
    cfg.disks[1].type = "block";
    const auto plan = plan_external_files(cfg, "uuid-1", "id-1", SnapshotMode::memory, (dir / "ext").string());
    REQUIRE(plan.overlays.size() == 2);
    CHECK(plan.overlays[0] == std::pair<std::string, std::string>{"vda", (dir / "snapvirt-id-1-vda.qcow2").string()});
    CHECK(plan.overlays[1] ==
          std::pair<std::string, std::string>{"vdb", (dir / "ext" / "uuid-1" / "snapvirt-id-1-vdb.qcow2").string()});
    CHECK(plan.memory_file == (dir / "snapvirt-id-1.mem").string());
    CHECK(plan.nvram_copy == (dir / "snapvirt-id-1.nvram").string());
    // The block device gets an anchor in external_dir, named from the same id; the file disk none.
    REQUIRE(plan.anchors.size() == 1);
    CHECK(plan.anchors[0] ==
          std::pair<std::string, std::string>{"vdb", (dir / "ext" / "uuid-1" / "snapvirt-id-1-vdb-base.qcow2").string()});
    CHECK(plan.files().size() == 5);

    // Only block devices: everything in external_dir; stopped mode has no memory file.
    auto block_only = config({cfg.disks[1]});
    const auto plan2 = plan_external_files(block_only, "uuid-1", "id-2", SnapshotMode::stopped, (dir / "ext").string());
    CHECK(plan2.memory_file.empty());
    CHECK(plan2.nvram_copy.empty());
    REQUIRE(plan2.directories().size() == 1);
    CHECK(plan2.directories()[0] == (dir / "ext" / "uuid-1").string());
    make_directories(plan2);
    CHECK(std::filesystem::is_directory(dir / "ext" / "uuid-1"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("Free space is checked before anything is touched: insufficient_storage names the place", "[method]") {
    const auto dir = test::make_temp_dir("snapvirt-space");
    auto cfg = config({disk("vda", "raw", (dir / "web.img").string())});
    const auto plan = plan_external_files(cfg, "u", "i", SnapshotMode::memory, (dir / "ext").string());
    CHECK_NOTHROW(check_free_space(plan, "", 1024 * 1024, 1024 * 1024));
    try {
        check_free_space(plan, "", std::uint64_t{1} << 62, 0);  // a RAM no disk holds
        FAIL("not refused");
    } catch (const api::ApiError& e) {
        CHECK(e.code() == ErrorCode::insufficient_storage);
        CHECK(api::http_status(e.code()) == 507);
        CHECK(e.details()["path"] == dir.string());
        CHECK(e.details()["needed_bytes"].get<std::uint64_t>() == (std::uint64_t{1} << 62));
        CHECK(e.details()["available_bytes"].get<std::uint64_t>() < (std::uint64_t{1} << 62));
    }
    // Nothing was made by the check.
    CHECK_FALSE(std::filesystem::exists(dir / "ext"));
    CHECK(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()) == 0);
    std::filesystem::remove_all(dir);
}

TEST_CASE("allocated_bytes counts what the files take, missing ones as nothing", "[method]") {
    const auto dir = test::make_temp_dir("snapvirt-size");
    {
        std::ofstream f(dir / "a", std::ios::binary);
        f << std::string(64 * 1024, 'x');
    }
    const auto n = allocated_bytes({(dir / "a").string(), (dir / "missing").string()});
    CHECK(n >= 64 * 1024);
    std::filesystem::remove_all(dir);
}

TEST_CASE("Writeback flushes a file while it is written, waits for it to appear, stops at once", "[method]") {
    const auto dir = test::make_temp_dir("snapvirt-writeback");
    const auto file = dir / "snapvirt-x.mem";
    {
        Writeback wb(file.string(), std::chrono::milliseconds(20));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        CHECK(wb.rounds() == 0);  // nothing to flush before the file exists
        std::ofstream out(file, std::ios::binary);
        for (int i = 0; i < 20; ++i) {
            out << std::string(256 * 1024, static_cast<char>(i));
            out.flush();
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        CHECK(test::eventually([&] { return wb.rounds() >= 2; }, std::chrono::seconds(5)));
    }
    // A long period does not delay the stop.
    const auto t0 = std::chrono::steady_clock::now();
    { Writeback slow(file.string(), std::chrono::seconds(30)); }
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
    std::filesystem::remove_all(dir);
}
