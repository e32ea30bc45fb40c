#pragma once
// Throwaway libvirt domains for end-to-end tests, made with libvirt's C API directly (the
// test's own connection, not the daemon's). Names carry a unique prefix with the test
// process's pid; the destructor removes the domain, its snapshots and its disk, and the first
// guest of a process sweeps away leftovers of test processes that are gone.

#include <cstdint>
#include <filesystem>
#include <string>

namespace snapvirt::test {

struct GuestOptions {
    std::string tag = "vm";          // part of the name
    unsigned memory_mib = 64;
    unsigned fill_mib = 16;          // RAM the guest dirties at boot
    std::string disk_format = "qcow2";
    bool running = true;
    bool pflash = false;             // UEFI firmware (only defined, never started)
    std::filesystem::path disk_dir;  // default: /var/lib/libvirt/images/snapvirt-tests
};

class TestGuest {
public:
    explicit TestGuest(GuestOptions options = {});
    ~TestGuest();
    TestGuest(const TestGuest&) = delete;
    TestGuest& operator=(const TestGuest&) = delete;

    const std::string& name() const { return name_; }
    const std::string& uuid() const { return uuid_; }
    const std::filesystem::path& disk() const { return disk_; }

    // The tick counter at guest-physical 0x500, read through the QEMU monitor.
    std::uint64_t counter() const;
    // Waits until the guest's RAM fill is done and the counter runs.
    void wait_booted() const;
    std::string state() const;   // running, paused, shutoff, ...
    void start();
    void destroy();
    void rename(const std::string& new_name);
    std::string snapshot_xml(const std::string& snapshot) const;
    std::string current_snapshot() const;  // "" if none
    int snapshot_count() const;
    bool has_snapshot(const std::string& name) const;
    std::string monitor(const std::string& hmp) const;

    // Runs qemu-io on the (shut-off) disk: `write -P 0xab 0 4k`, `read -P 0xab 0 4k`.
    static int qemu_io(const std::filesystem::path& disk, const std::string& command, std::string* output = nullptr);

    static std::filesystem::path guest_image();

private:
    GuestOptions opts_;
    std::string name_;
    std::string uuid_;
    std::filesystem::path disk_;
};

// Removes leftover domains of test processes that are no longer alive.
void sweep_stale_guests();

}  // namespace snapvirt::test
