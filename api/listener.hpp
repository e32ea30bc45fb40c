#pragma once
// The listeners: binds TCP and Unix-socket endpoints, owns the TLS context, accepts connections
// within the connection budgets (TCP with a cap per client address; the Unix sockets with a
// budget of their own, so TCP clients cannot lock out the host's own tools), does the TLS
// handshake within a short deadline, and starts a Session for each one on a strand of its own.
//
// Thread-safety: bind() before the io_context runs; stop_accepting() from any thread (it posts);
// the accept loops run on the io_context.

#include "api/connection_budget.hpp"
#include "api/server.hpp"
#include "api/session.hpp"
#include "api/transport.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace snapvirt::api {

class Listener {
public:
    Listener(net::io_context& ioc, const ServerOptions& opts, SessionContext& sessions, Metrics& metrics);

    // Binds one endpoint and starts accepting on it; throws std::runtime_error naming it.
    void bind(const Endpoint& ep);
    void stop_accepting();
    // Removes the socket files of the Unix listeners (after the io_context has stopped).
    void remove_socket_files();

    // "http://127.0.0.1:41234", "https://...", "unix:/path"
    const std::vector<std::string>& endpoints() const { return bound_; }

private:
    void bind_tcp(const Endpoint& ep);
    void bind_unix(const Endpoint& ep);
    void ensure_tls();
    awaitable<void> accept_tcp(std::shared_ptr<tcp::acceptor> acceptor, bool tls);
    awaitable<void> accept_unix(std::shared_ptr<unix_proto::acceptor> acceptor);
    // Waits after a failed accept (out of descriptors, accept fails at once while connections
    // wait in the backlog: no spinning) and logs at most once a second.
    awaitable<void> after_accept_error(const beast::error_code& ec, std::chrono::milliseconds& backoff);
    template <class Stream>
    awaitable<void> serve_plain(Stream stream, ConnInfo info);
    awaitable<void> serve_tls(TlsStream stream, ConnInfo info);
    template <class Stream>
    awaitable<void> refuse(Stream stream, ConnInfo info);

    net::io_context& ioc_;
    const ServerOptions& opts_;
    SessionContext& sessions_;
    std::shared_ptr<ConnectionBudget> tcp_budget_;
    std::shared_ptr<ConnectionBudget> unix_budget_;
    std::mutex log_mu_;  // the accept-error log's rate limit
    std::chrono::steady_clock::time_point last_accept_log_{};
    std::size_t unlogged_accept_errors_ = 0;
    std::optional<ssl::context> tls_;
    std::vector<std::shared_ptr<tcp::acceptor>> tcp_acceptors_;
    std::vector<std::shared_ptr<unix_proto::acceptor>> unix_acceptors_;
    std::vector<std::string> unix_paths_;
    std::vector<std::string> bound_;
};

}  // namespace snapvirt::api
