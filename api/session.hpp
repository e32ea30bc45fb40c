#pragma once
// One connection's life after accept (and after the TLS handshake): read a request within its
// deadlines, hand it to the pipeline, write the answer; or turn the connection into an event
// stream. One coroutine per connection, on the connection's strand.
//
// Thread-safety: a Session belongs to its connection's coroutine; the SessionContext it shares
// with all others is read-only or thread-safe.

#include "api/metrics.hpp"
#include "api/pipeline.hpp"
#include "api/server.hpp"
#include "api/transport.hpp"

#include <atomic>
#include <chrono>

namespace snapvirt::api {

// What every session shares.
struct SessionContext {
    const ServerOptions& opts;
    Pipeline& pipeline;
    EventHub& hub;
    Metrics& metrics;
    const std::atomic<bool>& stopping;
};

template <class Stream>
class Session {
public:
    Session(Stream& stream, const ConnInfo& info, SessionContext& ctx) : stream_(stream), info_(info), ctx_(ctx) {}

    // Serves requests until the client closes, a deadline passes, or the server stops.
    awaitable<void> run();
    // Answers 503 too_many_connections (the connection is over the budget).
    awaitable<void> refuse();

private:
    // Reads one request's headers and body; nullopt when the connection is to end (an error
    // answer, if one is due, has already been written).
    awaitable<std::optional<Request>> read_request(beast::flat_buffer& buffer, bool first, bool& keep_alive);
    awaitable<void> stream_events(const Request& req, EventStream es);
    awaitable<void> write_response(const Request& req, Response r, bool keep_alive, beast::error_code& ec);
    awaitable<void> answer_and_close(const ApiError& e);
    ApiError body_too_large() const;
    void access_log(const Request& req, int status, std::size_t bytes, std::chrono::steady_clock::time_point started);

    Stream& stream_;
    const ConnInfo& info_;
    SessionContext& ctx_;
};

extern template class Session<TcpStream>;
extern template class Session<TlsStream>;
extern template class Session<UnixStream>;

}  // namespace snapvirt::api
