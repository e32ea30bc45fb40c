#include "cli/client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace snapvirt::client {

namespace {

using Clock = std::chrono::steady_clock;

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string ssl_error() {
    char buf[256];
    const unsigned long e = ERR_get_error();
    if (!e) return "TLS error";
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

int remaining_ms(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left < 0 ? 0 : static_cast<int>(left);
}

void wait_fd(int fd, short events, Clock::time_point deadline, const char* what) {
    for (;;) {
        pollfd p{fd, events, 0};
        const int rc = ::poll(&p, 1, remaining_ms(deadline));
        if (rc > 0) return;
        if (rc == 0) throw TransportError(std::string("Timed out ") + what + ".");
        if (errno != EINTR) throw TransportError(std::string("poll failed: ") + std::strerror(errno));
    }
}

}  // namespace

struct Connection::Tls {
    SSL_CTX* ctx = nullptr;
    SSL* ssl = nullptr;
    ~Tls() {
        if (ssl) SSL_free(ssl);
        if (ctx) SSL_CTX_free(ctx);
    }
};

Url Url::parse(const std::string& text) {
    Url u;
    if (text.rfind("unix:", 0) == 0) {
        u.kind = Kind::unix_socket;
        u.path = text.substr(5);
        if (u.path.rfind("//", 0) == 0) u.path = u.path.substr(2);
        if (u.path.empty()) throw TransportError("'" + text + "' names no socket path.");
        return u;
    }
    std::string rest;
    if (text.rfind("http://", 0) == 0) {
        rest = text.substr(7);
    } else if (text.rfind("https://", 0) == 0) {
        u.kind = Kind::https;
        u.port = 443;
        rest = text.substr(8);
    } else {
        throw TransportError("'" + text + "' is not an http://, https:// or unix: URL.");
    }
    rest = rest.substr(0, rest.find('/'));
    if (!rest.empty() && rest.front() == '[') {
        const auto close = rest.find(']');
        if (close == std::string::npos) throw TransportError("'" + text + "' has an unclosed IPv6 address.");
        u.host = rest.substr(1, close - 1);
        if (close + 1 < rest.size() && rest[close + 1] == ':') u.port = static_cast<std::uint16_t>(std::stoi(rest.substr(close + 2)));
    } else {
        const auto colon = rest.rfind(':');
        u.host = rest.substr(0, colon);
        if (colon != std::string::npos) u.port = static_cast<std::uint16_t>(std::stoi(rest.substr(colon + 1)));
    }
    if (u.host.empty()) throw TransportError("'" + text + "' names no host.");
    return u;
}

std::string Url::to_string() const {
    if (kind == Kind::unix_socket) return "unix:" + path;
    const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return (kind == Kind::https ? "https://" : "http://") + h + ":" + std::to_string(port);
}

const std::string* Response::header(const std::string& name) const {
    const std::string n = lower(name);
    for (const auto& [k, v] : headers)
        if (k == n) return &v;
    return nullptr;
}

nlohmann::json Response::json() const {
    try {
        return nlohmann::json::parse(body);
    } catch (const nlohmann::json::exception&) {
        throw TransportError("The server answered " + std::to_string(status) + " with a body that is not JSON: " +
                             body.substr(0, 200));
    }
}

Connection::Connection(const Url& url, const TlsOptions& tls, std::chrono::milliseconds timeout) : timeout_(timeout) {
    const auto deadline = Clock::now() + timeout;
    if (url.kind == Url::Kind::unix_socket) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (url.path.size() >= sizeof addr.sun_path) throw TransportError("The socket path is too long.");
        std::strcpy(addr.sun_path, url.path.c_str());
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            const int err = errno;
            ::close(fd_);
            fd_ = -1;
            throw TransportError("Cannot connect to " + url.to_string() + ": " + std::strerror(err) + ".");
        }
        host_header_ = "localhost";
        return;
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const int gai = ::getaddrinfo(url.host.c_str(), std::to_string(url.port).c_str(), &hints, &res);
    if (gai != 0) throw TransportError("Cannot resolve '" + url.host + "': " + gai_strerror(gai) + ".");
    std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owner(res, freeaddrinfo);
    std::string last_error = "no address";
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        fd_ = ::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd_ < 0) continue;
        int rc = ::connect(fd_, ai->ai_addr, ai->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
            try {
                wait_fd(fd_, POLLOUT, deadline, "connecting");
                int err = 0;
                socklen_t len = sizeof err;
                ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
                rc = err == 0 ? 0 : -1;
                errno = err;
            } catch (const TransportError& e) {
                last_error = e.what();
                rc = -1;
                errno = ETIMEDOUT;
            }
        }
        if (rc == 0) break;
        last_error = std::strerror(errno);
        ::close(fd_);
        fd_ = -1;
    }
    if (fd_ < 0) throw TransportError("Cannot connect to " + url.to_string() + ": " + last_error + ".");
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    host_header_ = (url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host) + ":" + std::to_string(url.port);

    if (url.kind == Url::Kind::https) {
        tls_ = std::make_unique<Tls>();
        tls_->ctx = SSL_CTX_new(TLS_client_method());
        if (!tls_->ctx) throw TransportError("Cannot create a TLS context: " + ssl_error());
        SSL_CTX_set_min_proto_version(tls_->ctx, TLS1_2_VERSION);
        if (tls.verify) {
            SSL_CTX_set_verify(tls_->ctx, SSL_VERIFY_PEER, nullptr);
            if (!tls.ca_file.empty() ? SSL_CTX_load_verify_locations(tls_->ctx, tls.ca_file.c_str(), nullptr) != 1
                                     : SSL_CTX_set_default_verify_paths(tls_->ctx) != 1)
                throw TransportError("Cannot load the CA certificates: " + ssl_error());
        }
        if (!tls.cert_file.empty()) {
            if (SSL_CTX_use_certificate_chain_file(tls_->ctx, tls.cert_file.c_str()) != 1 ||
                SSL_CTX_use_PrivateKey_file(tls_->ctx, (tls.key_file.empty() ? tls.cert_file : tls.key_file).c_str(),
                                            SSL_FILETYPE_PEM) != 1)
                throw TransportError("Cannot load the client certificate: " + ssl_error());
        }
        tls_->ssl = SSL_new(tls_->ctx);
        SSL_set_fd(tls_->ssl, fd_);
        SSL_set_tlsext_host_name(tls_->ssl, url.host.c_str());
        if (tls.verify) {
            X509_VERIFY_PARAM* param = SSL_get0_param(tls_->ssl);
            in6_addr a6{};
            in_addr a4{};
            if (inet_pton(AF_INET, url.host.c_str(), &a4) == 1 || inet_pton(AF_INET6, url.host.c_str(), &a6) == 1)
                X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str());
            else
                X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), 0);
        }
        timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (SSL_connect(tls_->ssl) != 1) throw TransportError("The TLS handshake with " + url.to_string() + " failed: " + ssl_error());
    }
}

