#include "tests/support/guest.hpp"
#include "tests/support/libvirtd.hpp"

#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#ifndef SNAPVIRT_GUEST_IMAGE
#error "SNAPVIRT_GUEST_IMAGE must name the assembled boot sector"
#endif
#ifndef SNAPVIRT_GUEST_EFI_IMAGE
#error "SNAPVIRT_GUEST_EFI_IMAGE must name the FAT image with the EFI test program"
#endif

namespace snapvirt::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const char* const prefix = "svt-";
const char* const images_dir = "/var/lib/libvirt/images/snapvirt-tests";
const char* const nvram_dir = "/var/lib/libvirt/qemu/nvram";
// A block guest's backing file ends so; the sweep detaches loop devices only over such files.
const char* const loop_suffix = ".loop";

// The guest-physical addresses of the two guest programs' tick counters (the booted flag is the
// u32 right after; the EFI program's boot count the u64 at +0x10).
constexpr std::uint64_t bios_counter = 0x500;
constexpr std::uint64_t efi_counter = 0x200000;

// What the EFI program patches its fill size behind (tests/guest/efi_counter.asm).
const std::string fill_marker = "SVTFILL:";
// SnapvirtBootCount's vendor GUID d9edf611-4528-4a01-8d2b-cf06fa17dcf2 as stored (EFI_GUID's
// little-endian fields), and its name in UTF-16 with the terminating NUL.
const unsigned char boot_count_guid[16] = {0x11, 0xf6, 0xed, 0xd9, 0x28, 0x45, 0x01, 0x4a,
                                           0x8d, 0x2b, 0xcf, 0x06, 0xfa, 0x17, 0xdc, 0xf2};
const char* const boot_count_name = "SnapvirtBootCount";

void quiet(void*, virErrorPtr) {}

struct Conn {
    virConnectPtr p;
    Conn() {
        virSetErrorFunc(nullptr, quiet);
        const std::string uri = libvirt_uri();
        p = virConnectOpen(uri.c_str());
        if (!p) throw std::runtime_error("The test cannot connect to " + uri + ".");
    }
    ~Conn() { virConnectClose(p); }
};
struct Dom {
    virDomainPtr p;
    explicit Dom(virDomainPtr d) : p(d) {}
    ~Dom() {
        if (p) virDomainFree(p);
    }
};

std::string last_error() {
    virErrorPtr e = virGetLastError();
    return e && e->message ? e->message : "unknown libvirt error";
}

std::string escape_xml(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '&': out += "&amp;"; break;
            case '\'': out += "&apos;"; break;
            case '"': out += "&quot;"; break;
            default: out += c;
        }
    }
    return out;
}

