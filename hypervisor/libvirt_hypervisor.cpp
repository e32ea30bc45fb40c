#include "hypervisor/handles.hpp"
#include "hypervisor/hypervisor.hpp"
#include "hypervisor/xml.hpp"

#include <libvirt/virterror.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <type_traits>

namespace snapvirt::hv {

const char* to_string(DomainState s) {
    switch (s) {
        case DomainState::running: return "running";
        case DomainState::paused: return "paused";
        case DomainState::shutoff: return "shutoff";
        case DomainState::crashed: return "crashed";
        case DomainState::pmsuspended: return "pmsuspended";
        case DomainState::other: break;
    }
    return "other";
}

std::string Version::to_string() const {
    return std::to_string(number / 1'000'000) + "." + std::to_string(number / 1'000 % 1'000) + "." +
           std::to_string(number % 1'000);
}

bool LifecycleEvent::suspended() const { return event == VIR_DOMAIN_EVENT_SUSPENDED; }
bool LifecycleEvent::resumed() const { return event == VIR_DOMAIN_EVENT_RESUMED; }
bool LifecycleEvent::defined_or_undefined() const {
    return event == VIR_DOMAIN_EVENT_DEFINED || event == VIR_DOMAIN_EVENT_UNDEFINED;
}

namespace {

void silence_libvirt_errors(void*, virErrorPtr) {}

// libvirt's process-wide set-up: error printing off, the default event loop on its own thread.
// Must happen before the first connection is opened; lives for the rest of the process.
class EventLoop {
public:
    static void ensure_running() {
        static EventLoop loop;
        (void)loop;
    }

private:
    EventLoop() {
        virSetErrorFunc(nullptr, silence_libvirt_errors);
        if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0)
            throw Error::from_last("Initialising libvirt's event loop failed");
        std::thread([] {
            for (;;) {
                if (virEventRunDefaultImpl() < 0) {
                    virResetLastError();
                    std::this_thread::sleep_for(std::chrono::milliseconds(50));
                }
            }
        }).detach();
    }
};

DomainState map_state(int state) {
    switch (state) {
        case VIR_DOMAIN_RUNNING:
        case VIR_DOMAIN_BLOCKED: return DomainState::running;
        case VIR_DOMAIN_PAUSED: return DomainState::paused;
        case VIR_DOMAIN_SHUTDOWN:  // being shut down: still running
            return DomainState::running;
        case VIR_DOMAIN_SHUTOFF: return DomainState::shutoff;
        case VIR_DOMAIN_CRASHED: return DomainState::crashed;
        case VIR_DOMAIN_PMSUSPENDED: return DomainState::pmsuspended;
        default: return DomainState::other;
    }
}

bool looks_like_uuid(const std::string& s) {
    if (s.size() != 36) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') return false;
        } else if (!std::isxdigit(static_cast<unsigned char>(c))) {
            return false;
        }
    }
    return true;
}

std::string take_string(char* s) {
    CString owned(s);
    return owned ? std::string(owned.get()) : std::string();
}

// Reads everything the API reports about one domain.
DomainInfo describe(virDomainPtr dom) {
    DomainInfo info;
    char uuid[VIR_UUID_STRING_BUFLEN];
    if (virDomainGetUUIDString(dom, uuid) < 0) throw Error::from_last("Reading a domain's UUID failed");
    info.uuid = uuid;
    const char* name = virDomainGetName(dom);
    info.name = name ? name : "";
    virDomainInfo raw{};
    if (virDomainGetInfo(dom, &raw) < 0) throw Error::from_last("Reading domain '" + info.name + "' failed");
    int state = 0;
    int reason = 0;
    if (virDomainGetState(dom, &state, &reason, 0) < 0)
        throw Error::from_last("Reading the state of domain '" + info.name + "' failed");
    info.state = map_state(state);
    info.state_reason = reason;
    info.paused_for_save =
        state == VIR_DOMAIN_PAUSED && (reason == VIR_DOMAIN_PAUSED_SAVE || reason == VIR_DOMAIN_PAUSED_SNAPSHOT);
    info.memory_mib = raw.maxMem / 1024;
    info.vcpus = raw.nrVirtCpu;
    info.persistent = virDomainIsPersistent(dom) == 1;
    if (virDomainHasCurrentSnapshot(dom, 0) == 1) {
        SnapshotPtr cur(virDomainSnapshotCurrent(dom, 0));
        if (cur) info.current_snapshot = virDomainSnapshotGetName(cur.get());
    }
    virResetLastError();
    return info;
}

