#pragma once
// The Idempotency-Key store: a POST that carries a key and repeats an earlier one (same key,
// same request fingerprint) within the TTL gets the first answer again; the same key with
// another request is a conflict; two requests with one key at once never both run. The
// answers themselves live in the backend (the catalog), so they survive a restart.
//
// Thread-safety: begin() and a Ticket's methods may be called from any thread.

#include "api/backend.hpp"
#include "api/http.hpp"
#include "config/config.hpp"

#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

namespace snapvirt::api {

class IdempotencyStore {
public:
    // How long a key's answer is remembered (the backend forgets older ones).
    static constexpr std::chrono::hours ttl = config::idempotency_ttl;

    explicit IdempotencyStore(Backend& backend) : backend_(backend) {}

    // One request holding its key: the key is released when the ticket goes away.
    class Ticket {
    public:
        Ticket(IdempotencyStore& store, std::string key, std::string fingerprint);
        ~Ticket();
        Ticket(const Ticket&) = delete;
        Ticket& operator=(const Ticket&) = delete;

        // The first answer, when this request repeats an earlier one.
        std::optional<Response> replay() const;
        // Keeps a successful (2xx) answer for the repeats to come.
        void remember(const Response& res) const;

    private:
        IdempotencyStore& store_;
        std::string key_;
        std::string fingerprint_;
    };

    // For a POST with an Idempotency-Key: claims the key and returns its ticket; nullptr for
    // requests without one. Throws ApiError: invalid_request for a malformed key,
    // idempotency_conflict while another request holds it or when it was used for another request.
    std::unique_ptr<Ticket> begin(const Request& req);

    // SHA-256 of the parts of a POST that decide whether a retry is "the same request".
    static std::string fingerprint(const Request& req);

private:
    bool claim(const std::string& key);
    void release(const std::string& key);

    Backend& backend_;
    std::mutex mu_;
    std::set<std::string> inflight_;
};

}  // namespace snapvirt::api
