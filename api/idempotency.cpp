#include "api/idempotency.hpp"

#include "api/routes.hpp"

namespace snapvirt::api {

IdempotencyStore::Ticket::Ticket(IdempotencyStore& store, std::string key, std::string fingerprint)
    : store_(store), key_(std::move(key)), fingerprint_(std::move(fingerprint)) {}

IdempotencyStore::Ticket::~Ticket() { store_.release(key_); }

std::optional<Response> IdempotencyStore::Ticket::replay() const {
    auto stored = store_.backend_.find_idempotent(key_);
    if (!stored) return std::nullopt;
    if (stored->request_hash != fingerprint_)
        throw ApiError(ErrorCode::idempotency_conflict,
                       "The Idempotency-Key '" + key_ + "' was used for a different request in the last " +
                           std::to_string(ttl.count()) + " hours.");
    Response r = json_response(stored->status, stored->body);
    if (!stored->location.empty()) r.headers.emplace_back("Location", stored->location);
    r.headers.emplace_back("Idempotent-Replayed", "true");
    return r;
}

void IdempotencyStore::Ticket::remember(const Response& res) const {
    if (res.status < 200 || res.status >= 300) return;
    StoredResponse s;
    s.request_hash = fingerprint_;
    s.status = res.status;
    s.body = res.bytes();
    for (const auto& [k, v] : res.headers)
        if (k == "Location") s.location = v;
    store_.backend_.remember_idempotent(key_, s);
}

std::unique_ptr<IdempotencyStore::Ticket> IdempotencyStore::begin(const Request& req) {
    if (req.method != "POST") return nullptr;
    const std::string* key = req.header("idempotency-key");
    if (!key) return nullptr;
    if (!is_sane_token_text(*key, 255))
        throw ApiError(ErrorCode::invalid_request, "The Idempotency-Key header must be 1 to 255 visible ASCII characters.",
                       {{"field", "Idempotency-Key"}});
    if (!claim(*key))
        throw ApiError(ErrorCode::idempotency_conflict,
                       "A request with the Idempotency-Key '" + *key + "' is still being answered; retry when it has finished.");
    try {
        return std::make_unique<Ticket>(*this, *key, fingerprint(req));
    } catch (...) {
        release(*key);
        throw;
    }
}

std::string IdempotencyStore::fingerprint(const Request& req) { return request_fingerprint(req); }

// One request per Idempotency-Key at a time: a concurrent retry must not run it twice.
bool IdempotencyStore::claim(const std::string& key) {
    std::lock_guard lock(mu_);
    return inflight_.insert(key).second;
}

void IdempotencyStore::release(const std::string& key) {
    std::lock_guard lock(mu_);
    inflight_.erase(key);
}

}  // namespace snapvirt::api
