// What the job kinds share for external snapshots: removing the files a snapshot no longer needs.

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

}  // namespace snapvirt::daemon
