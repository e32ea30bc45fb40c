#include "api/listener.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <spdlog/spdlog.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

namespace snapvirt::api {

Listener::Listener(net::io_context& ioc, const ServerOptions& opts, SessionContext& sessions, Metrics& metrics)
    : ioc_(ioc), opts_(opts), sessions_(sessions), budget_(std::make_shared<ConnectionBudget>(opts.max_connections, metrics)) {}

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
                    ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
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
    for (;;) {
        tcp::socket sock(net::make_strand(ioc_));
        beast::error_code ec;
        co_await acceptor->async_accept(sock, net::redirect_error(use_awaitable, ec));
        if (ec == net::error::operation_aborted || !acceptor->is_open()) co_return;
        if (ec) {
            spdlog::warn("Accepting a connection failed: {}.", ec.message());
            continue;
        }
        sock.set_option(tcp::no_delay(true), ec);
        ConnInfo info;
        info.slot = budget_->admit();
        if (!info.slot) {
            if (tls)  // no plaintext answer on a TLS port: just close
                sock.close(ec);
            else
                net::co_spawn(sock.get_executor(), refuse(TcpStream(std::move(sock)), std::move(info)), net::detached);
            continue;
        }
        beast::error_code rec;
        const auto remote = sock.remote_endpoint(rec);
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

awaitable<void> Listener::accept_unix(std::shared_ptr<unix_proto::acceptor> acceptor) {
    for (;;) {
        unix_proto::socket sock(net::make_strand(ioc_));
        beast::error_code ec;
        co_await acceptor->async_accept(sock, net::redirect_error(use_awaitable, ec));
        if (ec == net::error::operation_aborted || !acceptor->is_open()) co_return;
        if (ec) {
            spdlog::warn("Accepting a connection failed: {}.", ec.message());
            continue;
        }
        ConnInfo info;
        info.slot = budget_->admit();
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
    Session<Stream> session(stream, info, sessions_);
    co_await session.run();
    co_await close_stream(stream);
}

awaitable<void> Listener::serve_tls(TlsStream stream, ConnInfo info) {
    beast::error_code ec;
    beast::get_lowest_layer(stream).expires_after(opts_.header_timeout);
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
