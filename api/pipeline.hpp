#pragma once
// The request pipeline: what happens to a parsed request between the session's read and its
// write — routing, authorization (the bearer token is parsed in one place), idempotency, the
// answer cache, the handler on its executor, and job long-polls. It never sees a socket.
//
// Thread-safety: handle() runs for many connections at once, each on its own strand; the
// answer cache and the idempotency store are thread-safe, everything else is read-only.

#include "api/backend.hpp"
#include "api/event_hub.hpp"
#include "api/http.hpp"
#include "api/idempotency.hpp"
#include "api/response_cache.hpp"
#include "api/router.hpp"
#include "api/transport.hpp"

#include <atomic>
#include <optional>
#include <string>
#include <string_view>

namespace snapvirt::api {

// The token of an "Authorization: Bearer <token>" header; nullopt when the header is missing
// or is not of that form.
std::optional<std::string_view> bearer_token(const Request& req);

class Pipeline {
public:
    Pipeline(const Router& router, Backend& backend, EventHub& hub, net::any_io_executor blocking,
             const std::atomic<bool>& stopping);

    // Answers one request; never throws (errors become the contract's error answers).
    // `route_name` is set to the matched route's pattern (for the metrics).
    awaitable<Response> handle(Request& req, const ConnInfo& info, std::string& route_name);

    // Whether the request's token still grants access (a revoked token ends its event stream).
    bool still_authorized(const Request& req, const ConnInfo& info);

private:
    void authorize(Request& req, const Route& route, const ConnInfo& info);
    awaitable<Response> answer(const Route& route, Request& req);
    awaitable<Response> invoke(const Route& route, Request& req);
    awaitable<Response> long_poll(const Route& route, Request& req, Response res);

    const Router& router_;
    Backend& backend_;
    EventHub& hub_;
    net::any_io_executor blocking_;
    const std::atomic<bool>& stopping_;
    ResponseCache cache_;
    IdempotencyStore idempotency_;
};

}  // namespace snapvirt::api
