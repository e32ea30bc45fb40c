// The test guests of every kind the snapshot tests need (TestGuest, tests/support/guest.hpp):
// BIOS and UEFI firmware, qcow2 and raw disk files, a raw image on a block device (a loop
// device, as an LVM volume). Each boots, counts in RAM where the tests read it, and leaves
// nothing behind: no domain, no disk, no NVRAM, no loop device.

#include "tests/support/catch.hpp"
#include "tests/support/daemon.hpp"
#include "tests/support/guest.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>

using namespace snapvirt::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// What a guest made, remembered so it can be looked for after the guest is gone.
struct Traces {
    std::string uuid;
    fs::path disk;
    fs::path backing_file;
    fs::path nvram;
};

Traces traces_of(const TestGuest& g) { return {g.uuid(), g.disk(), g.backing_file(), g.nvram()}; }

void check_nothing_left(const Traces& t) {
    INFO("domain " << t.uuid << ", disk " << t.disk << ", backing file " << t.backing_file << ", NVRAM " << t.nvram);
    CHECK_FALSE(guest_domain_exists(t.uuid));
    if (t.backing_file.empty()) {
        CHECK_FALSE(fs::exists(t.disk));
    } else {
        CHECK_FALSE(fs::exists(t.backing_file));
        CHECK_FALSE(loop_device_of(t.backing_file).has_value());
    }
    if (!t.nvram.empty()) CHECK_FALSE(fs::exists(t.nvram));
}

// The guest booted (its fill is done, its counter runs) and its counter moves on.
void check_counting(const TestGuest& g) {
    g.wait_booted();
    const auto first = g.counter();
    CHECK(first > 0);
    CHECK(eventually([&] { return g.counter() > first; }, 10s));
}

std::string bytes_of(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string command_output(const std::string& command) {
    std::string out;
    FILE* p = ::popen(command.c_str(), "r");
    if (!p) return out;
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    ::pclose(p);
    return out;
}

}  // namespace

TEST_CASE("An EFI guest on a qcow2 disk boots under OVMF and counts its boots in its own NVRAM", "[e2e][guests]") {
    REQUIRE(ovmf_files().has_value());
    Traces traces;
    {
        TestGuest g({.tag = "efi", .memory_mib = 128, .firmware = Firmware::efi});
        traces = traces_of(g);
        CHECK(g.counter_address() == 0x200000);
        CHECK(g.disk().extension() == ".qcow2");
        check_counting(g);

        // The program wrote SnapvirtBootCount = 1 at this boot: the NVRAM file is no longer the
        // firmware's template, and holds the variable.
        CHECK(g.efi_boot_count() == 1);
        REQUIRE(fs::exists(g.nvram()));
        CHECK(bytes_of(g.nvram()) != bytes_of(ovmf_files()->vars));
        CHECK(TestGuest::nvram_boot_count(g.nvram()) == std::optional<std::uint64_t>(1));
        CHECK_FALSE(TestGuest::nvram_boot_count(ovmf_files()->vars).has_value());

        // The NVRAM outlives the run: the next boot reads 1 and writes 2.
        g.destroy();
        g.start();
        check_counting(g);
        CHECK(g.efi_boot_count() == 2);
        CHECK(TestGuest::nvram_boot_count(g.nvram()) == std::optional<std::uint64_t>(2));
    }
    check_nothing_left(traces);
}

TEST_CASE("An EFI guest on a raw disk file boots and counts and leaves nothing behind", "[e2e][guests]") {
    Traces traces;
    {
        TestGuest g({.tag = "efiraw", .memory_mib = 128, .disk_format = "raw", .firmware = Firmware::efi});
        traces = traces_of(g);
        CHECK(g.disk().extension() == ".raw");
        check_counting(g);
        CHECK(g.efi_boot_count() == 1);
        CHECK(fs::exists(g.nvram()));
    }
    check_nothing_left(traces);
}

TEST_CASE("An EFI guest on a block device boots and counts and leaves nothing behind", "[e2e][guests]") {
    Traces traces;
    {
        TestGuest g({.tag = "efiblk", .memory_mib = 128, .disk_format = "raw", .firmware = Firmware::efi,
                     .disk_kind = DiskKind::block});
        traces = traces_of(g);
        CHECK(loop_device_of(g.backing_file()) == std::optional<fs::path>(g.disk()));
        check_counting(g);
        CHECK(fs::exists(g.nvram()));
    }
    check_nothing_left(traces);
}

