#include "daemon/snapshot_method.hpp"

#include "config/text.hpp"

namespace snapvirt::daemon {

using api::ApiError;
using api::ErrorCode;

namespace {

// The first disk a snapshot covers for which `pred` holds, or null.
template <class Pred>
const hv::DiskInfo* first_snapshotted_disk(const hv::DomainConfig& config, Pred pred) {
    for (const auto& d : config.disks)
        if (d.snapshotted() && pred(d)) return &d;
    return nullptr;
}

// The first writable disk internal snapshots cannot cover, or null.
const hv::DiskInfo* non_qcow2_disk(const hv::DomainConfig& config) {
    return first_snapshotted_disk(config, [](const hv::DiskInfo& d) { return d.format != "qcow2"; });
}

// The first writable disk that is neither an image file nor a block device (a network or pool
// volume): libvirt 11.3 refuses to revert an external snapshot whose disk state is not a regular
// file ("source disk ... is not a regular file, reverting to snapshot is not supported"). A block
// device gets a file in front of it first (an anchor, external_files.hpp); these cannot.
const hv::DiskInfo* non_file_disk(const hv::DomainConfig& config) {
    return first_snapshotted_disk(config, [](const hv::DiskInfo& d) { return d.type != "file" && d.type != "block"; });
}

std::string format_of(const hv::DiskInfo& d) { return d.format.empty() ? "of unknown format" : d.format; }

// " (its disk 'vda' is raw)": why internal will not do, for messages; empty if it would.
std::string why_external(const hv::DomainConfig& config) {
    if (config.pflash_firmware) return " (it boots UEFI firmware from pflash)";
    if (const hv::DiskInfo* d = non_qcow2_disk(config)) return " (its disk " + in_quotes(d->target) + " is " + format_of(*d) + ")";
    return "";
}

SnapshotMethod method_of(MethodChoice c) {
    return c == MethodChoice::internal ? SnapshotMethod::internal : SnapshotMethod::external;
}


}  // namespace

std::optional<ApiError> internal_obstacle(const std::string& instance, const hv::DomainConfig& config) {
    if (config.pflash_firmware)
        return ApiError(ErrorCode::unsupported_firmware,
                        "Instance " + in_quotes(instance) +
                            " boots UEFI firmware from pflash, whose NVRAM internal snapshots cannot include; "
                            "use the method \"" + to_string(MethodChoice::external) + "\" (or \"" +
                            to_string(MethodChoice::automatic) + "\").");
    if (const hv::DiskInfo* d = non_qcow2_disk(config))
        return ApiError(ErrorCode::unsupported_disk,
                        "Disk " + in_quotes(d->target) + " of instance " + in_quotes(instance) + " is " + format_of(*d) +
                            "; internal snapshots need every disk in qcow2 format. Use the method \"" +
                            to_string(MethodChoice::external) + "\" (or \"" + to_string(MethodChoice::automatic) +
                            "\").",
                        {{"disk", d->target}, {"format", d->format}, {"source", d->source}});
    return std::nullopt;
}

SnapshotMethod choose_method(const MethodFacts& f) {
    const std::optional<ApiError> obstacle = internal_obstacle(f.instance, f.config);
    SnapshotMethod method;
    if (f.requested != MethodChoice::automatic) {
        method = method_of(f.requested);
        if (f.existing && *f.existing != method)
            throw ApiError(ErrorCode::method_conflict,
                           "Instance " + in_quotes(f.instance) + " has " + to_string(*f.existing) +
                               " snapshots; the snapshots of one instance share one method. Take this one " +
                               to_string(*f.existing) + " (or \"" + to_string(MethodChoice::automatic) +
                               "\"), or delete the instance's snapshots first.",
                           {{"method", to_string(*f.existing)}, {"requested", to_string(method)}});
    } else if (f.existing) {
        method = *f.existing;
    } else {
        method = obstacle ? SnapshotMethod::external : SnapshotMethod::internal;
    }
    if (method == SnapshotMethod::internal && obstacle) throw *obstacle;
    if (method == SnapshotMethod::external && f.libvirt >= hv::libvirt_external_revert)
        if (const hv::DiskInfo* d = non_file_disk(f.config))
            throw ApiError(ErrorCode::unsupported_disk,
                           "Disk " + in_quotes(d->target) + " of instance " + in_quotes(f.instance) + " is a " + d->type +
                               " device (" + d->source +
                               "); libvirt " + f.libvirt.to_string() +
                               " cannot revert an external snapshot whose disk is not a regular file, and snapvirt "
                               "takes no snapshot that cannot be reverted. Disks in image files and on block devices "
                               "work.",
                           {{"disk", d->target}, {"format", d->format}, {"source", d->source}});
    if (method == SnapshotMethod::external && f.libvirt < hv::libvirt_external_revert)
        throw ApiError(ErrorCode::unsupported_libvirt,
                       "Instance " + in_quotes(f.instance) + " needs an external snapshot" + why_external(f.config) +
                           ", which libvirt " + f.libvirt.to_string() + " can take but not revert. " +
                           "External snapshots need libvirt " + hv::libvirt_external_revert.to_string() +
                           " or newer: install libvirt from bookworm-backports, or run Debian 13.",
                       {{"required", hv::libvirt_external_revert.to_string()}, {"running", f.libvirt.to_string()}});
    return method;
}

std::optional<ApiError> external_delete_obstacle(const Snapshot& snap, const std::vector<Snapshot>& all) {
    if (snap.method != SnapshotMethod::external) return std::nullopt;
    std::size_t children = 0;
    const Snapshot* current = nullptr;
    for (const auto& s : all) {
        if (s.parent_id && *s.parent_id == snap.id) ++children;
        if (s.is_current) current = &s;
    }
    if (children == 0) return std::nullopt;
    auto by_id = [&](const std::string& id) -> const Snapshot* {
        for (const auto& s : all)
            if (s.id == id) return &s;
        return nullptr;
    };
    bool on_current_branch = false;
    if (current && current->id != snap.id) {
        std::size_t hops = 0;  // a parent loop in a corrupt catalog must not spin forever
        for (const Snapshot* s = current; s && s->parent_id && hops < all.size(); s = by_id(*s->parent_id), ++hops)
            if (*s->parent_id == snap.id) on_current_branch = true;
    }
    if (children == 1 && on_current_branch) return std::nullopt;
    std::string why;
    if (children > 1)
        why = "it has " + std::to_string(children) + " children";
    else if (snap.is_current)
        why = "it is the current snapshot and has a child";
    else
        why = "it has a child and is not on the instance's current branch";
    return ApiError(ErrorCode::snapshot_has_children,
                    "External snapshot " + in_quotes(snap.display_name) + " cannot be deleted alone: " + why +
                        ", and libvirt merges an external snapshot away only when it is a leaf or has one child "
                        "on the current branch. Delete it with its children (children=true), or its children first.",
                    {{"children", children}, {"current", snap.is_current}});
}

}  // namespace snapvirt::daemon
