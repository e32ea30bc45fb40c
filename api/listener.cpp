#include "api/listener.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

namespace snapvirt::api {

namespace {

// Descriptors the daemon needs besides its connections: the catalog, libvirt connections, the
// event loop, logs, and one accepted-then-refused socket per listener.
constexpr std::size_t reserved_descriptors = 64;

// Shrinks the budgets to the process's descriptor limit, so that a connection is refused with
// an answer before accept() could fail for want of a descriptor.
void fit_to_descriptor_limit(BudgetLimits& tcp, BudgetLimits& local) {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return;
    const std::size_t limit = lim.rlim_cur;
    const std::size_t wanted = tcp.max_connections + local.max_connections + reserved_descriptors;
    if (wanted <= limit) return;
    const std::size_t room = limit > reserved_descriptors + 16 ? limit - reserved_descriptors : 16;
    local.max_connections = std::max<std::size_t>(4, std::min(local.max_connections, room / 8));
    tcp.max_connections = std::max<std::size_t>(1, std::min(tcp.max_connections, room - std::min(room - 1, local.max_connections)));
    spdlog::warn("The descriptor limit ({}) is below what the connection budgets need ({}); serving at most {} TCP and "
                 "{} Unix-socket connections. Raise LimitNOFILE.",
                 limit, wanted, tcp.max_connections, local.max_connections);
}

constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

bool out_of_resources(const beast::error_code& ec) {
    return ec == net::error::no_descriptors || ec == beast::error_code(ENFILE, beast::system_category()) ||
           ec == net::error::no_buffer_space || ec == net::error::no_memory;
}

// Closes an evicted connection: scheduled on its strand, and only while its coroutine, which
// owns the stream, still runs (`alive`).
template <class Stream>
std::function<void()> evictor(Stream& stream, const std::shared_ptr<char>& alive) {
    auto& lowest = beast::get_lowest_layer(stream);
    return [ex = lowest.get_executor(), lowest = &lowest, weak = std::weak_ptr<char>(alive)] {
        net::post(ex, [lowest, weak] {
            if (weak.lock()) lowest->close();
        });
    };
}

// Gives a slot an evictor for as long as its connection's coroutine runs.
struct EvictionScope {
    ConnectionSlot& slot;
    std::shared_ptr<char> alive = std::make_shared<char>();
    ~EvictionScope() { slot.on_evict(nullptr); }
};

}  // namespace

Listener::Listener(net::io_context& ioc, const ServerOptions& opts, SessionContext& sessions, Metrics& metrics)
    : ioc_(ioc), opts_(opts), sessions_(sessions) {
    BudgetLimits tcp{opts.max_connections, opts.max_connections_per_client, opts.evict_unproven_after, true};
    BudgetLimits local{opts.max_unix_connections, 0, opts.evict_unproven_after, false};
    fit_to_descriptor_limit(tcp, local);
    tcp_budget_ = std::make_shared<ConnectionBudget>(tcp, metrics);
    unix_budget_ = std::make_shared<ConnectionBudget>(local, metrics);
}

void Listener::bind(const Endpoint& ep) {
    if (ep.kind == Endpoint::Kind::unix_socket)
        bind_unix(ep);
    else
        bind_tcp(ep);
}

void Listener::stop_accepting() {
    net::post(ioc_, [this] {
        beast::error_code ec;
        for (auto& a : tcp_acceptors_) a->close(ec);
        for (auto& a : unix_acceptors_) a->close(ec);
    });
}

void Listener::remove_socket_files() {
    for (const auto& path : unix_paths_) ::unlink(path.c_str());
}

void Listener::bind_tcp(const Endpoint& ep) {
    auto acceptor = std::make_shared<tcp::acceptor>(ioc_);
    const std::string where =
        (ep.host.find(':') != std::string::npos ? "[" + ep.host + "]" : ep.host) + ":" + std::to_string(ep.port);
    try {
        tcp::endpoint endpoint(net::ip::make_address(ep.host), ep.port);
        acceptor->open(endpoint.protocol());
        acceptor->set_option(net::socket_base::reuse_address(true));
        if (endpoint.address().is_v6()) acceptor->set_option(net::ip::v6_only(true));
        acceptor->bind(endpoint);
        acceptor->listen(net::socket_base::max_listen_connections);
    } catch (const boost::system::system_error& e) {
        throw std::runtime_error("Cannot listen on " + where + ": " + e.code().message() + ".");
    }
    const auto local = acceptor->local_endpoint();
    const std::string addr =
        local.address().is_v6() ? "[" + local.address().to_string() + "]" : local.address().to_string();
    bound_.push_back((ep.tls ? "https://" : "http://") + addr + ":" + std::to_string(local.port()));
    tcp_acceptors_.push_back(acceptor);
    if (ep.tls) ensure_tls();
    net::co_spawn(ioc_, accept_tcp(acceptor, ep.tls), net::detached);
}

void Listener::bind_unix(const Endpoint& ep) {
    namespace fs = std::filesystem;
    std::error_code fec;
    const fs::path path(ep.path);
    if (path.has_parent_path() && !fs::exists(path.parent_path(), fec)) {
        fs::create_directories(path.parent_path(), fec);
        if (fec) throw std::runtime_error("Cannot create the directory of the socket " + ep.path + ": " + fec.message() + ".");
        ::chmod(path.parent_path().c_str(), 0755);
    }
    // A socket file left by a daemon that is gone is replaced; a live one is not.
    if (fs::is_socket(path, fec)) {
        unix_proto::socket probe(ioc_);
        beast::error_code ec;
        probe.connect(unix_proto::endpoint(ep.path), ec);
        if (!ec) throw std::runtime_error("Cannot listen on unix:" + ep.path + ": another process is serving it.");
        ::unlink(ep.path.c_str());
    } else if (fs::exists(path, fec)) {
        throw std::runtime_error("Cannot listen on unix:" + ep.path + ": a file that is not a socket is there.");
    }
    auto acceptor = std::make_shared<unix_proto::acceptor>(ioc_);
    try {
        // Until the chmod below the socket has the process umask's mode; connect() needs write
        // permission, which the usual umask (022) gives nobody but the owner.
        acceptor->open();
        acceptor->bind(unix_proto::endpoint(ep.path));
        acceptor->listen(net::socket_base::max_listen_connections);
    } catch (const boost::system::system_error& e) {
        throw std::runtime_error("Cannot listen on unix:" + ep.path + ": " + e.code().message() + ".");
    }
    if (opts_.socket_gid != static_cast<gid_t>(-1) && ::chown(ep.path.c_str(), static_cast<uid_t>(-1), opts_.socket_gid) != 0)
        throw std::runtime_error("Cannot give the socket " + ep.path + " to its group: " + std::strerror(errno) + ".");
    if (::chmod(ep.path.c_str(), opts_.socket_mode) != 0)
        throw std::runtime_error("Cannot set the mode of the socket " + ep.path + ": " + std::strerror(errno) + ".");
    unix_paths_.push_back(ep.path);
    bound_.push_back("unix:" + ep.path);
    unix_acceptors_.push_back(acceptor);
    net::co_spawn(ioc_, accept_unix(acceptor), net::detached);
}

void Listener::ensure_tls() {
    if (tls_) return;
    tls_.emplace(ssl::context::tls_server);
    auto& ctx = *tls_;
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                    ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use |
                    ssl::context::no_compression);
    // TLS 1.2: forward secrecy (ECDHE) and AEAD ciphers only, in the server's order; TLS 1.3
    // keeps OpenSSL's defaults, which are all of that kind.
    SSL_CTX_set_options(ctx.native_handle(), SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
    if (SSL_CTX_set_cipher_list(ctx.native_handle(), tls12_ciphers) != 1)
        throw std::runtime_error("Cannot set the TLS cipher policy.");
    try {
        ctx.use_certificate_chain_file(opts_.tls_cert);
    } catch (const boost::system::system_error& e) {
        throw std::runtime_error("Cannot load the TLS certificate '" + opts_.tls_cert + "': " + e.code().message() + ".");
    }
    try {
        ctx.use_private_key_file(opts_.tls_key, ssl::context::pem);
    } catch (const boost::system::system_error& e) {
        throw std::runtime_error("Cannot load the TLS key '" + opts_.tls_key + "': " + e.code().message() + ".");
    }
    if (!opts_.tls_client_ca.empty()) {
        try {
            ctx.load_verify_file(opts_.tls_client_ca);
        } catch (const boost::system::system_error& e) {
            throw std::runtime_error("Cannot load the client CA '" + opts_.tls_client_ca + "': " + e.code().message() + ".");
        }
        ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    }
}

awaitable<void> Listener::accept_tcp(std::shared_ptr<tcp::acceptor> acceptor, bool tls) {
    std::chrono::milliseconds backoff{0};
    for (;;) {
        tcp::socket sock(net::make_strand(ioc_));
        beast::error_code ec;
        co_await acceptor->async_accept(sock, net::redirect_error(use_awaitable, ec));
        if (ec == net::error::operation_aborted || !acceptor->is_open()) co_return;
        if (ec) {
            co_await after_accept_error(ec, backoff);
            if (!acceptor->is_open()) co_return;
            continue;
        }
        backoff = std::chrono::milliseconds(0);
        sock.set_option(tcp::no_delay(true), ec);
        beast::error_code rec;
        const auto remote = sock.remote_endpoint(rec);
        ConnInfo info;
        info.slot = tcp_budget_->admit(rec ? std::string("?") : remote.address().to_string());
        if (!info.slot) {
            if (tls)  // no plaintext answer on a TLS port: just close
                sock.close(ec);
            else
                net::co_spawn(sock.get_executor(), refuse(TcpStream(std::move(sock)), std::move(info)), net::detached);
            continue;
        }
        info.peer = rec ? "?" : remote.address().to_string() + ":" + std::to_string(remote.port());
        info.needs_token = true;
        info.tls = tls;
        auto ex = sock.get_executor();
        if (tls)
            net::co_spawn(ex, serve_tls(TlsStream(std::move(sock), *tls_), std::move(info)), net::detached);
        else
            net::co_spawn(ex, serve_plain(TcpStream(std::move(sock)), std::move(info)), net::detached);
    }
}

awaitable<void> Listener::after_accept_error(const beast::error_code& ec, std::chrono::milliseconds& backoff) {
    const bool exhausted = out_of_resources(ec);
    {
        std::lock_guard lock(log_mu_);
        const auto now = std::chrono::steady_clock::now();
        if (now - last_accept_log_ >= std::chrono::seconds(1)) {
            if (exhausted)
                spdlog::warn("Accepting a connection failed: {} (out of file descriptors or memory); waiting before "
                             "the next try ({} more failures since the last message).",
                             ec.message(), unlogged_accept_errors_);
            else
                spdlog::warn("Accepting a connection failed: {} ({} more failures since the last message).",
                             ec.message(), unlogged_accept_errors_);
            last_accept_log_ = now;
            unlogged_accept_errors_ = 0;
        } else {
            ++unlogged_accept_errors_;
        }
    }
    if (!exhausted) co_return;
    backoff = std::clamp(backoff * 2, std::chrono::milliseconds(100), std::chrono::milliseconds(1000));
    net::steady_timer timer(co_await net::this_coro::executor);
    timer.expires_after(backoff);
    beast::error_code wait_ec;
    co_await timer.async_wait(net::redirect_error(use_awaitable, wait_ec));
}

awaitable<void> Listener::accept_unix(std::shared_ptr<unix_proto::acceptor> acceptor) {
    std::chrono::milliseconds backoff{0};
    for (;;) {
        unix_proto::socket sock(net::make_strand(ioc_));
        beast::error_code ec;
        co_await acceptor->async_accept(sock, net::redirect_error(use_awaitable, ec));
        if (ec == net::error::operation_aborted || !acceptor->is_open()) co_return;
        if (ec) {
            co_await after_accept_error(ec, backoff);
            if (!acceptor->is_open()) co_return;
            continue;
        }
        backoff = std::chrono::milliseconds(0);
        ConnInfo info;
        info.slot = unix_budget_->admit("unix");
        if (!info.slot) {
            net::co_spawn(sock.get_executor(), refuse(UnixStream(std::move(sock)), std::move(info)), net::detached);
            continue;
        }
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(sock.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
            info.peer = "unix:pid=" + std::to_string(cred.pid) + ",uid=" + std::to_string(cred.uid);
        else
            info.peer = "unix";
        info.needs_token = false;
        auto ex = sock.get_executor();
        net::co_spawn(ex, serve_plain(UnixStream(std::move(sock)), std::move(info)), net::detached);
    }
}

template <class Stream>
awaitable<void> Listener::refuse(Stream stream, ConnInfo info) {
    Session<Stream> session(stream, info, sessions_);
    co_await session.refuse();
    co_await close_stream(stream);
}

template <class Stream>
awaitable<void> Listener::serve_plain(Stream stream, ConnInfo info) {
    EvictionScope eviction{*info.slot};
    info.slot->on_evict(evictor(stream, eviction.alive));
    Session<Stream> session(stream, info, sessions_);
    co_await session.run();
    co_await close_stream(stream);
}

awaitable<void> Listener::serve_tls(TlsStream stream, ConnInfo info) {
    EvictionScope eviction{*info.slot};
    info.slot->on_evict(evictor(stream, eviction.alive));
    beast::error_code ec;
    beast::get_lowest_layer(stream).expires_after(std::min(opts_.handshake_timeout, opts_.header_timeout));
    co_await stream.async_handshake(ssl::stream_base::server, net::redirect_error(use_awaitable, ec));
    if (ec) {
        spdlog::info("TLS handshake with {} failed: {}.", info.peer, ec.message());
        beast::get_lowest_layer(stream).close();
        co_return;
    }
    Session<TlsStream> session(stream, info, sessions_);
    co_await session.run();
    co_await close_stream(stream);
}

}  // namespace snapvirt::api
