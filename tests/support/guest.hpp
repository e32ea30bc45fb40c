#pragma once
// Throwaway libvirt domains for end-to-end tests, made with libvirt's C API directly (the
// test's own connection, not the daemon's). Names carry a unique prefix with the test
// process's pid; the destructor removes the domain, its snapshots, its NVRAM, its disk and its
// loop device, and the first guest of a process sweeps away leftovers of test processes that
// are gone.
//
// Two guest programs, both counting in RAM at a known guest-physical address:
//   BIOS  tests/guest/counter.asm, a boot sector (i440fx "pc" machine): the counter at 0x500
//         (1000 Hz), the booted flag at 0x508.
//   EFI   tests/guest/efi_counter.asm, \EFI\BOOT\BOOTX64.EFI on a FAT disk, under Debian's OVMF
//         (q35 machine, pflash code and a per-guest NVRAM copied from the firmware's template):
//         the counter at 0x200000 (100 Hz), the booted flag at 0x200008, the boot count it wrote
//         to its NVRAM at 0x200010. It boots in ~5 s under TCG (BIOS: well under a second).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace snapvirt::test {

enum class Firmware { bios, efi };
// file: the image is a file (disk_format qcow2 or raw). block: the raw image is the content of a
// loop device over a backing file in disk_dir, attached as <disk type='block'> (like an LVM
// volume); disk_format must then be "raw".
enum class DiskKind { file, block };

// Tests name only the fields they care about, in this order (designated initializers).
struct GuestOptions {
    std::string tag = "vm";          // part of the name
    unsigned memory_mib = 64;
    unsigned fill_mib = 16;          // RAM the guest dirties at boot
    std::string disk_format = "qcow2";
    bool running = true;
    bool pflash = false;             // the first name of firmware = Firmware::efi (for guests that
                                     // are only defined, never started)
    std::filesystem::path disk_dir;  // default: /var/lib/libvirt/images/snapvirt-tests
    Firmware firmware = Firmware::bios;
    DiskKind disk_kind = DiskKind::file;
};

// The OVMF files of this machine (Debian's ovmf package; see ovmf_files() in guest.cpp).
struct OvmfFiles {
    std::filesystem::path code;      // read-only pflash
    std::filesystem::path vars;      // the NVRAM template
};
// The first pair found of OVMF_CODE_4M.fd/OVMF_VARS_4M.fd (Debian 12 and 13) and
// OVMF_CODE.fd/OVMF_VARS.fd (Debian 12 and older) under /usr/share/OVMF; none if ovmf is absent.
std::optional<OvmfFiles> ovmf_files();

class TestGuest {
public:
    explicit TestGuest(GuestOptions options = {});
    ~TestGuest();
    TestGuest(const TestGuest&) = delete;
    TestGuest& operator=(const TestGuest&) = delete;

    const std::string& name() const { return name_; }
    const std::string& uuid() const { return uuid_; }
    // The domain's disk as libvirt sees it: the image file, or the loop device (/dev/loopN).
    const std::filesystem::path& disk() const { return disk_; }
    // A block guest's backing file of the loop device (empty for file disks).
    const std::filesystem::path& backing_file() const { return backing_file_; }
    // An EFI guest's NVRAM file (libvirt copies the template there at the first start; empty for BIOS).
    const std::filesystem::path& nvram() const { return nvram_; }
    const GuestOptions& options() const { return opts_; }
    bool efi() const { return opts_.firmware == Firmware::efi; }

    // The guest-physical address of the tick counter (BIOS 0x500, EFI 0x200000); the booted
    // flag is the u32 right after it.
    std::uint64_t counter_address() const;
    // The tick counter, read through the QEMU monitor.
    std::uint64_t counter() const;
    // Waits until the guest's RAM fill is done and the counter runs (BIOS 60 s, EFI 180 s).
    void wait_booted() const;
    // An EFI guest's boot count as it wrote it to its NVRAM at this boot (from its RAM).
    std::uint64_t efi_boot_count() const;
    // Runs qemu-io on this guest's (shut-off) disk with its format.
    int disk_io(const std::string& command, std::string* output = nullptr) const;
    std::string state() const;   // running, paused, shutoff, ...
    void start();
    void destroy();
    void rename(const std::string& new_name);
    std::string snapshot_xml(const std::string& snapshot) const;
    std::string current_snapshot() const;  // "" if none
    int snapshot_count() const;
    bool has_snapshot(const std::string& name) const;
    std::string monitor(const std::string& hmp) const;

    // Runs qemu-io on the (shut-off) disk: `write -P 0xab 0 4k`, `read -P 0xab 0 4k`. `shared`:
    // read-only beside a QEMU that has the image open (-U -r).
    static int qemu_io(const std::filesystem::path& disk, const std::string& command, std::string* output = nullptr,
                       const std::string& format = "qcow2", bool shared = false);

    static std::filesystem::path guest_image();      // the BIOS boot sector
    static std::filesystem::path guest_efi_image();  // the FAT image with BOOTX64.EFI

    // The value of the EFI guest's NVRAM variable SnapvirtBootCount in an NVRAM file (OVMF's
    // variable store), none if the file holds no such variable.
    static std::optional<std::uint64_t> nvram_boot_count(const std::filesystem::path& nvram);

private:
    void create();               // the constructor's work
    void remove_all() noexcept;  // the destructor's work; also when the constructor fails

    GuestOptions opts_;
    std::string name_;
    std::string uuid_;
    std::filesystem::path disk_;
    std::filesystem::path backing_file_;
    std::filesystem::path nvram_;
    std::filesystem::path console_;  // an EFI guest's serial console log (the firmware's and program's messages)
    std::filesystem::path scratch_;  // the raw image before it is converted
};

// Removes leftovers of test processes that are no longer alive: their domains, disks, NVRAM
// and console files, and the loop devices whose backing file is one of their disks.
void sweep_stale_guests();

// Whether libvirt still knows a domain with this UUID.
bool guest_domain_exists(const std::string& uuid);

// The loop device whose backing file is `file`, none if no loop device uses it.
std::optional<std::filesystem::path> loop_device_of(const std::filesystem::path& file);

}  // namespace snapvirt::test
