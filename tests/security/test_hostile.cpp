// Hostile clients against the running daemon: idle and slow connections, the connection cap,
// broken and tricky HTTP, deeply nested JSON; the daemon must keep serving and log no secret.

#include "tests/security/security_support.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <thread>

using namespace snapvirt;
using namespace snapvirt::sec;
using namespace std::chrono_literals;
using namespace std::string_literals;

namespace {

// Sends raw bytes on a fresh connection and returns what comes back until the server closes
// (or `wait` passes).
std::string raw_exchange(std::uint16_t port, const std::string& bytes, std::chrono::milliseconds wait = 1500ms) {
    client::Connection c(client::Url::parse("http://127.0.0.1:" + std::to_string(port)), {}, wait);
    c.send_raw(bytes);
    try {
        return c.read_raw(wait);
    } catch (const client::TransportError&) {
        return {};
    }
}

int status_of(const std::string& response) {
    if (response.rfind("HTTP/1.1 ", 0) != 0) return -1;
    return std::atoi(response.c_str() + 9);
}

void idle_sockets_do_not_block(const std::function<client::Client()>& make, std::uint16_t port) {
    Fds idle;
    for (int i = 0; i < 200; ++i) {
        const int fd = connect_tcp(port);
        REQUIRE(fd >= 0);
        idle.fds.push_back(fd);
    }
    std::this_thread::sleep_for(200ms);
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(make().get("/v1/instances").status == 200);
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
    // The header deadline (3 s here) closes every idle one: all within 6 s of opening.
    const auto deadline = t0 + 6s;
    int closed = 0;
    for (int fd : idle.fds) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (peer_closed(fd, std::max(left, std::chrono::milliseconds(0)))) ++closed;
    }
    CHECK(closed == 200);
    CHECK(make().get("/v1/instances").status == 200);
}

}  // namespace

TEST_CASE("200 idle connections do not stop a normal request, over TCP and over TLS", "[security][limits]") {
    SECTION("TCP") {
        test::DaemonOptions o;
        o.config = "[server]\nheader_timeout_s = 3\n";
        test::Daemon d(o);
        idle_sockets_do_not_block([&] { return d.client(); }, d.url().port);
        check_log_hygiene(d.log(), {d.token()});
    }
    SECTION("TLS (sockets that never start the handshake)") {
        auto t = start_tls_daemon(false, "header_timeout_s = 3\n");
        idle_sockets_do_not_block([&] { return t.as(t.admin_token); }, t.url.port);
        check_log_hygiene(t.daemon->log(), {t.admin_token});
    }
}

TEST_CASE("A client that trickles its headers is cut off at the header deadline", "[security][limits]") {
    test::DaemonOptions o;
    o.config = "[server]\nheader_timeout_s = 2\n";
    test::Daemon d(o);
    const int fd = connect_tcp(d.url().port);
    REQUIRE(fd >= 0);
    Fds owner{{fd}};
    const std::string head = "GET /v1/instances HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    REQUIRE(::send(fd, head.data(), head.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(head.size()));
    const auto t0 = std::chrono::steady_clock::now();
    bool closed = false;
    while (std::chrono::steady_clock::now() - t0 < 8s) {
        if (::send(fd, "a", 1, MSG_NOSIGNAL) != 1 || peer_closed(fd, 300ms)) {
            closed = true;
            break;
        }
    }
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(closed);
    CHECK(took < 4s);
    CHECK(d.client().get("/healthz").status == 200);
}

TEST_CASE("The connection cap answers 503 and recovers when connections close", "[security][limits]") {
    test::DaemonOptions o;
    o.config = "[server]\nmax_connections = 20\nheader_timeout_s = 30\n";
    test::Daemon d(o);
    {
        Fds idle;
        for (int i = 0; i < 20; ++i) idle.fds.push_back(connect_tcp(d.url().port));
        std::this_thread::sleep_for(300ms);
        const auto r = d.client().get("/v1/instances");
        CHECK(r.status == 503);
        CHECK(r.json()["error"]["code"] == "too_many_connections");
    }
    CHECK(test::eventually([&] { return d.client().get("/v1/instances").status == 200; }, 3s));
}