Connection::~Connection() {
    if (tls_ && tls_->ssl) SSL_shutdown(tls_->ssl);
    if (fd_ >= 0) ::close(fd_);
}

void Connection::write_all(const std::string& data) {
    std::size_t off = 0;
    while (off < data.size()) {
        ssize_t n;
        if (tls_) {
            n = SSL_write(tls_->ssl, data.data() + off, static_cast<int>(data.size() - off));
            if (n <= 0) throw TransportError("Sending the request failed: " + ssl_error());
        } else {
            n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                throw TransportError(std::string("Sending the request failed: ") + std::strerror(errno) + ".");
            }
        }
        off += static_cast<std::size_t>(n);
    }
}

std::size_t Connection::read_some(char* buf, std::size_t n, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    if (tls_) {
        if (SSL_pending(tls_->ssl) == 0) wait_fd(fd_, POLLIN, deadline, "waiting for the server");
        const int r = SSL_read(tls_->ssl, buf, static_cast<int>(n));
        if (r > 0) return static_cast<std::size_t>(r);
        const int err = SSL_get_error(tls_->ssl, r);
        if (err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_SYSCALL) return 0;
        throw TransportError("Reading the response failed: " + ssl_error());
    }
    for (;;) {
        wait_fd(fd_, POLLIN, deadline, "waiting for the server");
        const ssize_t r = ::recv(fd_, buf, n, 0);
        if (r >= 0) return static_cast<std::size_t>(r);
        if (errno == EINTR) continue;
        if (errno == ECONNRESET) return 0;
        throw TransportError(std::string("Reading the response failed: ") + std::strerror(errno) + ".");
    }
}

