#include "tests/support/guest.hpp"
#include "tests/support/libvirtd.hpp"

#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <atomic>
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

namespace snapvirt::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const char* const prefix = "svt-";

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

void remove_domain(const Conn& c, virDomainPtr dom) {
    virDomainDestroy(dom);
    virDomainUndefineFlags(dom, VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | VIR_DOMAIN_UNDEFINE_NVRAM |
                                    VIR_DOMAIN_UNDEFINE_MANAGED_SAVE);
    (void)c;
}

std::once_flag swept;

}  // namespace

fs::path TestGuest::guest_image() { return SNAPVIRT_GUEST_IMAGE; }

void sweep_stale_guests() {
    Conn c;
    virDomainPtr* doms = nullptr;
    const int n = virConnectListAllDomains(c.p, &doms, 0);
    for (int i = 0; i < n; ++i) {
        const std::string name = virDomainGetName(doms[i]);
        if (name.rfind(prefix, 0) == 0) {
            const long pid = std::strtol(name.c_str() + std::strlen(prefix), nullptr, 10);
            if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
                remove_domain(c, doms[i]);
                std::error_code ec;
                fs::remove(fs::path("/var/lib/libvirt/images/snapvirt-tests") / (name + ".qcow2"), ec);
                fs::remove(fs::path("/var/lib/libvirt/images/snapvirt-tests") / (name + ".raw"), ec);
            }
        }
        virDomainFree(doms[i]);
    }
    free(doms);
}

TestGuest::TestGuest(GuestOptions options) : opts_(std::move(options)) {
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
    fs::path dir = opts_.disk_dir.empty() ? fs::path("/var/lib/libvirt/images/snapvirt-tests") : opts_.disk_dir;
    fs::create_directories(dir);
    disk_ = dir / (name_ + (opts_.disk_format == "qcow2" ? ".qcow2" : ".raw"));

    // A 1 MiB raw disk with the boot sector (fill size patched in), converted as asked.
    std::ifstream in(guest_image(), std::ios::binary);
    std::string sector((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (sector.size() != 512) throw std::runtime_error("The guest image is not a 512-byte boot sector.");
    const std::uint32_t fill = opts_.fill_mib;
    std::memcpy(sector.data() + 0x1f0, &fill, sizeof fill);
    const fs::path raw = dir / (name_ + ".boot");
    {
        std::ofstream out(raw, std::ios::binary);
        out << sector;
        out << std::string(1024 * 1024 - 512, '\0');
    }
    std::string output;
    if (run({"qemu-img", "convert", "-f", "raw", "-O", opts_.disk_format, raw.string(), disk_.string()}, &output) != 0)
        throw std::runtime_error("qemu-img convert failed: " + output);
    fs::remove(raw);

    std::string loader;
    if (opts_.pflash)
        loader = "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>"
                 "<nvram>/var/lib/libvirt/qemu/nvram/" + name_ + "_VARS.fd</nvram>";
    const std::string xml =
        "<domain type='qemu'><name>" + escape_xml(name_) + "</name><memory unit='MiB'>" +
        std::to_string(opts_.memory_mib) +
        "</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='" + std::string(opts_.pflash ? "q35" : "pc") +
        "'>hvm</type>" + loader +
        "<boot dev='hd'/></os><features><acpi/></features><on_poweroff>destroy</on_poweroff>"
        "<on_reboot>restart</on_reboot><devices><emulator>/usr/bin/qemu-system-x86_64</emulator>"
        "<disk type='file' device='disk'><driver name='qemu' type='" + opts_.disk_format + "'/><source file='" +
        escape_xml(disk_.string()) + "'/><target dev='vda' bus='virtio'/></disk><memballoon model='none'/>"
        "</devices></domain>";
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

TestGuest::~TestGuest() {
    try {
        Conn c;
        Dom d(virDomainLookupByUUIDString(c.p, uuid_.c_str()));
        if (d.p) remove_domain(c, d.p);
    } catch (...) {
    }
    std::error_code ec;
    fs::remove(disk_, ec);
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

std::uint64_t TestGuest::counter() const {
    const std::string out = monitor("xp /1gx 0x500");
    const auto pos = out.find("0x", out.find(':'));
    if (pos == std::string::npos) throw std::runtime_error("Unexpected monitor output: " + out);
    return std::stoull(out.substr(pos + 2), nullptr, 16);
}

void TestGuest::wait_booted() const {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < deadline) {
        const std::string out = monitor("xp /1wx 0x508");
        if (out.find("0x00000001") != std::string::npos && counter() > 0) return;
        std::this_thread::sleep_for(100ms);
    }
    throw std::runtime_error("Guest " + name_ + " did not boot.");
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

int TestGuest::qemu_io(const fs::path& disk, const std::string& command, std::string* output) {
    return run({"qemu-io", "-f", "qcow2", "-c", command, disk.string()}, output);
}

}  // namespace snapvirt::test