TEST_CASE("A BIOS guest on a block device boots and counts and leaves nothing behind", "[e2e][guests]") {
    Traces traces;
    {
        TestGuest g({.tag = "blk", .disk_format = "raw", .disk_kind = DiskKind::block});
        traces = traces_of(g);
        CHECK(g.counter_address() == 0x500);
        CHECK(g.nvram().empty());
        CHECK(g.disk().string().rfind("/dev/loop", 0) == 0);
        REQUIRE(loop_device_of(g.backing_file()) == std::optional<fs::path>(g.disk()));
        check_counting(g);

        // The block device is the disk: a pattern written through it is in the backing file.
        g.destroy();
        std::string wrote, read;
        const int write_rc = g.disk_io("write -P 0xab 512k 4k", &wrote);
        const int read_rc = TestGuest::qemu_io(g.backing_file(), "read -P 0xab 512k 4k", &read, "raw");
        INFO(wrote << read);
        REQUIRE(write_rc == 0);
        CHECK(read_rc == 0);
        g.start();
        check_counting(g);
    }
    check_nothing_left(traces);
}

TEST_CASE("A BIOS guest on a raw disk file boots and counts and leaves nothing behind", "[e2e][guests]") {
    Traces traces;
    {
        TestGuest g({.tag = "raw", .disk_format = "raw"});
        traces = traces_of(g);
        CHECK(g.disk().extension() == ".raw");
        CHECK(g.backing_file().empty());
        check_counting(g);
    }
    check_nothing_left(traces);
}

TEST_CASE("A test guest that fails half-way leaves no loop device and no file behind", "[e2e][guests]") {
    const fs::path dir = make_temp_dir("snapvirt-guests");
    // libvirt refuses a domain without memory: the guest fails after its image and loop device
    // were made.
    CHECK_THROWS_WITH(TestGuest({.tag = "broken", .memory_mib = 0, .disk_format = "raw", .disk_dir = dir,
                                 .firmware = Firmware::efi, .disk_kind = DiskKind::block}),
                      Catch::Contains("Defining test domain failed"));
    CHECK(fs::is_empty(dir));
    const std::string loops = command_output("losetup --list --noheadings --output BACK-FILE");
    INFO(loops);
    CHECK(loops.find(dir.string()) == std::string::npos);
    // A block guest's image is raw by definition.
    CHECK_THROWS_WITH(TestGuest({.tag = "blkqcow", .disk_dir = dir, .disk_kind = DiskKind::block}),
                      Catch::Contains("must be 'raw'"));
    CHECK(fs::is_empty(dir));
    fs::remove_all(dir);
}

TEST_CASE("The sweep of stale guests detaches the loop devices of test processes that are gone", "[e2e][guests]") {
    // A pid that is certainly gone: a child that has exited and been reaped.
    const pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    REQUIRE(child > 0);
    ::waitpid(child, nullptr, 0);

    const fs::path dir = "/var/lib/libvirt/images/snapvirt-tests";
    fs::create_directories(dir);
    const fs::path backing = dir / ("svt-" + std::to_string(child) + "-0-stale-1.loop");
    {
        std::ofstream out(backing, std::ios::binary);
        out << std::string(1024 * 1024, '\0');
    }
    std::string dev = command_output("losetup --find --show " + backing.string());
    dev.erase(dev.find_last_not_of('\n') + 1);
    // Whatever the sweep does, this test's loop device and file go (by the device's own path).
    struct Cleanup {
        const std::string& dev;
        const fs::path& backing;
        ~Cleanup() {
            if (loop_device_of(backing) == std::optional<fs::path>(dev)) command_output("losetup --detach " + dev);
            std::error_code ec;
            fs::remove(backing, ec);
        }
    } cleanup{dev, backing};
    INFO(dev);
    REQUIRE(loop_device_of(backing) == std::optional<fs::path>(dev));

    sweep_stale_guests();
    CHECK_FALSE(loop_device_of(backing).has_value());
    CHECK_FALSE(fs::exists(backing));
}
