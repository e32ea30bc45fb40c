#pragma once
// Plain values that cross the hypervisor seam. No libvirt types leak out of hypervisor/.

#include "config/vocabulary.hpp"

#include <chrono>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
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
    // The type of the image its backing chain ends in (the live definition shows the chain):
    // "block" for a qcow2 overlay over an LVM volume; its own type when it has no backing.
    std::string base_type;
    bool readonly = false;
    bool excluded = false;  // snapshot='no'
    // A writable disk that a snapshot covers (not a CD, not read-only, not snapshot='no').
    bool snapshotted() const { return device == "disk" && !readonly && !excluded; }
};

struct DomainConfig {
    std::vector<DiskInfo> disks;
    bool pflash_firmware = false;
    std::string nvram;      // the NVRAM file of a UEFI guest, if it has one
    // Every file the definition names for its disks, their backing chains and the NVRAM.
    std::vector<std::string> files;
};

// A libvirt snapshot, as its XML describes it.
struct SnapshotInfo {
    std::string name;
    std::string description;
    std::optional<std::string> display_name;   // snapvirt's metadata in the snapshot's domain XML
    std::optional<std::string> parent;
    std::int64_t creation_time = 0;             // Unix seconds
    std::string state;                          // libvirt's: running, paused, shutoff, disk-snapshot, ...
    bool has_memory = false;                    // <memory snapshot='internal'/> or 'external'
    bool all_disks_internal = true;             // no external disk snapshots
    SnapshotMode mode = SnapshotMode::other;    // what the above make of it, decided once
    SnapshotMethod method = SnapshotMethod::internal;  // external: a memory file or any overlay
    std::string memory_file;                    // external memory state
    std::vector<std::string> overlays;          // external disks' new files
    std::vector<std::string> files;             // every file it names (the above, its domain's disks)
    // What reverting to it reads: the memory state and the images (with their backing chains)
    // its own domain definition names for its disks, CD-ROM and floppy media aside. Not its
    // overlays: they hold what came after it, and libvirt 11.3 deletes or replaces them itself.
    std::vector<std::string> state_files;
    bool is_current = false;
};

// What to take: the snapshot's name and text, its mode and method.
struct SnapshotSpec {
    std::string name;
    std::string description;
    std::string display_name;   // stored in snapvirt's metadata when it differs from the name
    SnapshotMode mode = SnapshotMode::stopped;  // memory: a running domain's full-system snapshot
    SnapshotMethod method = SnapshotMethod::internal;
    // External only: where libvirt writes the memory state (memory mode) and each writable
    // disk's overlay (by target, e.g. "vda"). Disks not named are left out of the snapshot.
    std::string memory_file;
    std::vector<std::pair<std::string, std::string>> overlays;
    std::vector<std::string> left_out;  // targets written as snapshot='no'
    bool keep_metadata = true;          // false: libvirt keeps no snapshot (NO_METADATA)
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
