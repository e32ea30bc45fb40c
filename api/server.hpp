#pragma once
// snapvirtd's HTTP/1.1 server (Boost.Beast): TCP, TLS and Unix-socket listeners, one
// coroutine per connection on its own strand, handlers dispatched through the Router.
//
// Thread-safety: start() and stop() from one thread; everything else runs on the server's
// io_context threads and its blocking pool.

#include "api/backend.hpp"
#include "api/event_hub.hpp"
#include "api/metrics.hpp"
#include "api/router.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

namespace snapvirt::api {

struct Endpoint {
    enum class Kind { tcp, unix_socket };
    Kind kind = Kind::tcp;
    std::string host;
    std::uint16_t port = 0;  // 0: any free port (see Server::endpoints())
    std::string path;
    bool tls = false;
};

struct ServerOptions {
    std::vector<Endpoint> endpoints;
    unsigned io_threads = 2;
    unsigned blocking_threads = 4;
    std::size_t max_connections = 1024;             // TCP, all TCP listeners together
    std::size_t max_connections_per_client = 256;   // TCP, from one client address (0: no cap)
    std::size_t max_unix_connections = 128;         // the Unix sockets' own budget
    // Under a spent TCP budget, an unproven connection (no request with a valid token yet) open
    // this long gives its place to a new one.
    std::chrono::milliseconds evict_unproven_after{1000};
    std::uint32_t max_header_bytes = 16 * 1024;
    std::uint32_t max_body_bytes = 64 * 1024;
    std::chrono::seconds header_timeout{10};
    std::chrono::seconds handshake_timeout{5};  // TLS handshake, and a connection's first request headers
    std::chrono::seconds request_timeout{30};
    std::chrono::seconds idle_timeout{60};
    std::chrono::seconds heartbeat{15};
    std::uint32_t socket_mode = 0660;
    gid_t socket_gid = static_cast<gid_t>(-1);
    std::string tls_cert;
    std::string tls_key;
    std::string tls_client_ca;
    std::string server_name = "snapvirtd";
};

class Server {
public:
    Server(ServerOptions options, const Router& router, Backend& backend, EventHub& hub, Metrics& metrics);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds every endpoint and starts serving; throws std::runtime_error naming the endpoint
    // that could not be bound.
    void start();
    // Stops accepting; connections in progress go on.
    void stop_accepting();
    // Closes everything and joins the threads.
    void stop();

    // Runs `fn` on an I/O thread (e.g. a watchdog ping, which then proves the loop is alive).
    void post(std::function<void()> fn);

    // The bound endpoints, as "http://127.0.0.1:41234" or "unix:/path".
    std::vector<std::string> endpoints() const;

private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace snapvirt::api
