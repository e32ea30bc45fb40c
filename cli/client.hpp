#pragma once
// A small blocking HTTP/1.1 client for snapvirtd's API: TCP, TLS (OpenSSL) or a Unix socket,
// Content-Length and chunked bodies, Server-Sent Events. Used by the `snapvirt` CLI and by
// the end-to-end tests. One Connection is used by one thread at a time.

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace snapvirt::client {

// A transport failure (connect, TLS, timeout, malformed response): not an HTTP status.
class TransportError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct Url {
    enum class Kind { http, https, unix_socket };
    Kind kind = Kind::http;
    std::string host;
    std::uint16_t port = 80;
    std::string path;  // unix socket path

    // "http://127.0.0.1:8080", "https://host:8443", "unix:/run/snapvirt/snapvirtd.sock"
    static Url parse(const std::string& text);
    std::string to_string() const;
};

struct TlsOptions {
    std::string ca_file;    // verify the server against this CA (empty: the system's)
    std::string cert_file;  // client certificate for mutual TLS
    std::string key_file;
    bool verify = true;
};

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Response {
    int status = 0;
    Headers headers;  // names lower-case
    std::string body;

    const std::string* header(const std::string& name) const;
    nlohmann::json json() const;  // throws TransportError when the body is not JSON
};

struct SseEvent {
    std::string id;
    std::string type;
    std::string data;
};

class Connection {
public:
    Connection(const Url& url, const TlsOptions& tls = {}, std::chrono::milliseconds timeout = std::chrono::seconds(30));
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Sends one request on this (keep-alive) connection and reads the whole response.
    Response request(const std::string& method, const std::string& target, const std::string& body = {},
                     const Headers& headers = {});
    // Sends raw bytes (for tests that speak broken HTTP on purpose).
    void send_raw(const std::string& bytes);
    // Reads whatever the server sends until it closes or `timeout` passes.
    std::string read_raw(std::chrono::milliseconds timeout);

    // Starts an event stream: sends the request and reads the response head. Returns the
    // head (status, headers; body empty when the stream opened).
    Response open_stream(const std::string& target, const Headers& headers = {});
    // The next event, or nullopt when `timeout` passes first. Throws TransportError when the
    // stream ends. Comments (heartbeats) are skipped.
    std::optional<SseEvent> next_event(std::chrono::milliseconds timeout);

    void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }

private:
    std::size_t read_some(char* buf, std::size_t n, std::chrono::milliseconds timeout);
    void write_all(const std::string& data);
    std::string read_line(std::chrono::milliseconds timeout);
    std::string read_exact(std::size_t n, std::chrono::milliseconds timeout);
    Response read_head(std::chrono::milliseconds timeout);
    std::optional<std::string> next_chunk(std::chrono::milliseconds timeout);

    struct Tls;
    int fd_ = -1;
    std::unique_ptr<Tls> tls_;
    std::chrono::milliseconds timeout_;
    std::string buffer_;
    std::string host_header_;
    bool chunked_stream_ = false;
    std::string stream_text_;
};

// A convenience over Connection: one connection per call, bearer token, JSON bodies.
class Client {
public:
    explicit Client(Url url, std::string token = {}, TlsOptions tls = {},
                    std::chrono::milliseconds timeout = std::chrono::seconds(90));

    Response get(const std::string& target, const Headers& headers = {}) const;
    Response post(const std::string& target, const nlohmann::json& body, const Headers& headers = {}) const;
    Response patch(const std::string& target, const nlohmann::json& body, const Headers& headers = {}) const;
    Response del(const std::string& target, const Headers& headers = {}) const;
    Response send(const std::string& method, const std::string& target, const std::string& body,
                  const Headers& headers) const;

    const Url& url() const { return url_; }
    const std::string& token() const { return token_; }
    const TlsOptions& tls() const { return tls_; }

private:
    Url url_;
    std::string token_;
    TlsOptions tls_;
    std::chrono::milliseconds timeout_;
};

// Percent-encodes one path segment or query value.
std::string escape(const std::string& s);

}  // namespace snapvirt::client