int run(const std::vector<std::string>& args, std::string* output) {
    int pipefd[2];
    if (::pipe(pipefd) != 0) throw std::runtime_error("pipe failed");
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(pipefd[1], STDOUT_FILENO);
        ::dup2(pipefd[1], STDERR_FILENO);
        ::close(pipefd[0]);
        std::vector<char*> argv;
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        ::execvp(argv[0], argv.data());
        _exit(127);
    }
    ::close(pipefd[1]);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    ::close(pipefd[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (output) *output = out;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("Cannot read '" + path.string() + "'.");
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string hex(std::uint64_t v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

// Whether a file name is one of a test process that is gone: "svt-<pid>-...", pid not alive.
bool of_dead_test_process(const std::string& name) {
    if (name.rfind(prefix, 0) != 0) return false;
    const long pid = std::strtol(name.c_str() + std::strlen(prefix), nullptr, 10);
    return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

// Each attached loop device (/dev/loopN) with the path of its backing file as the kernel shows
// it (without " (deleted)").
std::vector<std::pair<fs::path, fs::path>> loop_devices() {
    std::vector<std::pair<fs::path, fs::path>> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/sys/block", ec)) {
        const std::string dev = entry.path().filename().string();
        if (dev.rfind("loop", 0) != 0) continue;
        std::ifstream in(entry.path() / "loop" / "backing_file");
        std::string backing;
        if (!in || !std::getline(in, backing) || backing.empty()) continue;
        const std::string deleted = " (deleted)";
        if (backing.size() > deleted.size() && backing.compare(backing.size() - deleted.size(), deleted.size(), deleted) == 0)
            backing.resize(backing.size() - deleted.size());
        out.emplace_back(fs::path("/dev") / dev, backing);
    }
    return out;
}

// Detaches the loop device `dev` if its backing file is still `backing` (it may have been
// detached and reused by someone else since).
void detach_loop(const fs::path& dev, const fs::path& backing) {
    for (const auto& [d, b] : loop_devices())
        if (d == dev && b == backing) run({"losetup", "--detach", dev.string()}, nullptr);
}

void remove_domain(const Conn& c, virDomainPtr dom) {
    virDomainDestroy(dom);
    virDomainUndefineFlags(dom, VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | VIR_DOMAIN_UNDEFINE_NVRAM |
                                    VIR_DOMAIN_UNDEFINE_MANAGED_SAVE);
    (void)c;
}

std::once_flag swept;

}  // namespace

fs::path TestGuest::guest_image() { return SNAPVIRT_GUEST_IMAGE; }
fs::path TestGuest::guest_efi_image() { return SNAPVIRT_GUEST_EFI_IMAGE; }

std::optional<OvmfFiles> ovmf_files() {
    // Debian 12's ovmf has both pairs (2 MiB and 4 MiB flash); Debian 13's only the 4 MiB one.
    const fs::path dir = "/usr/share/OVMF";
    const std::pair<const char*, const char*> pairs[] = {{"OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"},
                                                         {"OVMF_CODE.fd", "OVMF_VARS.fd"}};
    for (const auto& [code, vars] : pairs)
        if (fs::exists(dir / code) && fs::exists(dir / vars)) return OvmfFiles{dir / code, dir / vars};
    return std::nullopt;
}

bool guest_domain_exists(const std::string& uuid) {
    Conn c;
    Dom d(virDomainLookupByUUIDString(c.p, uuid.c_str()));
    return d.p != nullptr;
}

std::optional<fs::path> loop_device_of(const fs::path& file) {
    std::error_code ec;
    const fs::path wanted = fs::weakly_canonical(file, ec);
    for (const auto& [dev, backing] : loop_devices())
        if (backing == wanted || backing == file) return dev;
    return std::nullopt;
}

void sweep_stale_guests() {
    Conn c;
    virDomainPtr* doms = nullptr;
    const int n = virConnectListAllDomains(c.p, &doms, 0);
    for (int i = 0; i < n; ++i) {
        const std::string name = virDomainGetName(doms[i]);
        if (of_dead_test_process(name)) {
            remove_domain(c, doms[i]);
            std::error_code ec;
            fs::remove(fs::path(nvram_dir) / (name + "_VARS.fd"), ec);
        }
        virDomainFree(doms[i]);
    }
    free(doms);
    // Loop devices over a dead test process's backing file (of any stack: loop devices are the
    // kernel's, not a mount namespace's), then every file of such a process in the test disks'
    // directory (disks, backing files, console logs, half-made images).
    for (const auto& [dev, backing] : loop_devices()) {
        const std::string file = backing.filename().string();
        if (file.size() > std::strlen(loop_suffix) && file.ends_with(loop_suffix) && of_dead_test_process(file))
            run({"losetup", "--detach", dev.string()}, nullptr);
    }
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(images_dir, ec)) {
        if (of_dead_test_process(entry.path().filename().string())) {
            std::error_code rm;
            fs::remove(entry.path(), rm);
        }
    }
}

TestGuest::TestGuest(GuestOptions options) : opts_(std::move(options)) {
    if (opts_.pflash) opts_.firmware = Firmware::efi;
    std::call_once(swept, [] {
        try {
            sweep_stale_guests();
        } catch (...) {
        }
    });
    static std::atomic<int> counter{0};
    std::mt19937 rng(std::random_device{}());
    name_ = std::string(prefix) + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + opts_.tag + "-" +
            std::to_string(rng() % 100000);
    try {
        create();
    } catch (...) {
        remove_all();
        throw;
    }
}

void TestGuest::create() {
    const bool block = opts_.disk_kind == DiskKind::block;
    if (block && opts_.disk_format != "raw")
        throw std::invalid_argument("A test guest on a block device holds a raw image: its disk_format must be 'raw', not '" +
                                    opts_.disk_format + "'.");
    fs::path dir = opts_.disk_dir.empty() ? fs::path(images_dir) : opts_.disk_dir;
    fs::create_directories(dir);
    dir = fs::canonical(dir);  // the loop device's backing file is compared by this path

    // The raw image: BIOS, a 1 MiB disk with the boot sector; EFI, the FAT image with the
    // program. The fill size is patched in.
    std::string image;
    const std::uint32_t fill = opts_.fill_mib;
    if (efi()) {
        image = read_file(guest_efi_image());
        const auto at = image.find(fill_marker);
        if (at == std::string::npos || image.find(fill_marker, at + 1) != std::string::npos)
            throw std::runtime_error("The EFI guest image has no single fill-size marker '" + fill_marker + "'.");
        std::memcpy(image.data() + at + fill_marker.size(), &fill, sizeof fill);
    } else {
        image = read_file(guest_image());
        if (image.size() != 512) throw std::runtime_error("The guest image is not a 512-byte boot sector.");
        std::memcpy(image.data() + 0x1f0, &fill, sizeof fill);
        image += std::string(1024 * 1024 - 512, '\0');
    }
    const auto write = [&](const fs::path& path) {
        std::ofstream out(path, std::ios::binary);
        out << image;
        out.close();
        if (!out) throw std::runtime_error("Cannot write '" + path.string() + "'.");
    };

    if (block) {
        // The image is the content of a loop device, as an LVM volume holds a raw image.
        backing_file_ = dir / (name_ + loop_suffix);
        write(backing_file_);
        std::string output;
        if (run({"losetup", "--find", "--show", backing_file_.string()}, &output) != 0)
            throw std::runtime_error("losetup failed for '" + backing_file_.string() + "': " + output);
        output.erase(output.find_last_not_of(" \n") + 1);
        if (output.rfind("/dev/loop", 0) != 0) throw std::runtime_error("Unexpected losetup output: " + output);
        disk_ = output;
    } else {
        disk_ = dir / (name_ + (opts_.disk_format == "qcow2" ? ".qcow2" : ".raw"));
        scratch_ = dir / (name_ + ".boot");
        write(scratch_);
        std::string output;
        if (run({"qemu-img", "convert", "-f", "raw", "-O", opts_.disk_format, scratch_.string(), disk_.string()}, &output) != 0)
            throw std::runtime_error("qemu-img convert failed: " + output);
        fs::remove(scratch_);
        scratch_.clear();
    }

    std::string loader, console;
    if (efi()) {
        auto ovmf = ovmf_files();
        if (!ovmf && opts_.running)
            throw std::runtime_error("No OVMF firmware in /usr/share/OVMF: an EFI test guest needs the ovmf package.");
        // A guest that is only defined (never started) needs no firmware files.
        if (!ovmf) ovmf = OvmfFiles{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"};
        nvram_ = fs::path(nvram_dir) / (name_ + "_VARS.fd");
        console_ = dir / (name_ + ".console");
        loader = "<loader readonly='yes' type='pflash'>" + escape_xml(ovmf->code.string()) + "</loader><nvram template='" +
                 escape_xml(ovmf->vars.string()) + "'>" + escape_xml(nvram_.string()) + "</nvram>";
        console = "<serial type='file'><source path='" + escape_xml(console_.string()) +
                  "' append='on'/><target port='0'/></serial>";
    }
    const std::string disk =
        block ? "<disk type='block' device='disk'><driver name='qemu' type='raw'/><source dev='" + escape_xml(disk_.string()) +
                    "'/>"
              : "<disk type='file' device='disk'><driver name='qemu' type='" + opts_.disk_format + "'/><source file='" +
                    escape_xml(disk_.string()) + "'/>";
    const std::string xml =
        "<domain type='qemu'><name>" + escape_xml(name_) + "</name><memory unit='MiB'>" +
        std::to_string(opts_.memory_mib) +
        "</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='" + std::string(efi() ? "q35" : "pc") +
        "'>hvm</type>" + loader +
        "<boot dev='hd'/></os><features><acpi/></features><on_poweroff>destroy</on_poweroff>"
        "<on_reboot>restart</on_reboot><devices><emulator>/usr/bin/qemu-system-x86_64</emulator>" + disk +
        "<target dev='vda' bus='virtio'/></disk>" + console + "<memballoon model='none'/></devices></domain>";
    Conn c;
    Dom d(virDomainDefineXML(c.p, xml.c_str()));
    if (!d.p) throw std::runtime_error("Defining test domain failed: " + last_error());
    char uuid[VIR_UUID_STRING_BUFLEN];
    virDomainGetUUIDString(d.p, uuid);
    uuid_ = uuid;
    if (opts_.running) {
        if (virDomainCreate(d.p) < 0) throw std::runtime_error("Starting test domain failed: " + last_error());
    }
}

TestGuest::~TestGuest() { remove_all(); }

// The domain first (QEMU lets go of the disk and the loop device), then the loop device by its
// own path, then the files. Never throws; safe on a half-made guest.
void TestGuest::remove_all() noexcept {
    try {
        if (!uuid_.empty()) {
            Conn c;
            Dom d(virDomainLookupByUUIDString(c.p, uuid_.c_str()));
            if (d.p) remove_domain(c, d.p);
        }
    } catch (...) {
    }
    try {
        if (!backing_file_.empty()) {
            if (disk_.string().rfind("/dev/loop", 0) == 0) detach_loop(disk_, backing_file_);
            // losetup attached it but its answer was lost: found by our own backing file.
            if (auto dev = loop_device_of(backing_file_)) detach_loop(*dev, backing_file_);
        }
    } catch (...) {
    }
    std::error_code ec;
    if (opts_.disk_kind == DiskKind::file && !disk_.empty()) fs::remove(disk_, ec);
    for (const auto* path : {&backing_file_, &scratch_, &nvram_, &console_})
        if (!path->empty()) fs::remove(*path, ec);
}

std::string TestGuest::monitor(const std::string& hmp) const {
    Conn c;
    Dom d(virDomainLookupByUUIDString(c.p, uuid_.c_str()));
    char* out = nullptr;
    if (!d.p || virDomainQemuMonitorCommand(d.p, hmp.c_str(), &out, VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP) < 0)
        throw std::runtime_error("Monitor command failed: " + last_error());
    std::string s(out);
    free(out);
    return s;
}

std::uint64_t TestGuest::counter_address() const { return efi() ? efi_counter : bios_counter; }

namespace {
std::uint64_t parse_xp(const std::string& out) {
    const auto pos = out.find("0x", out.find(':'));
    if (pos == std::string::npos) throw std::runtime_error("Unexpected monitor output: " + out);
    return std::stoull(out.substr(pos + 2), nullptr, 16);
}
}  // namespace

std::uint64_t TestGuest::counter() const { return parse_xp(monitor("xp /1gx " + hex(counter_address()))); }

std::uint64_t TestGuest::efi_boot_count() const {
    if (!efi()) throw std::logic_error("Only an EFI test guest counts its boots.");
    return parse_xp(monitor("xp /1gx " + hex(efi_counter + 0x10)));
}

void TestGuest::wait_booted() const {
    // OVMF under TCG takes ~5 s to reach the boot file on an idle machine; allow for a busy one.
    const auto deadline = std::chrono::steady_clock::now() + (efi() ? 180s : 60s);
    const std::string flag = "xp /1wx " + hex(counter_address() + 8);
    while (std::chrono::steady_clock::now() < deadline) {
        const std::string out = monitor(flag);
        if (out.find("0x00000001") != std::string::npos && counter() > 0) return;
        std::this_thread::sleep_for(100ms);
    }
    std::string why;
    if (!console_.empty()) {
        std::error_code ec;
        if (fs::exists(console_, ec)) {
            std::string text = read_file(console_);
            std::erase(text, '\x1b');
            why = " Its console ends with: " + text.substr(text.size() > 600 ? text.size() - 600 : 0);
        }
    }
    throw std::runtime_error("Guest " + name_ + " did not boot." + why);
}

std::string TestGuest::state() const {
    Conn c;
    Dom d(virDomainLookupByUUIDString(c.p, uuid_.c_str()));
    if (!d.p) return "undefined";
    int state = 0, reason = 0;
    virDomainGetState(d.p, &state, &reason, 0);
    switch (state) {
        case VIR_DOMAIN_RUNNING: return "running";
        case VIR_DOMAIN_PAUSED: return "paused";
        case VIR_DOMAIN_SHUTOFF: return "shutoff";
        case VIR_DOMAIN_SHUTDOWN: return "running";
        case VIR_DOMAIN_CRASHED: return "crashed";
        default: return "other";
    }
}

void TestGuest::start() {
    Conn c;
    Dom d(virDomainLookupByUUIDString(c.p, uuid_.c_str()));
    if (!d.p || virDomainCreate(d.p) < 0) throw std::runtime_error("Starting failed: " + last_error());
}

void TestGuest::destroy() {
    Conn c;
    Dom d(virDomainLookupByUUIDString(c.p, uuid_.c_str()));
    if (!d.p || virDomainDestroy(d.p) < 0) throw std::runtime_error("Destroying " + name_ + " failed: " + last_error());
}

void TestGuest::rename(const std::string& new_name) {
    Conn c;
    Dom d(virDomainLookupByUUIDString(c.p, uuid_.c_str()));
    if (!d.p || virDomainRename(d.p, new_name.c_str(), 0) < 0) throw std::runtime_error("Rename failed: " + last_error());
    name_ = new_name;
}

std::string TestGuest::snapshot_xml(const std::string& snapshot) const {
    Conn c;
    Dom d(virDomainLookupByUUIDString(c.p, uuid_.c_str()));
    virDomainSnapshotPtr s = d.p ? virDomainSnapshotLookupByName(d.p, snapshot.c_str(), 0) : nullptr;
    if (!s) throw std::runtime_error("Snapshot '" + snapshot + "' not found: " + last_error());
    char* x = virDomainSnapshotGetXMLDesc(s, 0);
    std::string out = x ? x : "";
    free(x);
    virDomainSnapshotFree(s);
    return out;
}

std::string TestGuest::current_snapshot() const {
    Conn c;
    Dom d(virDomainLookupByUUIDString(c.p, uuid_.c_str()));
    if (!d.p || virDomainHasCurrentSnapshot(d.p, 0) != 1) return "";
    virDomainSnapshotPtr s = virDomainSnapshotCurrent(d.p, 0);
    std::string name = s ? virDomainSnapshotGetName(s) : "";
    if (s) virDomainSnapshotFree(s);
    return name;
}

int TestGuest::snapshot_count() const {
    Conn c;
    Dom d(virDomainLookupByUUIDString(c.p, uuid_.c_str()));
    return d.p ? virDomainSnapshotNum(d.p, 0) : -1;
}

bool TestGuest::has_snapshot(const std::string& name) const {
    Conn c;
    Dom d(virDomainLookupByUUIDString(c.p, uuid_.c_str()));
    if (!d.p) return false;
    virDomainSnapshotPtr s = virDomainSnapshotLookupByName(d.p, name.c_str(), 0);
    if (!s) return false;
    virDomainSnapshotFree(s);
    return true;
}

int TestGuest::qemu_io(const fs::path& disk, const std::string& command, std::string* output, const std::string& format,
                       bool shared) {
    if (shared) return run({"qemu-io", "-U", "-r", "-f", format, "-c", command, disk.string()}, output);
    return run({"qemu-io", "-f", format, "-c", command, disk.string()}, output);
}

int TestGuest::disk_io(const std::string& command, std::string* output) const {
    return qemu_io(disk_, command, output, opts_.disk_format);
}

std::optional<std::uint64_t> TestGuest::nvram_boot_count(const fs::path& nvram) {
    // OVMF's variable store: each variable is a header (StartId 0x55AA, State, ..., NameSize,
    // DataSize, VendorGuid; 60 bytes in the authenticated format, 32 in the plain one), then the
    // UTF-16 name, then the data. An update appends a new copy and marks the old one deleted:
    // the copy whose State is VAR_ADDED (0x3F) is the value, one in deletion (0x3E) only if
    // there is no other.
    const std::string store = read_file(nvram);
    std::string key(reinterpret_cast<const char*>(boot_count_guid), sizeof boot_count_guid);
    for (const char* p = boot_count_name;; ++p) {
        key += *p;
        key += '\0';
        if (!*p) break;
    }
    const auto u16 = [&](std::size_t at) { return std::uint16_t(std::uint8_t(store[at]) | std::uint8_t(store[at + 1]) << 8); };
    const auto u32 = [&](std::size_t at) {
        std::uint32_t v;
        std::memcpy(&v, store.data() + at, sizeof v);
        return v;
    };
    std::optional<std::uint64_t> added, in_deletion;
    for (auto at = store.find(key); at != std::string::npos; at = store.find(key, at + 1)) {
        const std::size_t name = at + sizeof boot_count_guid;
        const std::size_t name_size = key.size() - sizeof boot_count_guid;
        if (name < 60 || name + name_size + 8 > store.size()) continue;
        if (u32(name - 24) != name_size || u32(name - 20) != 8) continue;
        std::size_t header;
        if (u16(name - 60) == 0x55aa) header = name - 60;
        else if (u16(name - 32) == 0x55aa) header = name - 32;
        else continue;
        std::uint64_t value;
        std::memcpy(&value, store.data() + name + name_size, sizeof value);
        const auto state = std::uint8_t(store[header + 2]);
        if (state == 0x3f) added = value;
        else if (state == 0x3e) in_deletion = value;
    }
    return added ? added : in_deletion;
}

}  // namespace snapvirt::test
