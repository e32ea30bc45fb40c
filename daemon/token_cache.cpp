#include "daemon/token_cache.hpp"

#include "daemon/tokens.hpp"

namespace snapvirt::daemon {

// Tokens change from another process: the database's data_version says when. Checked every
// half second, and at once (at most every 50 ms) for a token not known yet, so a new token
// works right away and a revoked one stops within 0.5 s.
api::Scope TokenCache::authenticate(const std::string& token) {
    std::lock_guard lock(mu_);
    refresh(std::chrono::milliseconds(500));
    api::Scope scope = match_token(token, hashes_);
    if (scope == api::Scope::none) {
        refresh(std::chrono::milliseconds(50));
        scope = match_token(token, hashes_);
    }
    return scope;
}

void TokenCache::refresh(std::chrono::milliseconds max_age) {
    const auto now = std::chrono::steady_clock::now();
    if (version_ >= 0 && now - checked_ < max_age) return;
    const auto version = catalog_.data_version();
    if (version != version_) {
        hashes_ = catalog_.token_hashes();
        version_ = version;
    }
    checked_ = now;
}

}  // namespace snapvirt::daemon
