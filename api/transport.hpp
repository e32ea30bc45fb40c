#pragma once
// The Asio/Beast vocabulary shared by the listener, the session and the request pipeline
// (internal to api/): the three stream kinds, what a connection knows of its peer, and the
// transport's small helpers. No header outside api/ includes this one.

#include "api/event_hub.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace snapvirt::api {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using unix_proto = net::local::stream_protocol;
using net::awaitable;
using net::use_awaitable;

using TcpStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using UnixStream = beast::basic_stream<unix_proto, net::any_io_executor, beast::unlimited_rate_policy>;

class ConnectionSlot;

// What a connection knows of its peer. Made at accept, read by the session and the pipeline.
struct ConnInfo {
    std::string peer;          // "127.0.0.1:41234" or "unix:pid=..,uid=.."
    bool needs_token = true;   // TCP: bearer tokens; Unix socket: file permissions decide
    bool tls = false;          // served over TLS (HSTS is sent)
    std::shared_ptr<ConnectionSlot> slot;  // its place in the connection budget
};

// Text to quote in a log line: printable ASCII but '"' and '\\' as is, every other byte as \xHH,
// so what a client sent cannot forge or break a line.
std::string log_escape(std::string_view s);

// A fresh request id: 16 hex digits, unique in this process.
std::string new_request_id();

// Errors that end a connection without a word: the client went away or a deadline passed.
bool quiet_error(const beast::error_code& ec);

// Closes a connection politely: TCP half-close, or a TLS close_notify with a deadline.
awaitable<void> close_stream(TcpStream& s);
awaitable<void> close_stream(UnixStream& s);
awaitable<void> close_stream(TlsStream& s);

// A hub subscription that ends with its scope, also when a coroutine is destroyed unfinished
// (the io_context going away).
struct Subscription {
    EventHub& hub;
    std::shared_ptr<EventHub::Subscriber> s;
    ~Subscription() { hub.unsubscribe(s); }
};

// The hub's wake-up for a waiting coroutine: cancel its timer on its own executor. The timer
// is held weakly: the hub must never keep a timer alive past its coroutine.
std::function<void()> wake(const std::shared_ptr<net::steady_timer>& timer, net::any_io_executor ex);

}  // namespace snapvirt::api
