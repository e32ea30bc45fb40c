#include "daemon/external_files.hpp"

#include "api/errors.hpp"
#include "config/text.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <filesystem>
#include <map>
#include <system_error>

namespace snapvirt::daemon {

namespace fs = std::filesystem;

namespace {

bool writable_directory(const fs::path& dir) {
    std::error_code ec;
    return !dir.empty() && fs::is_directory(dir, ec) && ::access(dir.c_str(), W_OK) == 0;
}

// The nearest existing directory at or above `p`: what a file to be made there lives on.
fs::path existing_ancestor(fs::path p) {
    std::error_code ec;
    while (!p.empty() && !fs::exists(p, ec) && p != p.root_path()) p = p.parent_path();
    return p.empty() ? fs::path("/") : p;
}

}  // namespace

std::vector<std::string> ExternalPlan::files() const {
    std::vector<std::string> out;
    if (!memory_file.empty()) out.push_back(memory_file);
    for (const auto& [target, file] : overlays) out.push_back(file);
    if (!nvram_copy.empty()) out.push_back(nvram_copy);
    for (const auto& [target, file] : anchors) out.push_back(file);
    return out;
}

std::vector<std::string> ExternalPlan::directories() const {
    std::vector<std::string> out;
    for (const auto& f : files()) {
        const std::string dir = fs::path(f).parent_path().string();
        if (std::find(out.begin(), out.end(), dir) == out.end()) out.push_back(dir);
    }
    return out;
}

ExternalPlan plan_external_files(const hv::DomainConfig& config, const std::string& instance_uuid,
                                 const std::string& snapshot_id, SnapshotMode mode, const std::string& external_dir) {
    const fs::path own = fs::path(external_dir) / instance_uuid;
    const std::string stem = "snapvirt-" + snapshot_id;
    ExternalPlan plan;
    fs::path beside;  // the first disk directory snapvirt may write into
    for (const auto& d : config.disks) {
        if (!d.snapshotted()) continue;
        fs::path dir = own;
        if (d.type == "file" && !d.source.empty() && writable_directory(fs::path(d.source).parent_path())) {
            dir = fs::path(d.source).parent_path();
            if (beside.empty()) beside = dir;
        }
        plan.overlays.emplace_back(d.target, (dir / (stem + "-" + d.target + ".qcow2")).string());
        if (d.type == "block") plan.anchors.emplace_back(d.target, (own / (stem + "-" + d.target + "-base.qcow2")).string());
    }
    const fs::path state_dir = beside.empty() ? own : beside;
    if (mode == SnapshotMode::memory) plan.memory_file = (state_dir / (stem + ".mem")).string();
    if (!config.nvram.empty()) plan.nvram_copy = (state_dir / (stem + ".nvram")).string();
    return plan;
}

void check_free_space(const ExternalPlan& plan, const std::string& nvram, std::uint64_t memory_bytes,
                      std::uint64_t headroom_bytes) {
    struct Need {
        std::string path;
        std::uint64_t bytes = 0;
        std::uint64_t available = 0;
    };
    std::map<dev_t, Need> by_fs;  // what goes onto each file system
    auto add = [&](const std::string& file, std::uint64_t bytes) {
        const fs::path at = existing_ancestor(fs::path(file).parent_path());
        struct stat st {};
        struct statvfs vfs {};
        if (::stat(at.c_str(), &st) != 0 || ::statvfs(at.c_str(), &vfs) != 0) return;  // libvirt will tell
        Need& n = by_fs[st.st_dev];
        if (n.path.empty()) n.path = at.string();
        n.bytes += bytes;
        n.available = static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    };
    if (!plan.memory_file.empty()) add(plan.memory_file, memory_bytes);
    for (const auto& [target, file] : plan.overlays) add(file, headroom_bytes);
    for (const auto& [target, file] : plan.anchors) add(file, headroom_bytes);
    if (!plan.nvram_copy.empty()) {
        std::error_code ec;
        const auto size = fs::file_size(nvram, ec);
        add(plan.nvram_copy, ec ? 0 : size);
    }
    for (const auto& [dev, n] : by_fs) {
        if (n.bytes <= n.available) continue;
        throw api::ApiError(api::ErrorCode::insufficient_storage,
                            "The snapshot's files need " + std::to_string(n.bytes / (1024 * 1024)) + " MiB in " +
                                in_quotes(n.path) + ", which has " + std::to_string(n.available / (1024 * 1024)) +
                                " MiB free. Nothing was changed; free space there, or set snapshots.external_dir.",
                            {{"path", n.path}, {"needed_bytes", n.bytes}, {"available_bytes", n.available}});
    }
}

void make_directories(const ExternalPlan& plan) {
    for (const auto& dir : plan.directories()) {
        std::error_code ec;
        if (fs::is_directory(dir, ec)) continue;
        fs::create_directories(dir);
        fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
    }
}

std::uint64_t allocated_bytes(const std::vector<std::string>& files) {
    std::uint64_t total = 0;
    for (const auto& f : files) {
        struct stat st {};
        if (::stat(f.c_str(), &st) == 0) total += static_cast<std::uint64_t>(st.st_blocks) * 512;
    }
    return total;
}

Writeback::Writeback(std::string path, std::chrono::milliseconds every)
    : thread_([this, path = std::move(path), every](std::stop_token stop) {
          int fd = -1;
          std::mutex mu;
          std::condition_variable_any cv;  // wakes at once when a stop is requested
          std::unique_lock lock(mu);
          while (!stop.stop_requested()) {
              if (fd < 0) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
              if (fd >= 0 && ::fdatasync(fd) == 0) ++rounds_;
              cv.wait_for(lock, stop, every, [] { return false; });
          }
          if (fd >= 0) ::close(fd);
      }) {}

Writeback::~Writeback() {
    thread_.request_stop();
    thread_.join();
}

}  // namespace snapvirt::daemon
