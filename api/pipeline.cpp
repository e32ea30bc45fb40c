#include "api/pipeline.hpp"

#include "api/connection_budget.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <spdlog/spdlog.h>

namespace snapvirt::api {

std::optional<std::string_view> bearer_token(const Request& req) {
    const std::string* auth = req.header("authorization");
    if (!auth || auth->size() < 7 || !beast::iequals(std::string_view(*auth).substr(0, 7), "bearer ")) return std::nullopt;
    std::string_view token = std::string_view(*auth).substr(7);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    return token;
}

Pipeline::Pipeline(const Router& router, Backend& backend, EventHub& hub, net::any_io_executor blocking,
                   const std::atomic<bool>& stopping)
    : router_(router), backend_(backend), hub_(hub), blocking_(std::move(blocking)), stopping_(stopping), idempotency_(backend) {}

awaitable<Response> Pipeline::handle(Request& req, const ConnInfo& info, std::string& route_name) {
    try {
        parse_target(req.target, req.path, req.query);
        auto m = router_.match(req.method, req.path);
        if (!m.route) {
            if (!m.allowed.empty())
                throw ApiError(ErrorCode::method_not_allowed,
                               "The method " + req.method + " is not allowed on '" + req.path + "'.", {{"allow", m.allowed}});
            throw ApiError(ErrorCode::not_found, "There is nothing at '" + req.path + "'.");
        }
        const Route& route = *m.route;
        route_name = route.pattern;
        req.params = std::move(m.params);
        authorize(req, route, info);
        co_return co_await answer(route, req);
    } catch (const ApiError& e) {
        co_return error_response(e);
    } catch (const std::exception& e) {
        spdlog::error("req={} {} {} failed: {}", req.request_id, log_escape(req.method), log_escape(req.path), e.what());
        co_return error_response(ApiError(ErrorCode::internal, "An internal error occurred (request " + req.request_id +
                                                                   "); the daemon's log has the details."));
    }
}

// An authorized request: replayed for a repeated Idempotency-Key, reused from the answer cache,
// or computed (and waited on, for a long-poll).
awaitable<Response> Pipeline::answer(const Route& route, Request& req) {
    const auto ticket = idempotency_.begin(req);  // the key stays claimed until this returns
    if (ticket)
        if (auto replay = ticket->replay()) co_return std::move(*replay);

    // A cacheable read reuses the answer computed at the same generation; the generation is
    // read before computing, so a change during it is never hidden.
    const std::uint64_t generation =
        route.cacheable && (req.method == "GET" || req.method == "HEAD") ? backend_.generation() : 0;
    if (generation != 0)
        if (auto hit = cache_.get(req.target, generation)) co_return std::move(*hit);

    Response res = co_await invoke(route, req);
    if (res.long_poll) res = co_await long_poll(route, req, std::move(res));
    if (generation != 0 && res.status == 200 && !res.event_stream) cache_.put(req.target, generation, res);
    if (ticket) ticket->remember(res);
    co_return res;
}

void Pipeline::authorize(Request& req, const Route& route, const ConnInfo& info) {
    if (!info.needs_token) {
        req.scope = Scope::write;
        return;
    }
    req.scope = Scope::none;
    if (route.scope == Scope::none) return;
    if (!req.header("authorization"))
        throw ApiError(ErrorCode::unauthenticated, "This request needs a token: 'Authorization: Bearer <token>'.");
    const auto token = bearer_token(req);
    if (!token) throw ApiError(ErrorCode::unauthenticated, "The Authorization header must be 'Bearer <token>'.");
    const Scope granted = is_sane_token_text(*token, 512) ? backend_.authenticate(std::string(*token)) : Scope::none;
    if (granted == Scope::none) throw ApiError(ErrorCode::unauthenticated, "The bearer token is not valid.");
    if (info.slot) info.slot->prove();  // a client with a valid token is never evicted
    if (static_cast<int>(granted) < static_cast<int>(route.scope))
        throw ApiError(ErrorCode::forbidden, "The token's scope 'read' does not allow this request.",
                       {{"required_scope", "write"}});
    req.scope = granted;
}

bool Pipeline::still_authorized(const Request& req, const ConnInfo& info) {
    if (!info.needs_token) return true;
    const auto token = bearer_token(req);
    return token && is_sane_token_text(*token, 512) && backend_.authenticate(std::string(*token)) != Scope::none;
}

awaitable<Response> Pipeline::invoke(const Route& route, Request& req) {
    if (route.exec == Exec::io) co_return route.handler(req);
    co_return co_await net::co_spawn(
        blocking_, [&route, &req]() -> awaitable<Response> { co_return route.handler(req); }, use_awaitable);
}

// Waits until the handler stops asking to wait (an event about its key arrived and the job is
// done) or the deadline passes.
awaitable<Response> Pipeline::long_poll(const Route& route, Request& req, Response res) {
    const auto deadline = res.long_poll->deadline;
    auto ex = co_await net::this_coro::executor;
    auto timer = std::make_shared<net::steady_timer>(ex);
    Subscription sub{hub_, hub_.subscribe(wake(timer, ex), res.long_poll->key)};
    for (;;) {
        res = co_await invoke(route, req);  // again: the job may have ended before we subscribed
        if (!res.long_poll || std::chrono::steady_clock::now() >= deadline || stopping_) break;
        if (!sub.s->take().empty()) continue;
        timer->expires_at(deadline);
        beast::error_code ec;
        co_await timer->async_wait(net::redirect_error(use_awaitable, ec));
        sub.s->take();
    }
    if (res.long_poll) {
        req.wait_done = true;
        res = co_await invoke(route, req);
    }
    co_return res;
}

}  // namespace snapvirt::api