// One virConnectPtr and what was registered on it.
class Connection {
public:
    explicit Connection(ConnectPtr conn) : conn_(std::move(conn)) {}
    ~Connection() {
        if (lifecycle_cb_ >= 0) virConnectDomainEventDeregisterAny(conn_.get(), lifecycle_cb_);
        if (close_cb_) virConnectUnregisterCloseCallback(conn_.get(), close_cb_);
        virResetLastError();
    }
    virConnectPtr get() const noexcept { return conn_.get(); }
    bool alive() const noexcept { return virConnectIsAlive(conn_.get()) == 1; }

    int lifecycle_cb_ = -1;
    virConnectCloseFunc close_cb_ = nullptr;

private:
    ConnectPtr conn_;
};

ConnectPtr open_connection(const LibvirtOptions& opts) {
    ConnectPtr conn(virConnectOpen(opts.uri.c_str()));
    if (!conn) throw Error::from_last("Connecting to libvirt at '" + opts.uri + "' failed");
    // The test driver has no keepalive; everything remote does.
    if (virConnectSetKeepAlive(conn.get(), opts.keepalive_interval_s, opts.keepalive_count) < 0) virResetLastError();
    return conn;
}

DomainPtr lookup(virConnectPtr conn, const std::string& name_or_uuid) {
    DomainPtr dom(looks_like_uuid(name_or_uuid) ? virDomainLookupByUUIDString(conn, name_or_uuid.c_str())
                                                 : virDomainLookupByName(conn, name_or_uuid.c_str()));
    if (!dom) throw Error::from_last("Looking up domain '" + name_or_uuid + "' failed");
    return dom;
}

SnapshotPtr lookup_snapshot(virDomainPtr dom, const std::string& name) {
    SnapshotPtr snap(virDomainSnapshotLookupByName(dom, name.c_str(), 0));
    if (!snap) throw Error::from_last("Looking up snapshot '" + name + "' failed");
    return snap;
}

// Reclassifies a failure as `unavailable` when the connection itself is gone.
[[noreturn]] void rethrow_checked(const Error& e, const Connection& c) {
    if (e.kind() != Error::Kind::unavailable && !c.alive())
        throw Error(Error::Kind::unavailable, std::string("Lost the connection to libvirt: ") + e.what(), e.code(),
                    e.domain());
    throw e;
}

void do_create_snapshot(virConnectPtr conn, const std::string& uuid, const SnapshotSpec& spec) {
    DomainPtr dom = lookup(conn, uuid);
    const std::string doc = xml::build_snapshot(spec);
    unsigned flags = VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC;
    if (spec.method == SnapshotMethod::external) {
        // Memory: the guest runs on while its RAM is written (LIVE). Stopped: the disks only.
        flags |= spec.mode == SnapshotMode::memory ? VIR_DOMAIN_SNAPSHOT_CREATE_LIVE : VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY;
    }
    if (!spec.keep_metadata) flags |= VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA;
    SnapshotPtr snap(virDomainSnapshotCreateXML(dom.get(), doc.c_str(), flags));
    if (!snap) throw Error::from_last("Creating snapshot '" + spec.name + "' failed");
}

void do_set_metadata(virConnectPtr conn, const std::string& uuid, const std::string& name,
                     const std::string& description, const std::string& display_name) {
    DomainPtr dom = lookup(conn, uuid);
    SnapshotPtr snap = lookup_snapshot(dom.get(), name);
    std::string current = take_string(virDomainSnapshotGetXMLDesc(snap.get(), VIR_DOMAIN_SNAPSHOT_XML_SECURE));
    if (current.empty()) throw Error::from_last("Reading snapshot '" + name + "' failed");
    const bool was_current = virDomainSnapshotIsCurrent(snap.get(), 0) == 1;
    const std::string doc = xml::set_snapshot_metadata(current, description, display_name);
    unsigned flags = VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE;
    if (was_current) flags |= VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT;
    SnapshotPtr redefined(virDomainSnapshotCreateXML(dom.get(), doc.c_str(), flags));
    if (!redefined) throw Error::from_last("Updating the metadata of snapshot '" + name + "' failed");
}