TEST_CASE("Broken and tricky HTTP gets an error and never a protected answer without a token", "[security][hostile]") {
    test::Daemon d;
    const auto port = d.url().port;
    struct Case {
        const char* what;
        std::string bytes;
    };
    const std::vector<Case> cases = {
        {"absolute-form target", "GET http://127.0.0.1/v1/instances HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"asterisk target", "GET * HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"NUL escaped in the path", "GET /v1/instances/%00 HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"encoded slash", "GET /v1%2Finstances HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"bad escape", "GET /v1/instances/%zz HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"dot segments", "GET /ui/../v1/instances HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"double slash", "GET //v1/instances HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"invalid UTF-8 query name", "GET /v1/instances?%ff%fe=1 HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"lower-case method", "get /v1/instances HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"HTTP/1.0", "GET /v1/instances HTTP/1.0\r\n\r\n"},
        {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
        {"bare LF", "GET /v1/instances HTTP/1.1\nHost: x\n\n"},
        {"duplicate Content-Length", "POST /v1/instances/x/snapshots HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"},
        {"Content-Length and chunked",
         "POST /v1/instances/x/snapshots HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
        {"negative Content-Length", "POST /v1/instances/x/snapshots HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"},
        {"huge chunk size", "POST /v1/instances/x/snapshots HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"},
        {"header without a colon", "GET /v1/instances HTTP/1.1\r\nHost x\r\n\r\n"},
        {"Authorization with a NUL", "GET /v1/instances HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \0x\r\n\r\n"s},
        {"smuggled request in a body",
         "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\nGET /v1/instances HTTP/1.1\r\nHost: x\r\n\r\n"},
        {"pipelined request without a token",
         "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/instances HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"},
        {"request id with spaces", "GET /v1/instances HTTP/1.1\r\nHost: x\r\nX-Request-Id: a b c\r\nConnection: close\r\n\r\n"},
    };
    for (const auto& c : cases) {
        INFO(c.what);
        const std::string answer = raw_exchange(port, c.bytes);
        INFO(answer.substr(0, 300));
        // Nothing protected came back: no instance list, no 2xx for a protected path.
        CHECK(answer.find("\"items\"") == std::string::npos);
        const int status = status_of(answer);
        if (c.bytes.rfind("GET /healthz ", 0) == 0) {
            // An open request first: whatever follows on the connection is a request of its own
            // (401) or part of the body, never a way around the token.
            CHECK(answer.find("HTTP/1.1 200", 1) == std::string::npos);
        } else {
            CHECK((status == -1 || status >= 400));
        }
        CHECK(d.running());
    }
    CHECK(d.client().get("/healthz").status == 200);
    CHECK(d.log().find("a b c") == std::string::npos);
    check_log_hygiene(d.log(), {d.token()});
}

TEST_CASE("Deeply nested JSON in a POST does not crash the daemon", "[security][hostile]") {
    // max_body_bytes may be raised to 16 MiB; the contract's bodies are flat objects.
    test::DaemonOptions o;
    o.config = "[server]\nmax_body_bytes = 1048576\n";
    test::Daemon d(o);
    const std::size_t depth = 400000;
    const std::string arrays = std::string(depth, '[') + std::string(depth, ']');
    const std::string object = R"({"mode":)" + std::string(depth, '[') + std::string(depth, ']') + "}";
    for (const auto& [what, body] : {std::pair{"nested arrays", arrays}, std::pair{"an object holding nested arrays", object}}) {
        for (const bool idempotent : {false, true}) {
            INFO(what << (idempotent ? ", with an Idempotency-Key" : ""));
            client::Headers h = {{"Content-Type", "application/json"}};
            if (idempotent) h.emplace_back("Idempotency-Key", "deep-" + std::to_string(body.size()));
            client::Response r;
            try {
                r = d.client().send("POST", "/v1/instances/svt-sec-absent/snapshots", body, h);
            } catch (const client::TransportError& e) {
                FAIL_CHECK("transport error: " << e.what());
            }
            CHECK(r.status == 400);
            std::this_thread::sleep_for(300ms);  // a crash takes a moment to be reaped
            CHECK(d.running());
            if (!d.running()) return;
        }
    }
    CHECK(d.client().get("/healthz").status == 200);
}

TEST_CASE("Requests without a token cannot grow the metrics without bound", "[security][hostile]") {
    // The request counter is labelled by method and route. Routes are the router's patterns
    // (or "unmatched"), but the method is whatever token the client sent: unauthenticated
    // clients must not be able to mint label sets (memory, /metrics size) at will.
    test::Daemon d;
    const std::string before = d.client().get("/metrics").body;
    const int n = 300;
    for (int i = 0; i < n; ++i) {
        const std::string method = "XM" + std::to_string(i) + std::string(2000, 'Q');
        const std::string answer =
            raw_exchange(d.url().port, method + " /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 2s);
        if (i == 0) {
            INFO(answer.substr(0, 200));
            CHECK(status_of(answer) >= 400);
        }
    }
    const std::string after = d.client().get("/metrics").body;
    INFO("metrics grew from " << before.size() << " to " << after.size() << " bytes");
    CHECK(after.find("XM1" + std::string(100, 'Q')) == std::string::npos);
    CHECK(after.size() < before.size() + 64 * 1024);
    check_log_hygiene(d.log(), {d.token()});
}

TEST_CASE("JSON the parser refuses gets 400 invalid_json, never 500", "[security][hostile]") {
    // Found by the fuzzer: a number beyond double's range makes nlohmann::json throw
    // out_of_range (406), which parse_json_body does not catch.
    test::Daemon d;
    const auto c = d.client();
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"/v1/instances/svt-sec-absent/snapshots", R"({"mode":"memory","description":1e400})"},
        {"/v1/instances/svt-sec-absent/snapshots", R"({"mode":"stopped","shutdown_timeout_s":-1e999})"},
        {"/v1/snapshots/00000000-0000-4000-8000-000000000000/revert", R"({"force":1E+400})"},
        {"/v1/instances/svt-sec-absent/snapshots", R"({"mode":"memory")"},
    };
    for (const auto& [target, body] : cases) {
        INFO(target << " " << body);
        const auto r = c.send("POST", target, body, {{"Content-Type", "application/json"}});
        INFO(r.body);
        CHECK(r.status == 400);
        if (r.status >= 400 && r.status < 600) CHECK(r.json()["error"]["code"] == "invalid_json");
    }
    CHECK(d.client().send("PATCH", "/v1/snapshots/00000000-0000-4000-8000-000000000000", R"({"display_name":1e400})",
                          {{"Content-Type", "application/json"}})
              .status == 400);
}
