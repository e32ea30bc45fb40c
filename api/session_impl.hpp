#pragma once
// Session<Stream>'s definitions, included only by session_tcp.cpp, session_tls.cpp and
// session_unix.cpp: each instantiates the session for one transport, so the three (the
// heaviest Beast code of the build) compile in parallel.

#include "api/session.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

namespace snapvirt::api {

namespace http = beast::http;

namespace {

constexpr const char* hsts = "max-age=31536000";

// How often a quiet event stream re-checks its token: a revoked token's stream ends within it.
constexpr std::chrono::seconds token_recheck{1};

Request to_request(http::request<http::string_body>& h) {
    Request req;
    req.method = std::string(h.method_string());
    req.target = std::string(h.target());
    req.headers.reserve(8);
    for (const auto& f : h) req.headers.emplace_back(lower_ascii(f.name_string()), std::string(f.value()));
    req.body = std::move(h.body());
    req.request_id = new_request_id();  // the daemon's own, always
    return req;
}

// The client's own X-Request-Id (1-64 visible ASCII characters), or "".
std::string_view client_request_id(const Request& req) {
    const std::string* rid = req.header("x-request-id");
    return rid && is_sane_token_text(*rid, 64) ? std::string_view(*rid) : std::string_view();
}

// The id an answer carries: the client's own when it gave one (it correlates by it), else ours.
std::string_view answer_request_id(const Request& req) {
    const auto theirs = client_request_id(req);
    return theirs.empty() ? std::string_view(req.request_id) : theirs;
}

// RFC 9112 framing that Beast leaves to its user. A Transfer-Encoding other than exactly
// "chunked" would make Beast read the request as bodiless and its body as the next request
// (request smuggling); HTTP/1.1 needs exactly one Host; two Authorization headers would let
// the first silently win.
std::optional<ApiError> framing_error(const http::request<http::string_body>& head) {
    int transfer_encodings = 0, hosts = 0, authorizations = 0;
    bool chunked_only = true;
    for (const auto& f : head) {
        switch (f.name()) {
            case http::field::transfer_encoding: {
                ++transfer_encodings;
                std::string_view v = f.value();
                while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
                while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
                chunked_only = chunked_only && beast::iequals(v, "chunked");
                break;
            }
            case http::field::host: ++hosts; break;
            case http::field::authorization: ++authorizations; break;
            default: break;
        }
    }
    auto bad = [](const char* field, const std::string& message) {
        return ApiError(ErrorCode::invalid_request, message, {{"field", field}});
    };
    if (transfer_encodings > 1 || (transfer_encodings == 1 && !chunked_only))
        return bad("Transfer-Encoding", "The only Transfer-Encoding accepted is a single 'chunked'.");
    if (head.version() == 11 && hosts != 1)
        return bad("Host", hosts == 0 ? "An HTTP/1.1 request needs a Host header." : "The request has more than one Host header.");
    if (hosts > 1) return bad("Host", "The request has more than one Host header.");
    if (authorizations > 1) return bad("Authorization", "The request has more than one Authorization header.");
    return std::nullopt;
}

}  // namespace

template <class Stream>
awaitable<void> Session<Stream>::run() {
    beast::flat_buffer buffer;
    bool first = true;
    while (!ctx_.stopping) {
        bool keep_alive = false;
        auto read = co_await read_request(buffer, first, keep_alive);
        first = false;
        if (!read) co_return;
        Request& req = *read;

        const auto started = std::chrono::steady_clock::now();
        std::string route = "unmatched";
        Response res = co_await ctx_.pipeline.handle(req, info_, route);
        if (res.event_stream && req.method == "HEAD") {
            res.event_stream.reset();  // HEAD: the stream's head, no stream
            res.body.clear();
            res.shared_body.reset();
        }
        if (res.event_stream) {
            access_log(req, 200, 0, started);
            ctx_.metrics.observe_request(req.method, route, 200, 0);
            co_await stream_events(req, *res.event_stream);
            co_return;
        }
        // A failed authentication does not keep its connection (nor its place in the budget).
        const bool keep = keep_alive && !ctx_.stopping && !(res.status == 401 && info_.needs_token);
        const int status = res.status;
        const std::size_t bytes = res.bytes().size();
        // Counted before the answer leaves, so a client never sees an answer its metrics miss.
        ctx_.metrics.observe_request(req.method, route, status,
                                     std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        beast::error_code ec;
        co_await write_response(req, std::move(res), keep, ec);
        access_log(req, status, bytes, started);
        if (ec || !keep) co_return;
    }
}

template <class Stream>
awaitable<std::optional<Request>> Session<Stream>::read_request(beast::flat_buffer& buffer, bool first, bool& keep_alive) {
    const auto& opts = ctx_.opts;
    http::request_parser<http::string_body> parser;
    parser.header_limit(opts.max_header_bytes);
    parser.body_limit(opts.max_body_bytes);
    beast::error_code ec;
    // A new connection must send its first request soon (the handshake deadline): idle sockets
    // do not hold a place for long.
    beast::get_lowest_layer(stream_).expires_after(first ? std::min(opts.header_timeout, opts.handshake_timeout)
                                                         : opts.idle_timeout);
    co_await http::async_read_header(stream_, buffer, parser, net::redirect_error(use_awaitable, ec));
    if (ec) {
        if (ec == http::error::header_limit)
            co_await answer_and_close(ApiError(ErrorCode::header_too_large, "The request headers exceed " +
                                                                                 std::to_string(opts.max_header_bytes) + " bytes."));
        else if (ec == http::error::body_limit)
            co_await answer_and_close(body_too_large());
        else if (!quiet_error(ec) && buffer.size() > 0)
            co_await answer_and_close(
                ApiError(ErrorCode::invalid_request, "The request is not valid HTTP/1.1: " + ec.message() + "."));
        co_return std::nullopt;
    }
    auto& head = parser.get();
    if (auto e = framing_error(head)) {
        co_await answer_and_close(*e);
        co_return std::nullopt;
    }
    if (parser.content_length() && *parser.content_length() > opts.max_body_bytes) {
        co_await answer_and_close(body_too_large());
        co_return std::nullopt;
    }
    if (beast::iequals(head[http::field::expect], "100-continue")) {
        http::response<http::empty_body> cont{http::status::continue_, 11};
        beast::get_lowest_layer(stream_).expires_after(opts.request_timeout);
        co_await http::async_write(stream_, cont, net::redirect_error(use_awaitable, ec));
        if (ec) co_return std::nullopt;
    }
    beast::get_lowest_layer(stream_).expires_after(opts.request_timeout);
    co_await http::async_read(stream_, buffer, parser, net::redirect_error(use_awaitable, ec));
    if (ec) {
        if (ec == http::error::body_limit) co_await answer_and_close(body_too_large());
        co_return std::nullopt;
    }
    keep_alive = parser.get().keep_alive();
    co_return to_request(parser.get());
}

template <class Stream>
awaitable<void> Session<Stream>::refuse() {
    Request req;
    req.request_id = new_request_id();
    beast::error_code ec;
    co_await write_response(req,
                            error_response(ApiError(ErrorCode::too_many_connections,
                                                    "The server has too many open connections; try again shortly.")),
                            false, ec);
}

template <class Stream>
awaitable<void> Session<Stream>::stream_events(const Request& req, EventStream es) {
    http::response<http::empty_body> head{http::status::ok, 11};
    head.set(http::field::server, ctx_.opts.server_name);
    head.set(http::field::content_type, "text/event-stream; charset=utf-8");
    head.set(http::field::cache_control, "no-store");
    head.set("X-Accel-Buffering", "no");
    head.set("X-Request-Id", answer_request_id(req));
    if (info_.tls) head.set(http::field::strict_transport_security, hsts);
    head.keep_alive(true);
    head.chunked(true);
    // Subscribe before the head goes out: a client that sees the head may rely on every event
    // published after it.
    auto ex = co_await net::this_coro::executor;
    auto timer = std::make_shared<net::steady_timer>(ex);
    bool missed = false;
    EventHub& hub = ctx_.hub;
    Subscription sub{hub, hub.subscribe(wake(timer, ex), {},
                                        es.last_event_id ? es.last_event_id : std::optional<std::uint64_t>(hub.last_id()),
                                        &missed)};
    http::response_serializer<http::empty_body> sr{head};
    beast::error_code ec;
    beast::get_lowest_layer(stream_).expires_after(ctx_.opts.request_timeout);
    co_await http::async_write_header(stream_, sr, net::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    std::string text = "retry: 2000\n\n";
    if (missed && es.last_event_id) text += ": events after the given id are no longer available; re-read state\n\n";
    auto last_write = std::chrono::steady_clock::now();
    while (!ctx_.stopping) {
        if (sub.s->overflowed()) {
            spdlog::info("req={} dropped an event-stream consumer that fell behind.", req.request_id);
            break;
        }
        for (const auto& e : sub.s->take())
            text += "id: " + std::to_string(e->id) + "\nevent: " + e->type + "\ndata: " + e->data + "\n\n";
        if (text.empty()) {
            timer->expires_after(std::min<std::chrono::steady_clock::duration>(ctx_.opts.heartbeat, token_recheck));
            co_await timer->async_wait(net::redirect_error(use_awaitable, ec));
            if (ec) continue;  // woken by an event
            if (std::chrono::steady_clock::now() - last_write >= ctx_.opts.heartbeat) text = ": heartbeat\n\n";
        }
        // Before every write, and at least every token_recheck: is the caller's token still valid?
        // A revoked token's stream ends at once, busy or quiet.
        if (!ctx_.pipeline.still_authorized(req, info_)) {
            spdlog::info("req={} ended an event stream whose token is no longer valid.", req.request_id);
            break;
        }
        if (text.empty()) continue;
        beast::get_lowest_layer(stream_).expires_after(ctx_.opts.request_timeout);
        co_await net::async_write(stream_, http::make_chunk(net::buffer(text)), net::redirect_error(use_awaitable, ec));
        if (ec) break;
        text.clear();
        last_write = std::chrono::steady_clock::now();
    }
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(2));
    co_await net::async_write(stream_, http::make_chunk_last(), net::redirect_error(use_awaitable, ec));
}

template <class Stream>
awaitable<void> Session<Stream>::write_response(const Request& req, Response r, bool keep_alive, beast::error_code& ec) {
    // The body goes out from where it lies (the answer's string or the cache's shared copy, both
    // alive in `r` for this whole coroutine): a buffer_body points at it, and header and body
    // leave in one gathered write.
    const std::string* body = &r.bytes();
    http::response<http::buffer_body> res{static_cast<http::status>(r.status), 11};
    res.set(http::field::server, ctx_.opts.server_name);
    // 204 carries neither a body nor the headers that describe one (RFC 9110, 8.6 and 15.3.5).
    const bool no_content = r.status == 204;
    if (!no_content) res.set(http::field::content_type, r.content_type);
    res.set("X-Request-Id", answer_request_id(req));
    res.set("X-Content-Type-Options", "nosniff");
    if (info_.tls) res.set(http::field::strict_transport_security, hsts);
    bool cache_set = false;
    for (const auto& [k, v] : r.headers) {
        res.set(k, v);
        cache_set = cache_set || beast::iequals(k, "Cache-Control");
    }
    if (!cache_set) res.set(http::field::cache_control, "no-store");
    if (r.status == 401) res.set(http::field::www_authenticate, "Bearer realm=\"snapvirt\"");
    res.keep_alive(keep_alive);
    if (!no_content) res.content_length(body->size());
    const bool head_only = req.method == "HEAD";
    res.body().data = head_only || body->empty() ? nullptr : const_cast<char*>(body->data());
    res.body().size = head_only ? 0 : body->size();
    res.body().more = false;
    beast::get_lowest_layer(stream_).expires_after(ctx_.opts.request_timeout);
    http::response_serializer<http::buffer_body> sr{res};
    if (head_only)
        co_await http::async_write_header(stream_, sr, net::redirect_error(use_awaitable, ec));
    else
        co_await http::async_write(stream_, sr, net::redirect_error(use_awaitable, ec));
}

template <class Stream>
awaitable<void> Session<Stream>::answer_and_close(const ApiError& e) {
    const auto started = std::chrono::steady_clock::now();
    Request req;
    req.request_id = new_request_id();
    Response res = error_response(e);
    const int status = res.status;
    beast::error_code ec;
    co_await write_response(req, std::move(res), false, ec);
    req.method = "-";
    req.target = "-";
    access_log(req, status, 0, started);
}

template <class Stream>
ApiError Session<Stream>::body_too_large() const {
    return ApiError(ErrorCode::body_too_large,
                    "The request body exceeds " + std::to_string(ctx_.opts.max_body_bytes) + " bytes.",
                    {{"limit", ctx_.opts.max_body_bytes}});
}

template <class Stream>
void Session<Stream>::access_log(const Request& req, int status, std::size_t bytes,
                                 std::chrono::steady_clock::time_point started) {
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    // The client's own request id is logged as such, next to the daemon's; what the client sent
    // is escaped, so a line cannot be forged or broken.
    const auto theirs = client_request_id(req);
    spdlog::info("access req={}{}{} peer={} \"{} {}\" {} {}B {:.1f}ms", req.request_id, theirs.empty() ? "" : " client_req=",
                 theirs, info_.peer,
                 log_escape(req.method), log_escape(req.target), status, bytes, ms);
}

}  // namespace snapvirt::api
