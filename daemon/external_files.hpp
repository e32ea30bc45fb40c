#pragma once
// Where an external snapshot's files go, and whether they fit (docs/api.md, "Snapshot methods").
//
// Names come from the snapshot's id and the disk's target, never from user input:
//   snapvirt-{snapshot id}-{target}.qcow2   an overlay per writable disk
//   snapvirt-{snapshot id}.mem              the memory state (memory mode)
//   snapvirt-{snapshot id}.nvram            a copy of a UEFI guest's NVRAM
// An overlay goes next to its file-backed disk when that directory is writable; otherwise
// (block devices, LVM, read-only directories) into {external_dir}/{instance uuid}/. The memory
// state and the NVRAM copy go next to the first disk that has an overlay beside it, else there too.
//
// A disk on a block device (an LVM volume) first gets an anchor, snapvirt-{snapshot id}-{target}-base.qcow2
// in {external_dir}/{instance uuid}/: a qcow2 overlay over the device, made without libvirt
// metadata just before the instance's first external snapshot. libvirt reverts an external
// snapshot by putting a new overlay on the image the snapshot was taken of, named after it, which
// it refuses for a block device ("not a regular file"); with the anchor, that image is a file.
// The anchor stays while the instance has snapshots; the delete of the last one commits it back
// into the device (docs/api.md, "Snapshot methods").

#include "hypervisor/types.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <string>
#include <utility>
#include <vector>

namespace snapvirt::daemon {

struct ExternalPlan {
    std::string memory_file;                                   // empty in stopped mode
    std::vector<std::pair<std::string, std::string>> overlays; // target -> file
    std::string nvram_copy;                                    // empty without NVRAM
    std::vector<std::pair<std::string, std::string>> anchors;  // target -> file, block devices only
    std::vector<std::string> files() const;                    // every file above
    std::vector<std::string> directories() const;              // where they go
};

ExternalPlan plan_external_files(const hv::DomainConfig& config, const std::string& instance_uuid,
                                 const std::string& snapshot_id, SnapshotMode mode, const std::string& external_dir);

// Throws api::ApiError insufficient_storage (details path, needed_bytes, available_bytes) unless
// every file system the plan writes to has room for what goes there: the memory state (the
// guest's RAM), `headroom_bytes` per overlay and anchor, the NVRAM copy. Touches nothing.
void check_free_space(const ExternalPlan& plan, const std::string& nvram, std::uint64_t memory_bytes,
                      std::uint64_t headroom_bytes);

// The directories of the plan, made where missing (mode 0700 for snapvirt's own).
void make_directories(const ExternalPlan& plan);

// Bytes the files take on disk (allocated, not apparent); missing files count nothing.
std::uint64_t allocated_bytes(const std::vector<std::string>& files);

// Writes a file's dirty pages back to disk while another process is still writing it: the
// memory state of an external snapshot while libvirt saves a running guest's RAM. libvirt
// flushes that file while the guest is paused; written back during the live phase, little is
// left to flush then, and the pause is shorter (docs/BENCHMARKS.md). Waits for the file to
// appear; stops (and joins) when destroyed.
class Writeback {
public:
    explicit Writeback(std::string path, std::chrono::milliseconds every = std::chrono::milliseconds(100));
    ~Writeback();
    Writeback(const Writeback&) = delete;
    Writeback& operator=(const Writeback&) = delete;
    unsigned rounds() const { return rounds_.load(); }  // flushes made, for tests and logs

private:
    std::atomic<unsigned> rounds_{0};
    std::jthread thread_;
};

}  // namespace snapvirt::daemon
