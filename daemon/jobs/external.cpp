// What the job kinds share for external snapshots: removing the files a snapshot no longer needs,
// and taking a block device's anchor away when the last snapshot has gone.

#include "daemon/jobs/job.hpp"

#include "config/text.hpp"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <set>

namespace snapvirt::daemon {

std::vector<std::string> remove_unused_files(JobServices& s, const std::string& uuid,
                                             const std::vector<std::string>& files) {
    std::vector<std::string> kept;
    if (files.empty()) return kept;
    std::set<std::string> named;
    if (s.hv.find_domain(uuid)) {
        for (auto& f : s.hv.domain_config(uuid).files) named.insert(std::move(f));
        for (const auto& snap : s.hv.list_snapshots(uuid)) named.insert(snap.files.begin(), snap.files.end());
    }
    for (const auto& f : files) {
        std::error_code ec;
        if (!std::filesystem::exists(f, ec)) continue;
        if (named.count(f)) {
            kept.push_back(f);
            continue;
        }
        if (std::filesystem::remove(f, ec))
            spdlog::info("Removed {}, which no snapshot and no disk chain of instance {} uses.", in_quotes(f), uuid);
        else if (ec)
            spdlog::warn("Could not remove {}: {}", in_quotes(f), ec.message());
    }
    return kept;
}

bool release_anchors(JobServices& s, hv::Lane& lane, const std::string& uuid,
                     const std::function<void(int)>& progress) {
    const auto dom = s.hv.find_domain(uuid);
    if (!dom || !s.hv.list_snapshots(uuid).empty()) return false;
    const hv::DomainConfig cfg = s.hv.domain_config(uuid);
    const std::string own = (std::filesystem::path(s.options.external_dir) / uuid).string() + "/";
    std::vector<std::string> targets;
    for (const auto& d : cfg.disks)
        if (d.snapshotted() && d.type == "file" && d.base_type == "block" && d.source.rfind(own, 0) == 0)
            targets.push_back(d.target);
    if (targets.empty()) return false;
    if (dom->state != hv::DomainState::running && dom->state != hv::DomainState::paused) {
        spdlog::info("Instance {} has no snapshots left; its disks stay on their anchors in {} while it is {} "
                     "(a commit back into the block device needs it running).",
                     in_quotes(dom->name), in_quotes(own), hv::to_string(dom->state));
        return false;
    }
    for (const auto& target : targets) {
        spdlog::info("Committing disk {} of instance {} back into its block device.", in_quotes(target),
                     in_quotes(dom->name));
        lane.commit_disk(uuid, target, progress);
    }
    std::vector<std::string> mine;
    for (const auto& f : cfg.files)
        if (f.rfind(own, 0) == 0) mine.push_back(f);
    remove_unused_files(s, uuid, mine);
    return true;
}

}  // namespace snapvirt::daemon
