#include "api/server.hpp"

#include "api/json.hpp"
#include "api/response_cache.hpp"
#include "api/routes.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <thread>

namespace snapvirt::api {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using unix_proto = net::local::stream_protocol;
using net::awaitable;
using net::use_awaitable;

namespace {

using TcpStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using UnixStream = beast::basic_stream<unix_proto, net::any_io_executor, beast::unlimited_rate_policy>;

struct ConnInfo {
    std::string peer;
    bool needs_token = true;  // TCP: bearer tokens; Unix socket: file permissions decide
};

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string new_request_id() {
    static std::atomic<std::uint64_t> counter{0};
    thread_local std::mt19937_64 rng{std::random_device{}()};
    char buf[24];
    std::snprintf(buf, sizeof buf, "%08x%08llx", static_cast<unsigned>(rng()),
                  static_cast<unsigned long long>(counter.fetch_add(1) & 0xffffffffull));
    return buf;
}

bool is_sane_token_text(std::string_view s, std::size_t max) {
    if (s.empty() || s.size() > max) return false;
    for (unsigned char c : s)
        if (c <= 0x20 || c >= 0x7f) return false;
    return true;
}

bool quiet_error(const beast::error_code& ec) {
    return ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::operation_aborted ||
           ec == net::error::eof || ec == net::error::connection_reset || ec == net::error::broken_pipe ||
           ec == ssl::error::stream_truncated || ec == http::error::partial_message;
}

// Closes a connection politely: TCP half-close, or a TLS close_notify with a deadline.
awaitable<void> close_stream(TcpStream& s) {
    beast::error_code ec;
    s.socket().shutdown(tcp::socket::shutdown_send, ec);
    co_return;
}
awaitable<void> close_stream(UnixStream& s) {
    beast::error_code ec;
    s.socket().shutdown(unix_proto::socket::shutdown_send, ec);
    co_return;
}
awaitable<void> close_stream(TlsStream& s) {
    beast::error_code ec;
    beast::get_lowest_layer(s).expires_after(std::chrono::seconds(3));
    co_await s.async_shutdown(net::redirect_error(use_awaitable, ec));
    beast::get_lowest_layer(s).close();
}

}  // namespace

class Server::Impl {
public:
    Impl(ServerOptions opts, const Router& router, Backend& backend, EventHub& hub, Metrics& metrics)
        : opts_(std::move(opts)),
          router_(router),
          backend_(backend),
          hub_(hub),
          metrics_(metrics),
          blocking_(opts_.blocking_threads) {}

    ~Impl() { stop(); }

    void start() {
        for (const auto& ep : opts_.endpoints) {
            if (ep.kind == Endpoint::Kind::unix_socket)
                bind_unix(ep);
            else
                bind_tcp(ep);
        }
        for (unsigned i = 0; i < opts_.io_threads; ++i) threads_.emplace_back([this] { ioc_.run(); });
    }

    void stop_accepting() {
        net::post(ioc_, [this] {
            beast::error_code ec;
            for (auto& a : tcp_acceptors_) a->close(ec);
            for (auto& a : unix_acceptors_) a->close(ec);
        });
    }

    void stop() {
        if (stopped_.exchange(true)) return;
        stopping_ = true;
        work_.reset();
        ioc_.stop();
        for (auto& t : threads_) t.join();
        threads_.clear();
        blocking_.stop();
        blocking_.join();
        for (const auto& path : unix_paths_) ::unlink(path.c_str());
    }

    std::vector<std::string> endpoints() const { return bound_; }

    void post(std::function<void()> fn) { net::post(ioc_, std::move(fn)); }

private:
    // ---- listeners -------------------------------------------------------------------------

    void bind_tcp(const Endpoint& ep) {
        auto acceptor = std::make_shared<tcp::acceptor>(ioc_);
        const std::string where = (ep.host.find(':') != std::string::npos ? "[" + ep.host + "]" : ep.host) + ":" +
                                  std::to_string(ep.port);
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
        const std::string addr = local.address().is_v6() ? "[" + local.address().to_string() + "]"
                                                          : local.address().to_string();
        bound_.push_back((ep.tls ? "https://" : "http://") + addr + ":" + std::to_string(local.port()));
        tcp_acceptors_.push_back(acceptor);
        if (ep.tls) ensure_tls();
        net::co_spawn(ioc_, accept_tcp(acceptor, ep.tls), net::detached);
    }

