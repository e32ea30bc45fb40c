#pragma once
// The seam between the daemon and the hypervisor. Every method blocks (it may wait on
// libvirtd), so callers run them on worker threads, never on an I/O thread. All methods are
// safe to call from several threads at once. Failures throw hv::Error.

#include "hypervisor/error.hpp"
#include "hypervisor/types.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace snapvirt::hv {

// Receives what happens on the hypervisor side. Called on the hypervisor's event thread:
// implementations must return quickly and hand any real work to their own executors.
class EventListener {
public:
    virtual ~EventListener() = default;
    virtual void on_connection_changed(bool connected, const std::string& reason) = 0;
    virtual void on_lifecycle(const LifecycleEvent& event) = 0;
};

struct RevertSpec {
    RevertStart start = RevertStart::automatic;
    bool force = false;
};

// A long operation's own connection, so that it never queues listing and other short calls
// behind it (libvirtd serves at most a few requests per client connection at a time).
class Lane {
public:
    virtual ~Lane() = default;
    virtual void create_snapshot(const std::string& domain_uuid, const SnapshotSpec& spec) = 0;
    virtual void revert_snapshot(const std::string& domain_uuid, const std::string& snapshot,
                                 const RevertSpec& spec) = 0;
    virtual void delete_snapshot(const std::string& domain_uuid, const std::string& snapshot, bool children,
                                 bool metadata_only) = 0;
    // Merges the whole backing chain of a running domain's disk into the image the chain ends
    // in (an active block commit) and then has the domain write there (pivot). Picks up such a
    // commit already under way. `progress` gets the percent done while it runs.
    virtual void commit_disk(const std::string& domain_uuid, const std::string& target,
                             const std::function<void(int)>& progress) = 0;
};

class Hypervisor {
public:
    virtual ~Hypervisor() = default;

    // Connection. `connected()` never blocks; `status()` says why not when it is false.
    virtual bool connected() const = 0;
    virtual std::string status() const = 0;
    virtual void set_listener(EventListener* listener) = 0;

    // Reads.
    virtual std::vector<DomainInfo> list_domains() = 0;
    // By UUID (any case) or name. nullopt if there is no such domain.
    virtual std::optional<DomainInfo> find_domain(const std::string& name_or_uuid) = 0;
    virtual DomainConfig domain_config(const std::string& domain_uuid) = 0;
    virtual std::vector<SnapshotInfo> list_snapshots(const std::string& domain_uuid) = 0;
    // How far the block jobs on a running domain's disks have come (the commits libvirt runs
    // inside the delete of an external snapshot): percent of their work together; nullopt when
    // none runs.
    virtual std::optional<int> block_jobs_percent(const std::string& domain_uuid) = 0;
    // The host's name and the libvirtd's and hypervisor's versions.
    virtual HostFacts host_facts() = 0;

    // Power.
    virtual void shutdown(const std::string& domain_uuid) = 0;
    virtual void destroy(const std::string& domain_uuid) = 0;
    virtual void start(const std::string& domain_uuid, bool paused) = 0;
    virtual void resume(const std::string& domain_uuid) = 0;

    // Snapshot metadata: description and display name, by redefining the snapshot (the current
    // snapshot stays what it was).
    virtual void set_snapshot_metadata(const std::string& domain_uuid, const std::string& snapshot,
                                       const std::string& description, const std::string& display_name) = 0;

    // Removes snapvirt's snapshot metadata from the domain's own definition (live and
    // persistent). A revert copies the snapshot's definition, metadata included, onto the
    // domain; left there it would be inherited by the next snapshot made outside snapvirt.
    virtual void clear_domain_metadata(const std::string& domain_uuid) = 0;
    // Whether the domain's definition as it is now (live if running, else persistent) — the
    // copy a snapshot made now would capture — carries snapvirt's snapshot metadata.
    virtual bool has_domain_metadata(const std::string& domain_uuid) = 0;

    // A connection of its own for one long operation.
    virtual std::unique_ptr<Lane> open_lane() = 0;
};

struct LibvirtOptions {
    std::string uri = "qemu:///system";
    int keepalive_interval_s = 5;
    unsigned keepalive_count = 6;
    std::chrono::milliseconds backoff_min{200};
    std::chrono::milliseconds backoff_max{5000};
};

// The real hypervisor: libvirt's C API. Connects in the background and reconnects with
// backoff when libvirtd goes away; calls made while it is away fail at once with
// Error::Kind::unavailable.
std::unique_ptr<Hypervisor> make_libvirt_hypervisor(const LibvirtOptions& options);

}  // namespace snapvirt::hv