std::string Connection::read_line(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        const auto nl = buffer_.find("\r\n");
        if (nl != std::string::npos) {
            std::string line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 2);
            return line;
        }
        char tmp[16384];
        const std::size_t n = read_some(tmp, sizeof tmp, std::chrono::milliseconds(remaining_ms(deadline)));
        if (n == 0) throw TransportError("The server closed the connection.");
        buffer_.append(tmp, n);
    }
}

std::string Connection::read_exact(std::size_t n, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (buffer_.size() < n) {
        char tmp[65536];
        const std::size_t got = read_some(tmp, sizeof tmp, std::chrono::milliseconds(remaining_ms(deadline)));
        if (got == 0) throw TransportError("The server closed the connection in the middle of a response.");
        buffer_.append(tmp, got);
    }
    std::string out = buffer_.substr(0, n);
    buffer_.erase(0, n);
    return out;
}

Response Connection::read_head(std::chrono::milliseconds timeout) {
    Response r;
    std::string status_line;
    do {
        status_line = read_line(timeout);
        if (status_line.rfind("HTTP/1.", 0) != 0) throw TransportError("The server's answer is not HTTP: " + status_line);
        r.status = std::atoi(status_line.c_str() + 9);
        r.headers.clear();
        for (;;) {
            std::string line = read_line(timeout);
            if (line.empty()) break;
            const auto colon = line.find(':');
            if (colon == std::string::npos) continue;
            std::string value = line.substr(colon + 1);
            value.erase(0, value.find_first_not_of(" \t"));
            r.headers.emplace_back(lower(line.substr(0, colon)), value);
        }
    } while (r.status == 100);
    return r;
}

std::optional<std::string> Connection::next_chunk(std::chrono::milliseconds timeout) {
    const std::string size_line = read_line(timeout);
    const std::size_t size = std::stoul(size_line, nullptr, 16);
    if (size == 0) {
        read_line(timeout);
        return std::nullopt;
    }
    std::string data = read_exact(size, timeout);
    read_line(timeout);
    return data;
}

Response Connection::request(const std::string& method, const std::string& target, const std::string& body,
                             const Headers& headers) {
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: " + host_header_ + "\r\n";
    bool has_type = false;
    for (const auto& [k, v] : headers) {
        req += k + ": " + v + "\r\n";
        has_type = has_type || lower(k) == "content-type";
    }
    if (!body.empty() && !has_type) req += "Content-Type: application/json\r\n";
    if (!body.empty() || method == "POST" || method == "PATCH" || method == "PUT")
        req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    req += "\r\n" + body;
    write_all(req);
    Response r = read_head(timeout_);
    const std::string* te = r.header("transfer-encoding");
    const std::string* cl = r.header("content-length");
    if (method == "HEAD" || r.status == 204 || r.status == 304) return r;
    if (te && lower(*te).find("chunked") != std::string::npos) {
        while (auto chunk = next_chunk(timeout_)) r.body += *chunk;
    } else if (cl) {
        r.body = read_exact(std::stoul(*cl), timeout_);
    } else {
        r.body = read_raw(timeout_);
    }
    return r;
}

void Connection::send_raw(const std::string& bytes) { write_all(bytes); }

