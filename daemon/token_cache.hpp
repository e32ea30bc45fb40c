#pragma once
// The bearer tokens the API accepts, cached from the catalog and reloaded when the database
// changed (`snapvirtd token ...` runs in another process).
//
// Thread-safety: authenticate() may be called from any thread; one mutex guards the cache.

#include "api/backend.hpp"
#include "daemon/catalog.hpp"

#include <chrono>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace snapvirt::daemon {

class TokenCache {
public:
    explicit TokenCache(Catalog& catalog) : catalog_(catalog) {}
    // The scope the token grants, or Scope::none.
    api::Scope authenticate(const std::string& token);

private:
    void refresh(std::chrono::milliseconds max_age);

    Catalog& catalog_;
    std::mutex mu_;
    std::int64_t version_ = -1;
    std::chrono::steady_clock::time_point checked_{};
    std::vector<std::pair<std::string, std::string>> hashes_;  // (hash, scope)
};

}  // namespace snapvirt::daemon