    void bind_unix(const Endpoint& ep) {
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
            // Until the chmod below the socket has the process umask's mode; connect() needs
            // write permission, which the usual umask (022) gives nobody but the owner.
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

    void ensure_tls() {
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
                throw std::runtime_error("Cannot load the client CA '" + opts_.tls_client_ca + "': " +
                                         e.code().message() + ".");
            }
            ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
        }
    }

    bool admit() {
        if (connections_.fetch_add(1) >= opts_.max_connections) {
            connections_.fetch_sub(1);
            metrics_.connection_refused();
            return false;
        }
        metrics_.connection_opened();
        return true;
    }
    void release() {
        connections_.fetch_sub(1);
        metrics_.connection_closed();
    }

    awaitable<void> accept_tcp(std::shared_ptr<tcp::acceptor> acceptor, bool tls) {
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
            if (!admit()) {
                if (tls)  // no plaintext answer on a TLS port: just close
                    sock.close(ec);
                else
                    net::co_spawn(sock.get_executor(), refuse(TcpStream(std::move(sock))), net::detached);
                continue;
            }
            ConnInfo info;
            beast::error_code rec;
            const auto remote = sock.remote_endpoint(rec);
            info.peer = rec ? "?" : remote.address().to_string() + ":" + std::to_string(remote.port());
            info.needs_token = true;
            auto ex = sock.get_executor();
            if (tls)
                net::co_spawn(ex, serve_tls(TlsStream(std::move(sock), *tls_), std::move(info)), net::detached);
            else
                net::co_spawn(ex, serve_plain(TcpStream(std::move(sock)), std::move(info)), net::detached);
        }
    }

    awaitable<void> accept_unix(std::shared_ptr<unix_proto::acceptor> acceptor) {
        for (;;) {
            unix_proto::socket sock(net::make_strand(ioc_));
            beast::error_code ec;
            co_await acceptor->async_accept(sock, net::redirect_error(use_awaitable, ec));
            if (ec == net::error::operation_aborted || !acceptor->is_open()) co_return;
            if (ec) {
                spdlog::warn("Accepting a connection failed: {}.", ec.message());
                continue;
            }
            if (!admit()) {
                net::co_spawn(sock.get_executor(), refuse(UnixStream(std::move(sock))), net::detached);
                continue;
            }
            ConnInfo info;
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
    awaitable<void> refuse(Stream stream) {
        Request req;
        req.request_id = new_request_id();
        beast::error_code ec;
        co_await write_response(stream, req,
                                error_response(ApiError(ErrorCode::too_many_connections,
                                                        "The server has too many open connections; try again shortly.")),
                                false, ec);
        co_await close_stream(stream);
    }

    template <class Stream>
    awaitable<void> serve_plain(Stream stream, ConnInfo info) {
        co_await serve(stream, info);
        co_await close_stream(stream);
        release();
    }

    awaitable<void> serve_tls(TlsStream stream, ConnInfo info) {
        beast::error_code ec;
        beast::get_lowest_layer(stream).expires_after(opts_.header_timeout);
        co_await stream.async_handshake(ssl::stream_base::server, net::redirect_error(use_awaitable, ec));
        if (ec) {
            spdlog::info("TLS handshake with {} failed: {}.", info.peer, ec.message());
            beast::get_lowest_layer(stream).close();
            release();
            co_return;
        }
        co_await serve(stream, info);
        co_await close_stream(stream);
        release();
    }

    // ---- one connection --------------------------------------------------------------------

    template <class Stream>
    awaitable<void> serve(Stream& stream, const ConnInfo& info) {
        beast::flat_buffer buffer;
        bool first = true;
        while (!stopping_) {
            http::request_parser<http::string_body> parser;
            parser.header_limit(opts_.max_header_bytes);
            parser.body_limit(opts_.max_body_bytes);
            beast::error_code ec;
            beast::get_lowest_layer(stream).expires_after(first ? opts_.header_timeout : opts_.idle_timeout);
            first = false;
            co_await http::async_read_header(stream, buffer, parser, net::redirect_error(use_awaitable, ec));
            Request bare;
            bare.request_id = new_request_id();
            if (ec) {
                if (ec == http::error::header_limit) {
                    co_await answer_and_close(stream, bare, info,
                                              ApiError(ErrorCode::header_too_large,
                                                       "The request headers exceed " +
                                                           std::to_string(opts_.max_header_bytes) + " bytes."));
                } else if (ec == http::error::body_limit) {
                    co_await answer_and_close(stream, bare, info, body_too_large());
                } else if (!quiet_error(ec) && buffer.size() > 0) {
                    co_await answer_and_close(stream, bare, info,
                                              ApiError(ErrorCode::invalid_request,
                                                       "The request is not valid HTTP/1.1: " + ec.message() + "."));
                }
                co_return;
            }
            auto& head = parser.get();
            if (parser.content_length() && *parser.content_length() > opts_.max_body_bytes) {
                co_await answer_and_close(stream, bare, info, body_too_large());
                co_return;
            }
            if (beast::iequals(head[http::field::expect], "100-continue")) {
                http::response<http::empty_body> cont{http::status::continue_, 11};
                beast::get_lowest_layer(stream).expires_after(opts_.request_timeout);
                co_await http::async_write(stream, cont, net::redirect_error(use_awaitable, ec));
                if (ec) co_return;
            }
            beast::get_lowest_layer(stream).expires_after(opts_.request_timeout);
            co_await http::async_read(stream, buffer, parser, net::redirect_error(use_awaitable, ec));
            if (ec) {
                if (ec == http::error::body_limit) co_await answer_and_close(stream, bare, info, body_too_large());
                co_return;
            }

            const auto started = std::chrono::steady_clock::now();
            Request req = to_request(parser.get(), info);
            std::string route = "unmatched";
            Response res = co_await handle(req, info, route);
            if (res.event_stream && req.method == "HEAD") {
                res.event_stream.reset();  // HEAD: the stream's head, no stream
                res.body.clear();
                res.shared_body.reset();
            }
            if (res.event_stream) {
                access_log(req, info, 200, 0, started);
                metrics_.observe_request(req.method, route, 200, 0);
                co_await stream_events(stream, req, info, *res.event_stream);
                co_return;
            }
            const bool keep = parser.get().keep_alive() && !stopping_;
            const int status = res.status;
            const std::size_t bytes = res.bytes().size();
            // Counted before the answer leaves, so a client never sees an answer its metrics miss.
            metrics_.observe_request(req.method, route, status,
                                     std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
            co_await write_response(stream, req, std::move(res), keep, ec);
            access_log(req, info, status, bytes, started);
            if (ec || !keep) co_return;
        }
    }

    ApiError body_too_large() const {
        return ApiError(ErrorCode::body_too_large,
                        "The request body exceeds " + std::to_string(opts_.max_body_bytes) + " bytes.",
                        {{"limit", opts_.max_body_bytes}});
    }

    template <class Stream>
    awaitable<void> answer_and_close(Stream& stream, Request& req, const ConnInfo& info, const ApiError& e) {
        const auto started = std::chrono::steady_clock::now();
        Response res = error_response(e);
        const int status = res.status;
        beast::error_code ec;
        co_await write_response(stream, req, std::move(res), false, ec);
        req.method = "-";
        req.target = "-";
        access_log(req, info, status, 0, started);
    }

    Request to_request(http::request<http::string_body>& h, const ConnInfo&) {
        Request req;
        req.method = std::string(h.method_string());
        req.target = std::string(h.target());
        req.headers.reserve(8);
        for (const auto& f : h) req.headers.emplace_back(lower(f.name_string()), std::string(f.value()));
        req.body = std::move(h.body());
        const std::string* rid = req.header("x-request-id");
        req.request_id = rid && is_sane_token_text(*rid, 64) ? *rid : new_request_id();
        return req;
    }

    void authorize(Request& req, const Route& route, const ConnInfo& info) {
        if (!info.needs_token) {
            req.scope = Scope::write;
            return;
        }
        req.scope = Scope::none;
        if (route.scope == Scope::none) return;
        const std::string* auth = req.header("authorization");
        if (!auth)
            throw ApiError(ErrorCode::unauthenticated, "This request needs a token: 'Authorization: Bearer <token>'.");
        if (auth->size() < 7 || !beast::iequals(std::string_view(*auth).substr(0, 7), "bearer "))
            throw ApiError(ErrorCode::unauthenticated, "The Authorization header must be 'Bearer <token>'.");
        std::string_view token = std::string_view(*auth).substr(7);
        while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
        const Scope granted = is_sane_token_text(token, 512) ? backend_.authenticate(std::string(token)) : Scope::none;
        if (granted == Scope::none) throw ApiError(ErrorCode::unauthenticated, "The bearer token is not valid.");
        if (static_cast<int>(granted) < static_cast<int>(route.scope))
            throw ApiError(ErrorCode::forbidden, "The token's scope 'read' does not allow this request.",
                           {{"required_scope", "write"}});
        req.scope = granted;
    }

    awaitable<Response> invoke(const Route& route, Request& req) {
        if (route.exec == Exec::io) co_return route.handler(req);
        co_return co_await net::co_spawn(
            blocking_.get_executor(), [&route, &req]() -> awaitable<Response> { co_return route.handler(req); },
            use_awaitable);
    }

    awaitable<Response> handle(Request& req, const ConnInfo& info, std::string& route_name) {
        try {
            parse_target(req.target, req.path, req.query);
            auto m = router_.match(req.method, req.path);
            if (!m.route) {
                if (!m.allowed.empty())
                    throw ApiError(ErrorCode::method_not_allowed,
                                   "The method " + req.method + " is not allowed on '" + req.path + "'.",
                                   {{"allow", m.allowed}});
                throw ApiError(ErrorCode::not_found, "There is nothing at '" + req.path + "'.");
            }
            const Route& route = *m.route;
            route_name = route.pattern;
            req.params = std::move(m.params);
            authorize(req, route, info);

            std::optional<std::string> idem_key;  // claimed: released when this scope ends
            struct KeyClaim {
                Impl* self;
                const std::optional<std::string>& key;
                ~KeyClaim() {
                    if (key) self->release_idempotency_key(*key);
                }
            } claim{this, idem_key};
            std::string fingerprint;
            if (req.method == "POST") {
                if (const std::string* key = req.header("idempotency-key")) {
                    if (!is_sane_token_text(*key, 255))
                        throw ApiError(ErrorCode::invalid_request,
                                       "The Idempotency-Key header must be 1 to 255 visible ASCII characters.",
                                       {{"field", "Idempotency-Key"}});
                    if (!claim_idempotency_key(*key))
                        throw ApiError(ErrorCode::idempotency_conflict,
                                       "A request with the Idempotency-Key '" + *key +
                                           "' is still being answered; retry when it has finished.");
                    idem_key = *key;
                    fingerprint = request_fingerprint(req);
                    if (auto stored = backend_.find_idempotent(*key)) {
                        if (stored->request_hash != fingerprint)
                            throw ApiError(ErrorCode::idempotency_conflict,
                                           "The Idempotency-Key '" + *key +
                                               "' was used for a different request in the last 24 hours.");
                        Response replay = json_response(stored->status, stored->body);
                        if (!stored->location.empty()) replay.headers.emplace_back("Location", stored->location);
                        replay.headers.emplace_back("Idempotent-Replayed", "true");
                        co_return replay;
                    }
                }
            }

            // A cacheable read reuses the answer computed at the same generation; the
            // generation is read before computing, so a change during it is never hidden.
            const std::uint64_t generation =
                route.cacheable && (req.method == "GET" || req.method == "HEAD") ? backend_.generation() : 0;
            if (generation != 0)
                if (auto hit = cache_.get(req.target, generation)) co_return std::move(*hit);

            Response res = co_await invoke(route, req);
            if (res.long_poll) res = co_await long_poll(route, req, std::move(res));
            if (generation != 0 && res.status == 200 && !res.event_stream) cache_.put(req.target, generation, res);

            if (idem_key && res.status >= 200 && res.status < 300) {
                StoredResponse s;
                s.request_hash = fingerprint;
                s.status = res.status;
                s.body = res.bytes();
                for (const auto& [k, v] : res.headers)
                    if (k == "Location") s.location = v;
                backend_.remember_idempotent(*idem_key, s);
            }
            co_return res;
        } catch (const ApiError& e) {
            co_return error_response(e);
        } catch (const std::exception& e) {
            spdlog::error("req={} {} {} failed: {}", req.request_id, req.method, req.path, e.what());
            co_return error_response(ApiError(ErrorCode::internal, "An internal error occurred (request " +
                                                                       req.request_id + "); the daemon's log has the details."));
        }
    }

    // A hub subscription that ends with its scope, also when a coroutine is destroyed unfinished
    // (the io_context going away).
    struct Subscription {
        EventHub& hub;
        std::shared_ptr<EventHub::Subscriber> s;
        ~Subscription() { hub.unsubscribe(s); }
    };

    // The hub's wake-up for a waiting coroutine: cancel its timer on its own executor. The timer
    // is held weakly: the hub must never keep a timer alive past its coroutine.
    static std::function<void()> wake(const std::shared_ptr<net::steady_timer>& timer, net::any_io_executor ex) {
        std::weak_ptr<net::steady_timer> weak = timer;
        return [weak, ex] {
            net::post(ex, [weak] {
                if (auto t = weak.lock()) t->cancel();
            });
        };
    }

    bool still_authorized(const Request& req, const ConnInfo& info) {
        if (!info.needs_token) return true;
        const std::string* auth = req.header("authorization");
        if (!auth || auth->size() < 7) return false;
        std::string_view token = std::string_view(*auth).substr(7);
        while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
        return backend_.authenticate(std::string(token)) != Scope::none;
    }

    // One request per Idempotency-Key at a time: a concurrent retry must not run it twice.
    bool claim_idempotency_key(const std::string& key) {
        std::lock_guard lock(idem_mu_);
        return idem_inflight_.insert(key).second;
    }
    void release_idempotency_key(const std::string& key) {
        std::lock_guard lock(idem_mu_);
        idem_inflight_.erase(key);
    }

    // Waits until the handler stops asking to wait (an event about its key arrived and the
    // job is done) or the deadline passes.
    awaitable<Response> long_poll(const Route& route, Request& req, Response res) {
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

    template <class Stream>
    awaitable<void> stream_events(Stream& stream, const Request& req, const ConnInfo& info, EventStream es) {
        http::response<http::empty_body> head{http::status::ok, 11};
        head.set(http::field::server, opts_.server_name);
        head.set(http::field::content_type, "text/event-stream; charset=utf-8");
        head.set(http::field::cache_control, "no-store");
        head.set("X-Accel-Buffering", "no");
        head.set("X-Request-Id", req.request_id);
        head.keep_alive(true);
        head.chunked(true);
        // Subscribe before the head goes out: a client that sees the head may rely on every
        // event published after it.
        auto ex = co_await net::this_coro::executor;
        auto timer = std::make_shared<net::steady_timer>(ex);
        bool missed = false;
        Subscription sub{hub_, hub_.subscribe(wake(timer, ex), {},
                                              es.last_event_id ? es.last_event_id
                                                               : std::optional<std::uint64_t>(hub_.last_id()),
                                              &missed)};
        http::response_serializer<http::empty_body> sr{head};
        beast::error_code ec;
        beast::get_lowest_layer(stream).expires_after(opts_.request_timeout);
        co_await http::async_write_header(stream, sr, net::redirect_error(use_awaitable, ec));
        if (ec) co_return;
        std::string text = "retry: 2000\n\n";
        if (missed && es.last_event_id) text += ": events after the given id are no longer available; re-read state\n\n";
        while (!stopping_) {
            if (sub.s->overflowed()) {
                spdlog::info("req={} dropped an event-stream consumer that fell behind.", req.request_id);
                break;
            }
            for (const auto& e : sub.s->take())
                text += "id: " + std::to_string(e->id) + "\nevent: " + e->type + "\ndata: " + e->data + "\n\n";
            if (text.empty()) {
                timer->expires_after(opts_.heartbeat);
                co_await timer->async_wait(net::redirect_error(use_awaitable, ec));
                if (ec) continue;  // woken by an event
                // A quiet moment: is the caller's token still valid (revoked tokens end streams)?
                if (!still_authorized(req, info)) {
                    spdlog::info("req={} ended an event stream whose token is no longer valid.", req.request_id);
                    break;
                }
                text = ": heartbeat\n\n";
                continue;
            }
            beast::get_lowest_layer(stream).expires_after(opts_.request_timeout);
            co_await net::async_write(stream, http::make_chunk(net::buffer(text)), net::redirect_error(use_awaitable, ec));
            if (ec) break;
            text.clear();
        }
        beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
        co_await net::async_write(stream, http::make_chunk_last(), net::redirect_error(use_awaitable, ec));
    }

    template <class Stream>
    awaitable<void> write_response(Stream& stream, const Request& req, Response r, bool keep_alive,
                                   beast::error_code& ec) {
        // The body goes out from where it lies (the answer's string or the cache's shared copy,
        // both alive in `r` for this whole coroutine): a buffer_body points at it, and header and
        // body leave in one gathered write.
        const std::string* body = &r.bytes();
        http::response<http::buffer_body> res{static_cast<http::status>(r.status), 11};
        res.set(http::field::server, opts_.server_name);
        res.set(http::field::content_type, r.content_type);
        res.set("X-Request-Id", req.request_id);
        res.set("X-Content-Type-Options", "nosniff");
        bool cache_set = false;
        for (const auto& [k, v] : r.headers) {
            res.set(k, v);
            cache_set = cache_set || beast::iequals(k, "Cache-Control");
        }
        if (!cache_set) res.set(http::field::cache_control, "no-store");
        if (r.status == 401) res.set(http::field::www_authenticate, "Bearer realm=\"snapvirt\"");
        res.keep_alive(keep_alive);
        res.content_length(body->size());
        const bool head_only = req.method == "HEAD";
        res.body().data = head_only || body->empty() ? nullptr : const_cast<char*>(body->data());
        res.body().size = head_only ? 0 : body->size();
        res.body().more = false;
        beast::get_lowest_layer(stream).expires_after(opts_.request_timeout);
        http::response_serializer<http::buffer_body> sr{res};
        if (head_only)
            co_await http::async_write_header(stream, sr, net::redirect_error(use_awaitable, ec));
        else
            co_await http::async_write(stream, sr, net::redirect_error(use_awaitable, ec));
    }

    void access_log(const Request& req, const ConnInfo& info, int status, std::size_t bytes,
                    std::chrono::steady_clock::time_point started) {
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
        spdlog::info("access req={} peer={} \"{} {}\" {} {}B {:.1f}ms", req.request_id, info.peer, req.method,
                     req.target, status, bytes, ms);
    }

    ServerOptions opts_;
    const Router& router_;
    Backend& backend_;
    EventHub& hub_;
    Metrics& metrics_;
    net::io_context ioc_{static_cast<int>(opts_.io_threads)};
    std::optional<net::executor_work_guard<net::io_context::executor_type>> work_{ioc_.get_executor()};
    net::thread_pool blocking_;
    std::optional<ssl::context> tls_;
    std::vector<std::shared_ptr<tcp::acceptor>> tcp_acceptors_;
    std::vector<std::shared_ptr<unix_proto::acceptor>> unix_acceptors_;
    std::vector<std::string> unix_paths_;
    std::vector<std::string> bound_;
    std::vector<std::thread> threads_;
    ResponseCache cache_;
    std::mutex idem_mu_;
    std::set<std::string> idem_inflight_;
    std::atomic<std::size_t> connections_{0};
    std::atomic<bool> stopping_{false};
    std::atomic<bool> stopped_{false};
};

Server::Server(ServerOptions options, const Router& router, Backend& backend, EventHub& hub, Metrics& metrics)
    : impl_(std::make_unique<Impl>(std::move(options), router, backend, hub, metrics)) {}
Server::~Server() = default;
void Server::start() { impl_->start(); }
void Server::stop_accepting() { impl_->stop_accepting(); }
void Server::stop() { impl_->stop(); }
void Server::post(std::function<void()> fn) { impl_->post(std::move(fn)); }
std::vector<std::string> Server::endpoints() const { return impl_->endpoints(); }

}  // namespace snapvirt::api