void do_commit_disk(virConnectPtr conn, const std::string& uuid, const std::string& target,
                    const std::function<void(int)>& progress) {
    DomainPtr dom = lookup(conn, uuid);
    const char* disk = target.c_str();
    virDomainBlockJobInfo info{};
    int has_job = virDomainGetBlockJobInfo(dom.get(), disk, &info, 0);
    if (has_job < 0) throw Error::from_last("Reading the block jobs of disk '" + target + "' failed");
    if (has_job == 1 && info.type != VIR_DOMAIN_BLOCK_JOB_TYPE_ACTIVE_COMMIT)
        throw Error(Error::Kind::operation_invalid, "Disk '" + target + "' is busy with another block job (type " +
                                            std::to_string(info.type) + "); try again when it has ended.");
    if (has_job == 0 && virDomainBlockCommit(dom.get(), disk, nullptr, nullptr, 0, VIR_DOMAIN_BLOCK_COMMIT_ACTIVE) < 0)
        throw Error::from_last("Committing disk '" + target + "' into its base failed");
    // Ready when everything is copied (cur == end); then the pivot ends the job.
    for (;;) {
        has_job = virDomainGetBlockJobInfo(dom.get(), disk, &info, 0);
        if (has_job < 0) throw Error::from_last("Following the commit of disk '" + target + "' failed");
        if (has_job == 0) throw Error(Error::Kind::failed, "The commit of disk '" + target + "' ended before its pivot.");
        if (info.end > 0) progress(static_cast<int>(100 * info.cur / info.end));
        if (info.end > 0 && info.cur == info.end) {
            if (virDomainBlockJobAbort(dom.get(), disk, VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT) == 0) return;
            // Not ready yet in QEMU's eyes (cur == end can come before the ready event): again.
            if (virGetLastErrorCode() != VIR_ERR_BLOCK_COPY_ACTIVE && virGetLastErrorCode() != VIR_ERR_OPERATION_INVALID)
                throw Error::from_last("Switching disk '" + target + "' to its base failed");
            virResetLastError();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

class LibvirtHypervisor;

class LibvirtLane final : public Lane {
public:
    LibvirtLane(LibvirtHypervisor& owner, std::shared_ptr<Connection> conn) : owner_(owner), conn_(std::move(conn)) {}
    ~LibvirtLane() override;

    void create_snapshot(const std::string& uuid, const SnapshotSpec& spec) override {
        run([&] { do_create_snapshot(conn_->get(), uuid, spec); });
    }
    void revert_snapshot(const std::string& uuid, const std::string& name, const RevertSpec& spec) override {
        run([&] {
            DomainPtr dom = lookup(conn_->get(), uuid);
            SnapshotPtr snap = lookup_snapshot(dom.get(), name);
            unsigned flags = 0;
            if (spec.start == RevertStart::running) flags |= VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING;
            if (spec.start == RevertStart::paused) flags |= VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED;
            if (spec.force) flags |= VIR_DOMAIN_SNAPSHOT_REVERT_FORCE;
            if (virDomainRevertToSnapshot(snap.get(), flags) < 0)
                throw Error::from_last("Reverting to snapshot '" + name + "' failed");
        });
    }
    void delete_snapshot(const std::string& uuid, const std::string& name, bool children, bool metadata_only) override {
        run([&] {
            DomainPtr dom = lookup(conn_->get(), uuid);
            SnapshotPtr snap = lookup_snapshot(dom.get(), name);
            unsigned flags = 0;
            if (children) flags |= VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN;
            if (metadata_only) flags |= VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY;
            if (virDomainSnapshotDelete(snap.get(), flags) < 0)
                throw Error::from_last("Deleting snapshot '" + name + "' failed");
        });
    }

    void commit_disk(const std::string& uuid, const std::string& target,
                     const std::function<void(int)>& progress) override {
        run([&] { do_commit_disk(conn_->get(), uuid, target, progress); });
    }

private:
    template <class F>
    void run(F&& f) {
        try {
            f();
        } catch (const Error& e) {
            broken_ = !conn_->alive();
            rethrow_checked(e, *conn_);
        }
    }

    LibvirtHypervisor& owner_;
    std::shared_ptr<Connection> conn_;
    bool broken_ = false;
};

// Thread-safety: the connection pointer and state are guarded by mu_; libvirt calls are made
// on a shared_ptr copy of the connection outside the lock (libvirt connections are thread-safe).
class LibvirtHypervisor final : public Hypervisor {
public:
    explicit LibvirtHypervisor(LibvirtOptions opts) : opts_(std::move(opts)) {
        EventLoop::ensure_running();
        status_ = "connecting to libvirt at '" + opts_.uri + "'";
        connector_ = std::thread([this] { connect_loop(); });
    }

    ~LibvirtHypervisor() override {
        set_listener(nullptr);
        {
            std::lock_guard lock(mu_);
            stopping_ = true;
        }
        cv_.notify_all();
        connector_.join();
        std::lock_guard lock(mu_);
        conn_.reset();
        idle_lanes_.clear();
    }

    bool connected() const override {
        std::lock_guard lock(mu_);
        return conn_ != nullptr;
    }
    std::string status() const override {
        std::lock_guard lock(mu_);
        return status_;
    }

    // Waits for a callback in flight, so that the old listener may be destroyed afterwards.
    void set_listener(EventListener* listener) override {
        std::lock_guard lock(listener_mu_);
        listener_ = listener;
    }

    std::vector<DomainInfo> list_domains() override {
        return with_conn([&](virConnectPtr c) {
            HandleArray<virDomainPtr, DomainFree> doms;
            const int n = virConnectListAllDomains(c, doms.out(), 0);
            if (n < 0) throw Error::from_last("Listing domains failed");
            doms.set_count(n);
            std::vector<DomainInfo> out;
            out.reserve(n);
            for (int i = 0; i < n; ++i) {
                try {
                    out.push_back(describe(doms[i]));
                } catch (const Error& e) {
                    if (e.kind() != Error::Kind::domain_not_found) throw;  // undefined meanwhile
                }
            }
            return out;
        });
    }

    std::optional<DomainInfo> find_domain(const std::string& name_or_uuid) override {
        return with_conn([&](virConnectPtr c) -> std::optional<DomainInfo> {
            try {
                DomainPtr dom = lookup(c, name_or_uuid);
                return describe(dom.get());
            } catch (const Error& e) {
                if (e.kind() == Error::Kind::domain_not_found) return std::nullopt;
                throw;
            }
        });
    }

    HostFacts host_facts() override {
        return with_conn([&](virConnectPtr c) {
            HostFacts facts;
            unsigned long libvirt = 0;
            if (virConnectGetLibVersion(c, &libvirt) < 0) throw Error::from_last("Reading libvirtd's version failed");
            unsigned long hypervisor = 0;
            if (virConnectGetVersion(c, &hypervisor) < 0)
                throw Error::from_last("Reading the hypervisor's version failed");
            facts.libvirt.number = libvirt;
            facts.hypervisor.number = hypervisor;
            return facts;
        });
    }

    std::optional<int> block_jobs_percent(const std::string& uuid) override {
        return with_conn([&](virConnectPtr c) -> std::optional<int> {
            DomainPtr dom = lookup(c, uuid);
            const std::string doc = take_string(virDomainGetXMLDesc(dom.get(), 0));
            if (doc.empty()) throw Error::from_last("Reading the definition of domain '" + uuid + "' failed");
            unsigned long long cur = 0, end = 0;
            bool any = false;
            for (const auto& d : xml::parse_domain(doc).disks) {
                virDomainBlockJobInfo info{};
                if (virDomainGetBlockJobInfo(dom.get(), d.target.c_str(), &info, 0) != 1) continue;
                any = true;
                cur += info.cur;
                end += info.end;
            }
            virResetLastError();
            if (!any) return std::nullopt;
            return end == 0 ? 0 : static_cast<int>(100 * cur / end);
        });
    }

    DomainConfig domain_config(const std::string& uuid) override {
        return with_conn([&](virConnectPtr c) {
            DomainPtr dom = lookup(c, uuid);
            std::string doc = take_string(virDomainGetXMLDesc(dom.get(), 0));
            if (doc.empty()) throw Error::from_last("Reading the definition of domain '" + uuid + "' failed");
            DomainConfig cfg = xml::parse_domain(doc);
            // A running domain's next start uses its persistent definition: its files count too.
            if (virDomainIsActive(dom.get()) == 1 && virDomainIsPersistent(dom.get()) == 1) {
                const std::string inactive = take_string(virDomainGetXMLDesc(dom.get(), VIR_DOMAIN_XML_INACTIVE));
                if (!inactive.empty()) {
                    DomainConfig next = xml::parse_domain(inactive);
                    cfg.files.insert(cfg.files.end(), next.files.begin(), next.files.end());
                }
            }
            virResetLastError();
            return cfg;
        });
    }

    std::vector<SnapshotInfo> list_snapshots(const std::string& uuid) override {
        return with_conn([&](virConnectPtr c) {
            DomainPtr dom = lookup(c, uuid);
            HandleArray<virDomainSnapshotPtr, SnapshotFree> snaps;
            const int n = virDomainListAllSnapshots(dom.get(), snaps.out(), 0);
            if (n < 0) throw Error::from_last("Listing the snapshots of domain '" + uuid + "' failed");
            snaps.set_count(n);
            std::optional<std::string> current;
            if (virDomainHasCurrentSnapshot(dom.get(), 0) == 1) {
                SnapshotPtr cur(virDomainSnapshotCurrent(dom.get(), 0));
                if (cur) current = virDomainSnapshotGetName(cur.get());
            }
            virResetLastError();
            std::vector<SnapshotInfo> out;
            out.reserve(n);
            for (int i = 0; i < n; ++i) {
                std::string doc = take_string(virDomainSnapshotGetXMLDesc(snaps[i], 0));
                if (doc.empty()) {
                    Error e = Error::from_last("Reading a snapshot of domain '" + uuid + "' failed");
                    if (e.kind() == Error::Kind::snapshot_not_found) continue;  // deleted meanwhile
                    throw e;
                }
                SnapshotInfo info = xml::parse_snapshot(doc);
                info.is_current = current && *current == info.name;
                out.push_back(std::move(info));
            }
            return out;
        });
    }

    void shutdown(const std::string& uuid) override {
        with_conn([&](virConnectPtr c) {
            DomainPtr dom = lookup(c, uuid);
            if (virDomainShutdownFlags(dom.get(), VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN) < 0)
                throw Error::from_last("Shutting down domain '" + uuid + "' failed");
            return 0;
        });
    }
    void destroy(const std::string& uuid) override {
        with_conn([&](virConnectPtr c) {
            DomainPtr dom = lookup(c, uuid);
            if (virDomainDestroy(dom.get()) < 0) throw Error::from_last("Stopping domain '" + uuid + "' failed");
            return 0;
        });
    }
    void start(const std::string& uuid, bool paused) override {
        with_conn([&](virConnectPtr c) {
            DomainPtr dom = lookup(c, uuid);
            if (virDomainCreateWithFlags(dom.get(), paused ? VIR_DOMAIN_START_PAUSED : 0) < 0)
                throw Error::from_last("Starting domain '" + uuid + "' failed");
            return 0;
        });
    }
    void resume(const std::string& uuid) override {
        with_conn([&](virConnectPtr c) {
            DomainPtr dom = lookup(c, uuid);
            if (virDomainResume(dom.get()) < 0) throw Error::from_last("Resuming domain '" + uuid + "' failed");
            return 0;
        });
    }

    void set_snapshot_metadata(const std::string& uuid, const std::string& name, const std::string& description,
                               const std::string& display_name) override {
        with_conn([&](virConnectPtr c) {
            do_set_metadata(c, uuid, name, description, display_name);
            return 0;
        });
    }

    void clear_domain_metadata(const std::string& uuid) override {
        with_conn([&](virConnectPtr c) {
            DomainPtr dom = lookup(c, uuid);
            const bool active = virDomainIsActive(dom.get()) == 1;
            const bool persistent = virDomainIsPersistent(dom.get()) == 1;
            unsigned flags = (active ? VIR_DOMAIN_AFFECT_LIVE : 0) | (persistent ? VIR_DOMAIN_AFFECT_CONFIG : 0);
            if (flags == 0) flags = VIR_DOMAIN_AFFECT_CURRENT;
            if (virDomainSetMetadata(dom.get(), VIR_DOMAIN_METADATA_ELEMENT, nullptr, nullptr, xml::metadata_ns,
                                     flags) < 0)
                throw Error::from_last("Clearing snapvirt's metadata from domain '" + uuid + "' failed");
            return 0;
        });
    }

    bool has_domain_metadata(const std::string& uuid) override {
        return with_conn([&](virConnectPtr c) {
            DomainPtr dom = lookup(c, uuid);
            char* text = virDomainGetMetadata(dom.get(), VIR_DOMAIN_METADATA_ELEMENT, xml::metadata_ns,
                                              VIR_DOMAIN_AFFECT_CURRENT);
            if (text) {
                std::free(text);
                return true;
            }
            const Error e = Error::from_last("Reading snapvirt's metadata of domain '" + uuid + "' failed");
            if (e.code() == VIR_ERR_NO_DOMAIN_METADATA) return false;
            throw e;
        });
    }

    std::unique_ptr<Lane> open_lane() override {
        {
            std::lock_guard lock(mu_);
            if (!conn_) throw Error(Error::Kind::unavailable, "libvirt is not connected: " + status_ + ".");
            // The test driver lives in this process (a second connection to a test:///file URI
            // would even be a separate hypervisor): long calls share the main connection.
            if (opts_.uri.rfind("test:", 0) == 0) return std::make_unique<LibvirtLane>(*this, conn_);
            while (!idle_lanes_.empty()) {
                auto c = std::move(idle_lanes_.back());
                idle_lanes_.pop_back();
                if (c->alive()) return std::make_unique<LibvirtLane>(*this, std::move(c));
            }
        }
        spdlog::debug("Opening a libvirt connection of its own for a long operation.");
        auto conn = std::make_shared<Connection>(open_connection(opts_));
        return std::make_unique<LibvirtLane>(*this, std::move(conn));
    }

    void return_lane(std::shared_ptr<Connection> conn) {
        std::lock_guard lock(mu_);
        if (conn == conn_) return;  // a lane sharing the main connection
        if (!stopping_ && conn_ && conn->alive() && idle_lanes_.size() < 8) idle_lanes_.push_back(std::move(conn));
    }

private:
    std::shared_ptr<Connection> current() const {
        std::lock_guard lock(mu_);
        if (!conn_) throw Error(Error::Kind::unavailable, "libvirt is not connected: " + status_ + ".");
        return conn_;
    }

    template <class F>
    auto with_conn(F&& f) -> std::invoke_result_t<F&, virConnectPtr> {
        auto c = current();
        try {
            return f(c->get());
        } catch (const Error& e) {
            if (e.kind() == Error::Kind::unavailable || !c->alive()) lost(c, e.what());
            rethrow_checked(e, *c);
        }
    }

    // Called when a call or the close callback finds the main connection dead.
    void lost(const std::shared_ptr<Connection>& dead, const std::string& reason) {
        {
            std::lock_guard lock(mu_);
            if (conn_ != dead || !conn_) return;
            retired_.push_back(std::move(conn_));
            idle_lanes_.clear();
            status_ = "lost the connection to libvirt at '" + opts_.uri + "': " + reason;
        }
        spdlog::warn("Lost the connection to libvirt at '{}': {}", opts_.uri, reason);
        cv_.notify_all();
        std::lock_guard lock(listener_mu_);
        if (listener_) listener_->on_connection_changed(false, reason);
    }

    static void on_close(virConnectPtr, int reason, void* opaque) {
        auto* self = static_cast<LibvirtHypervisor*>(opaque);
        const char* why = reason == VIR_CONNECT_CLOSE_REASON_EOF         ? "libvirtd closed the connection"
                          : reason == VIR_CONNECT_CLOSE_REASON_KEEPALIVE ? "libvirtd stopped answering keepalives"
                          : reason == VIR_CONNECT_CLOSE_REASON_ERROR     ? "a socket error"
                                                                         : "the client closed it";
        std::shared_ptr<Connection> c;
        {
            std::lock_guard lock(self->mu_);
            c = self->conn_;
        }
        // Only a close of the main connection matters here; lanes notice on their next call.
        if (c) self->lost(c, why);
    }

    static int on_lifecycle(virConnectPtr, virDomainPtr dom, int event, int detail, void* opaque) {
        auto* self = static_cast<LibvirtHypervisor*>(opaque);
        LifecycleEvent ev;
        ev.at = std::chrono::steady_clock::now();
        char uuid[VIR_UUID_STRING_BUFLEN];
        if (virDomainGetUUIDString(dom, uuid) == 0) ev.uuid = uuid;
        if (const char* n = virDomainGetName(dom)) ev.name = n;
        ev.event = event;
        ev.detail = detail;
        std::lock_guard lock(self->listener_mu_);
        if (self->listener_) self->listener_->on_lifecycle(ev);
        return 0;
    }

    // Owns (re)connection: opens the main connection, registers events and the close
    // callback, and after a loss tries again with exponential backoff.
    void connect_loop() {
        auto backoff = opts_.backoff_min;
        std::unique_lock lock(mu_);
        while (!stopping_) {
            if (conn_) {
                cv_.wait(lock, [&] { return stopping_ || !conn_; });
                backoff = opts_.backoff_min;
                continue;
            }
            // Dead connections are closed here, never inside one of their own callbacks.
            auto retired = std::move(retired_);
            retired_.clear();
            lock.unlock();
            retired.clear();
            std::shared_ptr<Connection> fresh;
            std::string error;
            try {
                fresh = std::make_shared<Connection>(open_connection(opts_));
                if (virConnectRegisterCloseCallback(fresh->get(), &LibvirtHypervisor::on_close, this, nullptr) == 0)
                    fresh->close_cb_ = &LibvirtHypervisor::on_close;
                else
                    virResetLastError();
                fresh->lifecycle_cb_ = virConnectDomainEventRegisterAny(
                    fresh->get(), nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                    VIR_DOMAIN_EVENT_CALLBACK(&LibvirtHypervisor::on_lifecycle), this, nullptr);
                if (fresh->lifecycle_cb_ < 0) throw Error::from_last("Registering for domain events failed");
            } catch (const Error& e) {
                error = e.what();
                fresh.reset();
            }
            lock.lock();
            if (stopping_) break;
            if (fresh) {
                conn_ = std::move(fresh);
                status_ = "connected to libvirt at '" + opts_.uri + "'";
                lock.unlock();
                spdlog::info("Connected to libvirt at '{}'.", opts_.uri);
                {
                    std::lock_guard listener_lock(listener_mu_);
                    if (listener_) listener_->on_connection_changed(true, "");
                }
                lock.lock();
                continue;
            }
            if (status_ != error) spdlog::warn("{}; retrying with backoff.", error);
            spdlog::debug("Next connection attempt to '{}' in {} ms.", opts_.uri, backoff.count());
            status_ = error;
            cv_.wait_for(lock, backoff, [&] { return stopping_; });
            backoff = std::min(backoff * 2, opts_.backoff_max);
        }
    }

    friend class LibvirtLane;

    const LibvirtOptions opts_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::shared_ptr<Connection> conn_;
    std::vector<std::shared_ptr<Connection>> retired_;
    std::vector<std::shared_ptr<Connection>> idle_lanes_;
    std::string status_;
    std::mutex listener_mu_;   // held while a callback runs
    EventListener* listener_ = nullptr;
    bool stopping_ = false;
    std::thread connector_;
};

LibvirtLane::~LibvirtLane() {
    if (!broken_) owner_.return_lane(std::move(conn_));
}

}  // namespace

std::unique_ptr<Hypervisor> make_libvirt_hypervisor(const LibvirtOptions& options) {
    return std::make_unique<LibvirtHypervisor>(options);
}

}  // namespace snapvirt::hv
