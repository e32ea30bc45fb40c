#pragma once
// Plain values that cross the hypervisor seam. No libvirt types leak out of hypervisor/.

#include "config/vocabulary.hpp"

#include <chrono>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace snapvirt::hv {

enum class DomainState { running, paused, shutoff, crashed, pmsuspended, other };
const char* to_string(DomainState s);

struct DomainInfo {
    std::string uuid;
    std::string name;
    DomainState state = DomainState::other;
    int state_reason = 0;           // libvirt's reason code for `state`
    bool paused_for_save = false;   // paused with reason "save" or "snapshot": left by an interrupted save
    std::uint64_t memory_mib = 0;
    unsigned vcpus = 0;
    bool persistent = true;
    std::optional<std::string> current_snapshot;
};

// What a domain's definition says about internal snapshots.
struct DiskInfo {
    std::string target;     // "vda"
    std::string device;     // disk, cdrom, floppy, lun
    std::string type;       // file, block, network, volume
    std::string format;     // the driver's type: qcow2, raw, ...
    std::string source;
    bool readonly = false;
    bool excluded = false;  // snapshot='no'
};

struct DomainConfig {
    std::vector<DiskInfo> disks;
    bool pflash_firmware = false;
};

// A libvirt snapshot, as its XML describes it.
struct SnapshotInfo {
    std::string name;
    std::string description;
    std::optional<std::string> display_name;   // snapvirt's metadata in the snapshot's domain XML
    std::optional<std::string> parent;
    std::int64_t creation_time = 0;             // Unix seconds
    std::string state;                          // libvirt's: running, paused, shutoff, disk-snapshot, ...
    bool has_memory = false;                    // <memory snapshot='internal'/>
    bool all_disks_internal = true;             // no external disk snapshots
    SnapshotMode mode = SnapshotMode::other;    // what the above make of it, decided once
    bool is_current = false;
};

enum class RevertStart { automatic, running, paused };

// A version as libvirt encodes it: major * 1,000,000 + minor * 1,000 + micro.
struct Version {
    std::uint64_t number = 0;
    std::string to_string() const;  // "9.0.0"
    friend constexpr auto operator<=>(const Version&, const Version&) = default;
};

// The first libvirt that reverts external snapshots (virDomainRevertToSnapshot on one).
inline constexpr Version libvirt_external_revert{9'007'000};

// What the connected host says about itself (read when the connection comes up).
struct HostFacts {
    std::string hostname;  // empty: snapvirtd runs on libvirt's host and names it itself
    Version libvirt;       // the connected libvirtd's own version, not the client library's
    Version hypervisor;    // the hypervisor's (QEMU's) version
    bool can_revert_external() const { return libvirt >= libvirt_external_revert; }
};

struct LifecycleEvent {
    std::string uuid;
    std::string name;
    int event = 0;     // virDomainEventType
    int detail = 0;
    std::chrono::steady_clock::time_point at;
    bool suspended() const;
    bool resumed() const;
    bool defined_or_undefined() const;
};

}  // namespace snapvirt::hv
