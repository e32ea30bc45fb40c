#pragma once
// Answers of cacheable reads, kept per request target and reused while the backend's
// generation (which changes with every change to what they were computed from) is the same.
// A busy host's list pages are read far more often than snapshots change.
//
// Thread-safety: get() and put() may be called from any thread.

#include "api/http.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>

namespace snapvirt::api {

class ResponseCache {
public:
    // At most `max_bytes` of bodies are kept; a body larger than a quarter of that is not.
    explicit ResponseCache(std::size_t max_bytes = 2 << 20) : max_bytes_(max_bytes) {}

    std::optional<Response> get(const std::string& key, std::uint64_t generation) const {
        std::shared_lock lock(mu_);
        auto it = entries_.find(key);
        if (it == entries_.end() || it->second.generation != generation) return std::nullopt;
        Response r;
        r.status = 200;
        r.content_type = it->second.content_type;
        r.shared_body = it->second.body;
        return r;
    }

    // Keeps the answer's body; `r` answers from the cached copy afterwards (no second copy).
    void put(const std::string& key, std::uint64_t generation, Response& r) {
        if (r.shared_body || r.body.size() > max_bytes_ / 4) return;
        auto body = std::make_shared<const std::string>(std::move(r.body));
        r.body.clear();
        r.shared_body = body;
        std::unique_lock lock(mu_);
        if (auto old = entries_.find(key); old != entries_.end()) {
            bytes_ -= old->second.body->size();
            entries_.erase(old);
        }
        if (bytes_ + body->size() > max_bytes_) {
            // Drop what an older generation computed; if that is not enough, start over.
            for (auto it = entries_.begin(); it != entries_.end();) {
                if (it->second.generation == generation) {
                    ++it;
                    continue;
                }
                bytes_ -= it->second.body->size();
                it = entries_.erase(it);
            }
            if (bytes_ + body->size() > max_bytes_) {
                entries_.clear();
                bytes_ = 0;
            }
        }
        bytes_ += body->size();
        entries_[key] = Entry{generation, r.content_type, std::move(body)};
    }

private:
    struct Entry {
        std::uint64_t generation;
        std::string content_type;
        std::shared_ptr<const std::string> body;
    };
    const std::size_t max_bytes_;
    mutable std::shared_mutex mu_;
    std::unordered_map<std::string, Entry> entries_;
    std::size_t bytes_ = 0;
};

}  // namespace snapvirt::api
