#pragma once
// Which method a new snapshot takes: the rules of docs/api.md, "Snapshot methods", in one place.
//
//  - One method per instance: while an instance has snapshots, a new one takes their method
//    (libvirt cannot delete an external snapshot whose parent is internal, and an internal
//    snapshot taken into an external overlay would be lost when that overlay is merged).
//  - auto: that method; with no snapshots, internal where libvirt can take it (every writable
//    disk qcow2, no UEFI pflash firmware), else external.
//  - External needs a libvirt that can revert it (9.7): a snapshot that cannot be reverted is
//    never taken.
//
// Pure: no libvirt call, no catalog access. Throws api::ApiError with the contract's codes.

#include "api/errors.hpp"
#include "config/model.hpp"
#include "hypervisor/types.hpp"

#include <optional>
#include <string>
#include <vector>

namespace snapvirt::daemon {

struct MethodFacts {
    std::string instance;                    // its name, for messages
    MethodChoice requested = MethodChoice::automatic;
    hv::DomainConfig config;
    hv::Version libvirt;                     // the connected libvirtd's version
    std::optional<SnapshotMethod> existing;  // the method of the instance's snapshots; none: nullopt
};

// Why internal snapshots cannot cover this instance (unsupported_firmware or unsupported_disk),
// or nullopt when they can.
std::optional<api::ApiError> internal_obstacle(const std::string& instance, const hv::DomainConfig& config);

SnapshotMethod choose_method(const MethodFacts& facts);

// libvirt deletes an external snapshot on its own only when it is a leaf, or has exactly one
// child and lies on the current branch (the current snapshot descends from it, and is not it).
// Otherwise the snapshot goes only with its subtree (children=true): ApiError
// snapshot_has_children, details {children, current}. `all` is the instance's snapshots.
std::optional<api::ApiError> external_delete_obstacle(const Snapshot& snap, const std::vector<Snapshot>& all);

}  // namespace snapvirt::daemon