std::string Connection::read_raw(std::chrono::milliseconds timeout) {
    std::string out = std::move(buffer_);
    buffer_.clear();
    const auto deadline = Clock::now() + timeout;
    try {
        for (;;) {
            char tmp[16384];
            const std::size_t n = read_some(tmp, sizeof tmp, std::chrono::milliseconds(remaining_ms(deadline)));
            if (n == 0) break;
            out.append(tmp, n);
        }
    } catch (const TransportError&) {
        if (out.empty()) throw;
    }
    return out;
}

Response Connection::open_stream(const std::string& target, const Headers& headers) {
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: " + host_header_ + "\r\nAccept: text/event-stream\r\n";
    for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
    req += "\r\n";
    write_all(req);
    Response r = read_head(timeout_);
    const std::string* te = r.header("transfer-encoding");
    chunked_stream_ = te && lower(*te).find("chunked") != std::string::npos;
    if (r.status != 200) {
        if (const std::string* cl = r.header("content-length")) r.body = read_exact(std::stoul(*cl), timeout_);
    }
    return r;
}

std::optional<SseEvent> Connection::next_event(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        // One event ends at a blank line.
        const auto end = stream_text_.find("\n\n");
        if (end != std::string::npos) {
            const std::string block = stream_text_.substr(0, end);
            stream_text_.erase(0, end + 2);
            SseEvent ev;
            bool any = false;
            std::size_t i = 0;
            while (i <= block.size()) {
                const auto nl = block.find('\n', i);
                const std::string line = block.substr(i, nl == std::string::npos ? std::string::npos : nl - i);
                i = nl == std::string::npos ? block.size() + 1 : nl + 1;
                if (line.empty() || line[0] == ':') continue;
                const auto colon = line.find(':');
                const std::string field = line.substr(0, colon);
                std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
                if (!value.empty() && value[0] == ' ') value.erase(0, 1);
                if (field == "id") ev.id = value, any = true;
                if (field == "event") ev.type = value, any = true;
                if (field == "data") ev.data += (ev.data.empty() ? "" : "\n") + value, any = true;
            }
            if (any && !ev.type.empty()) return ev;
            continue;
        }
        const int left = remaining_ms(deadline);
        if (left <= 0) return std::nullopt;
        try {
            if (chunked_stream_) {
                auto chunk = next_chunk(std::chrono::milliseconds(left));
                if (!chunk) throw TransportError("The event stream ended.");
                stream_text_ += *chunk;
            } else {
                char tmp[16384];
                const std::size_t n = read_some(tmp, sizeof tmp, std::chrono::milliseconds(left));
                if (n == 0) throw TransportError("The event stream ended.");
                stream_text_.append(tmp, n);
            }
        } catch (const TransportError& e) {
            if (std::string(e.what()).rfind("Timed out", 0) == 0) return std::nullopt;
            throw;
        }
    }
}

Client::Client(Url url, std::string token, TlsOptions tls, std::chrono::milliseconds timeout)
    : url_(std::move(url)), token_(std::move(token)), tls_(std::move(tls)), timeout_(timeout) {}

Response Client::send(const std::string& method, const std::string& target, const std::string& body,
                      const Headers& headers) const {
    Connection c(url_, tls_, timeout_);
    Headers h = headers;
    if (!token_.empty()) h.emplace_back("Authorization", "Bearer " + token_);
    h.emplace_back("Connection", "close");
    return c.request(method, target, body, h);
}

Response Client::get(const std::string& target, const Headers& headers) const { return send("GET", target, {}, headers); }
Response Client::post(const std::string& target, const nlohmann::json& body, const Headers& headers) const {
    return send("POST", target, body.is_null() ? std::string() : body.dump(), headers);
}
Response Client::patch(const std::string& target, const nlohmann::json& body, const Headers& headers) const {
    return send("PATCH", target, body.dump(), headers);
}
Response Client::del(const std::string& target, const Headers& headers) const { return send("DELETE", target, {}, headers); }

std::string escape(const std::string& s) {
    static const char* hex = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

}  // namespace snapvirt::client
