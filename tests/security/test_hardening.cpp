// Regression tests of the attacker's probe (issue 16): connection budgets and lock-out,
// descriptor exhaustion, revocation on a busy event stream, strict HTTP/1.1 framing, the TLS
// cipher policy, characters XML cannot carry, and what the access log quotes.

#include "tests/security/security_support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

using namespace snapvirt;
using namespace snapvirt::sec;
using namespace std::chrono_literals;
using namespace std::string_literals;

namespace {

// A TCP connection to 127.0.0.1:port from the loopback address `source` (127.0.0.2, ...),
// so that one test can play several client addresses; -1 on failure.
int connect_from(const char* source, std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in from{};
    from.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &from.sin_addr);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
        ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// Sends raw bytes on a fresh connection and returns everything that comes back until the
// server closes (or `wait` passes).
std::string raw_exchange(std::uint16_t port, const std::string& bytes, std::chrono::milliseconds wait = 2s) {
    client::Connection c(client::Url::parse("http://127.0.0.1:" + std::to_string(port)), {}, wait);
    c.send_raw(bytes);
    try {
        return c.read_raw(wait);
    } catch (const client::TransportError&) {
        return {};
    }
}

int count_of(const std::string& text, const std::string& needle) {
    int n = 0;
    for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
    return n;
}

// CPU seconds (user + system) the process has used.
double cpu_seconds(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::istringstream rest(stat.substr(stat.rfind(')') + 2));
    std::vector<std::string> f((std::istream_iterator<std::string>(rest)), std::istream_iterator<std::string>());
    // After "pid (comm) ": state is field 3, utime 14 and stime 15 (1-based) → indexes 11, 12.
    return (std::stod(f.at(11)) + std::stod(f.at(12))) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::size_t open_descriptors(pid_t pid) {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) ++n;
    return n;
}

// An RSA server certificate for 127.0.0.1 signed by the test CA (the suite's own is EC, which
// cannot show what an RSA key exchange would allow).
struct RsaServerCert {
    std::filesystem::path crt, key;
    RsaServerCert() {
        const Pki& p = pki();
        crt = p.dir / "rsa-server.crt";
        key = p.dir / "rsa-server.key";
        if (std::filesystem::exists(crt)) return;
        const std::string d = p.dir.string();
        std::string out;
        const std::string cmd = "openssl req -newkey rsa:2048 -nodes -keyout '" + d + "/rsa-server.key' -out '" + d +
                                "/rsa-server.csr' -subj /CN=127.0.0.1 && openssl x509 -req -in '" + d +
                                "/rsa-server.csr' -CA '" + d + "/ca.crt' -CAkey '" + d +
                                "/ca.key' -set_serial 9 -days 3 -out '" + d + "/rsa-server.crt' -extfile '" + d +
                                "/server.ext'";
        if (sh(cmd, &out) != 0) throw std::runtime_error("openssl failed: " + out);
    }
};

// Which cipher a TLS 1.2 handshake with only `ciphers` offered ends with ("" when refused).
std::string negotiated_cipher(std::uint16_t port, const std::string& ciphers) {
    std::string out;
    sh("timeout 10 openssl s_client -connect 127.0.0.1:" + std::to_string(port) + " -tls1_2 -cipher '" + ciphers +
           "' -CAfile '" + pki().ca_crt.string() + "' </dev/null",
       &out);
    static const std::regex re(R"(Cipher is ([A-Z0-9-]+))");
    std::smatch m;
    if (!std::regex_search(out, m, re) || m[1] == "(NONE)") return "";
    return m[1];
}

}  // namespace

TEST_CASE("Idle unauthenticated TCP clients at max_connections lock out neither the Unix socket nor a TLS client",
          "[security][limits][budget]") {
    // Four client addresses with ten idle connections each fill the TCP budget of 40; a fifth
    // address is refused at its own cap only.
    auto t = start_tls_daemon(true, "max_connections = 40\nmax_connections_per_client = 10\n"
                                    "header_timeout_s = 30\nhandshake_timeout_s = 30\n");
    Fds idle;
    for (const char* source : {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"})
        for (int i = 0; i < 10; ++i) {
            const int fd = connect_from(source, t.url.port);
            REQUIRE(fd >= 0);
            idle.fds.push_back(fd);
        }
    // An eleventh connection from one address is closed at once (its cap), without waiting.
    const int extra = connect_from("127.0.0.2", t.url.port);
    REQUIRE(extra >= 0);
    Fds extra_owner{{extra}};
    CHECK(peer_closed(extra, 2s));
    std::this_thread::sleep_for(1500ms);

    // The Unix socket has a budget of its own.
    const auto unix_answer = t.daemon->unix_client().get("/v1/instances");
    CHECK(unix_answer.status == 200);
    // A client with a certificate and a token is served: the oldest idle connection that has
    // not proven anything gives up its place.
    for (int i = 0; i < 3; ++i) {
        const auto o = call(t.as(t.admin_token), "GET", "/v1/instances");
        INFO(o.transport_error);
        CHECK(o.status == 200);
    }
    int evicted = 0;
    for (int fd : idle.fds)
        if (peer_closed(fd, 10ms)) ++evicted;
    CHECK(evicted >= 1);
    CHECK(evicted <= 4);
    check_log_hygiene(t.daemon->log(), {t.admin_token});
}

TEST_CASE("A new connection must finish its TLS handshake and send its first request within the handshake deadline",
          "[security][limits][budget]") {
    SECTION("plain TCP: the first request") {
        test::DaemonOptions o;
        o.config = "[server]\nheader_timeout_s = 30\nhandshake_timeout_s = 2\n";
        test::Daemon d(o);
        const int fd = connect_tcp(d.url().port);
        REQUIRE(fd >= 0);
        Fds owner{{fd}};
        const auto t0 = std::chrono::steady_clock::now();
        CHECK(peer_closed(fd, 6s));
        CHECK(std::chrono::steady_clock::now() - t0 < 4s);
    }
    SECTION("TLS: the handshake") {
        auto t = start_tls_daemon(false, "header_timeout_s = 30\nhandshake_timeout_s = 2\n");
        const int fd = connect_tcp(t.url.port);
        REQUIRE(fd >= 0);
        Fds owner{{fd}};
        const auto t0 = std::chrono::steady_clock::now();
        CHECK(peer_closed(fd, 6s));
        CHECK(std::chrono::steady_clock::now() - t0 < 4s);
    }
}

TEST_CASE("A failed authentication does not keep its connection", "[security][limits][budget]") {
    test::Daemon d;
    client::Connection c(d.url(), {}, 3s);
    c.send_raw("GET /v1/instances HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer svt_wrong\r\n\r\n");
    const auto t0 = std::chrono::steady_clock::now();
    const std::string answer = c.read_raw(3s);  // until the server closes
    CHECK(answer.rfind("HTTP/1.1 401", 0) == 0);
    CHECK(answer.find("Connection: close") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
}

TEST_CASE("Out of descriptors the daemon neither spins nor floods its log", "[security][limits][fd]") {
    if (::geteuid() != 0) {
        WARN("needs root (prlimit on the daemon); not run");
        return;
    }
    test::Daemon d;
    // Lower the running daemon's limit to a little above what it holds now, then open more idle
    // connections than fit: accept() fails with EMFILE while they wait in the backlog.
    const std::size_t held = open_descriptors(d.pid());
    const std::string limit = std::to_string(held + 8);
    std::string out;
    REQUIRE(sh("prlimit --pid " + std::to_string(d.pid()) + " --nofile=" + limit + ":" + limit, &out) == 0);
    const std::size_t log_before = d.log().size();
    const double cpu_before = cpu_seconds(d.pid());
    Fds idle;
    for (int i = 0; i < 60; ++i) {
        const int fd = connect_tcp(d.url().port);
        if (fd >= 0) idle.fds.push_back(fd);
    }
    std::this_thread::sleep_for(3s);
    const double cpu = cpu_seconds(d.pid()) - cpu_before;
    const std::string log = d.log().substr(log_before);
    INFO("CPU seconds in 3 s: " << cpu << "; log lines: " << count_of(log, "\n"));
    CHECK(cpu < 0.5);
    CHECK(count_of(log, "\n") < 60);
    CHECK(count_of(log, "descriptors") >= 1);
    CHECK(d.running());
    // Once the idle ones are gone the daemon serves again.
    for (int fd : idle.fds) ::close(fd);
    idle.fds.clear();
    CHECK(test::eventually([&] { return d.unix_client().get("/healthz").status == 200; }, 15s, 200ms));
}

TEST_CASE("A revoked token's busy event stream ends within a second", "[security][tokens][events]") {
    // libvirt's test driver with one running guest whose disk can take an internal snapshot.
    const auto node_dir = test::make_temp_dir("snapvirt-sec-node");
    struct Cleanup {
        std::filesystem::path dir;
        ~Cleanup() { std::filesystem::remove_all(dir); }
    } cleanup{node_dir};
    std::ofstream(node_dir / "node.xml") << R"(<node><domain type='test'><name>web1</name>
        <uuid>11111111-0000-0000-0000-0000000000a1</uuid><memory unit='MiB'>128</memory><vcpu>1</vcpu>
        <os><type>hvm</type></os><devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
        <source file='/w.qcow2'/><target dev='vda'/></disk></devices></domain></node>)";
    test::DaemonOptions o;
    o.libvirt_uri = "test://" + (node_dir / "node.xml").string();
    test::Daemon d(o);
    const std::string reader = create_token(d.state_dir(), "read", "stream-reader");
    REQUIRE(test::eventually([&] { return d.client(reader).get("/v1/instances").status == 200; }, 2s, 50ms));
    const auto taken = d.client().post("/v1/instances/web1/snapshots", {{"mode", "memory"}, {"name", "busy"}});
    INFO(taken.body);
    REQUIRE(taken.status == 202);
    const std::string snap = taken.json()["snapshot"]["id"];
    REQUIRE(test::wait_job(d.client(), taken.json()["job"]["id"], 60s)["state"] == "succeeded");

    client::Connection stream(d.url(), {}, 10s);
    REQUIRE(stream.open_stream("/v1/events", {{"Authorization", "Bearer " + reader}}).status == 200);
    std::atomic<bool> done{false};
    std::thread editor([&] {
        for (int i = 0; !done; ++i) {
            d.client().patch("/v1/snapshots/" + snap, {{"description", "edit " + std::to_string(i)}});
            std::this_thread::sleep_for(50ms);
        }
    });
    struct Join {
        std::atomic<bool>& done;
        std::thread& t;
        ~Join() {
            done = true;
            t.join();
        }
    } join{done, editor};
    // Busy: events arrive.
    for (int i = 0; i < 3; ++i) REQUIRE(stream.next_event(5s).has_value());
    revoke_token(d.state_dir(), "stream-reader");
    const auto t0 = std::chrono::steady_clock::now();
    bool ended = false;
    while (std::chrono::steady_clock::now() - t0 < 5s) {
        try {
            stream.next_event(200ms);
        } catch (const client::TransportError&) {
            ended = true;
            break;
        }
    }
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(ended);
    CHECK(took < 1s);
    check_log_hygiene(d.log(), {d.token(), reader});
}

TEST_CASE("HTTP/1.1 framing is strict: Transfer-Encoding, Host and Authorization", "[security][hostile][framing]") {
    test::Daemon d;
    const auto port = d.url().port;
    const std::string auth = "Authorization: Bearer " + d.token() + "\r\n";
    // The body is a complete request: taken as bodiless, it would run as the next one.
    const std::string smuggled = "GET /v1/jobs?limit=1 HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n";
    for (const std::string te : {"xchunked", "gzip", "identity", "chunked, identity", "gzip, chunked", "chunked\r\nTransfer-Encoding: chunked"}) {
        INFO("Transfer-Encoding: " << te);
        const std::string answer =
            raw_exchange(port, "POST /v1/jobs/x/cancel HTTP/1.1\r\nHost: x\r\n" + auth + "Transfer-Encoding: " + te +
                                   "\r\n\r\n" + smuggled);
        INFO(answer.substr(0, 400));
        CHECK(answer.rfind("HTTP/1.1 400", 0) == 0);
        CHECK(answer.find("\"invalid_request\"") != std::string::npos);
        CHECK(count_of(answer, "HTTP/1.1 ") == 1);  // nothing ran after it
        CHECK(answer.find("\"items\"") == std::string::npos);
    }
    struct Case {
        const char* what;
        std::string bytes;
        const char* field;
    };
    const std::vector<Case> cases = {
        {"no Host", "GET /v1/instances HTTP/1.1\r\n" + auth + "\r\n", "Host"},
        {"two Host headers", "GET /v1/instances HTTP/1.1\r\nHost: x\r\nHost: y\r\n" + auth + "\r\n", "Host"},
        {"two Authorization headers", "GET /v1/instances HTTP/1.1\r\nHost: x\r\n" + auth + "Authorization: Bearer svt_other\r\n\r\n",
         "Authorization"},
    };
    for (const auto& c : cases) {
        INFO(c.what);
        const std::string answer = raw_exchange(port, c.bytes);
        INFO(answer.substr(0, 400));
        CHECK(answer.rfind("HTTP/1.1 400", 0) == 0);
        CHECK(answer.find("\"invalid_request\"") != std::string::npos);
        CHECK(answer.find("\"field\":\""s + c.field + "\"") != std::string::npos);
    }
    // Exactly chunked is fine.
    const std::string ok = raw_exchange(port, "POST /v1/jobs/x/cancel HTTP/1.1\r\nHost: x\r\n" + auth +
                                                  "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n");
    CHECK(ok.rfind("HTTP/1.1 404", 0) == 0);
    CHECK(d.client().get("/v1/instances").status == 200);
}

TEST_CASE("TLS 1.2 offers only ECDHE with AES-GCM or ChaCha20, the server's order wins, and HSTS is sent",
          "[security][tls]") {
    const RsaServerCert rsa;
    test::DaemonOptions o;
    o.tcp = false;
    o.extra_args = {"--listen", "127.0.0.1:0"};
    o.config = "[server]\ntls_cert = \"" + rsa.crt.string() + "\"\ntls_key = \"" + rsa.key.string() + "\"\n";
    test::Daemon d(o);
    std::optional<client::Url> url;
    REQUIRE(test::eventually([&] { return (url = listening_url(d, "https")).has_value(); }, 10s));
    for (const char* weak : {"AES128-SHA", "AES256-GCM-SHA384", "AES128-SHA256", "ECDHE-RSA-AES128-SHA", "DHE-RSA-AES128-GCM-SHA256"}) {
        INFO(weak);
        CHECK(negotiated_cipher(url->port, weak).empty());
    }
    CHECK(negotiated_cipher(url->port, "ECDHE-RSA-AES128-GCM-SHA256") == "ECDHE-RSA-AES128-GCM-SHA256");
    CHECK(negotiated_cipher(url->port, "ECDHE-RSA-CHACHA20-POLY1305") == "ECDHE-RSA-CHACHA20-POLY1305");
    // The server's preference, not the client's order.
    CHECK(negotiated_cipher(url->port, "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256") ==
          "ECDHE-RSA-AES128-GCM-SHA256");

    client::TlsOptions tls;
    tls.ca_file = pki().ca_crt.string();
    const auto r = client::Client(*url, "", tls).get("/healthz");
    CHECK(r.status == 200);
    REQUIRE(r.header("strict-transport-security") != nullptr);
    CHECK(r.header("strict-transport-security")->find("max-age=") == 0);
    // Not on plain HTTP.
    test::Daemon plain;
    CHECK(plain.client().get("/healthz").header("strict-transport-security") == nullptr);
}

TEST_CASE("Text fields refuse what XML 1.0 cannot carry, naming the field", "[security][hostile][xml]") {
    test::Daemon d;
    const auto c = d.client();
    const std::string absent = "/v1/snapshots/00000000-0000-4000-8000-000000000000";
    struct Case {
        const char* field;
        std::string json_value;  // as written in the JSON text
    };
    for (const auto& [field, value] : std::vector<Case>{{"description", R"("x\ufffe")"},
                                                        {"description", R"("x\uffff")"},
                                                        {"display_name", R"("a\ufffe")"},
                                                        {"description", "\"x\xef\xbf\xbe\""},
                                                        {"description", R"("x\u0001")"}}) {
        INFO(field << " = " << value);
        for (const auto& [method, target, extra] :
             std::vector<std::tuple<std::string, std::string, std::string>>{{"PATCH", absent, ""},
                                                                            {"POST", "/v1/instances/svt-sec-absent/snapshots",
                                                                             R"("mode":"memory",)"}}) {
            const std::string body = "{" + extra + "\"" + field + "\":" + value + "}";
            const auto r = c.send(method, target, body, {{"Content-Type", "application/json"}});
            INFO(method << " " << r.body);
            CHECK(r.status == 400);
            if (r.status == 400) {
                CHECK(r.json()["error"]["code"] == "invalid_request");
                CHECK(r.json()["error"]["details"]["field"] == field);
            }
        }
    }
    // A lone surrogate is not JSON at all.
    const auto r = c.send("PATCH", absent, R"({"description":"x\ud800"})", {{"Content-Type", "application/json"}});
    CHECK(r.status == 400);
    // Everything else XML allows still goes through to the lookup.
    CHECK(c.send("PATCH", absent, R"({"description":"tab\tnew\nline é 漢 \ud83d\ude00 \ufffd"})",
                 {{"Content-Type", "application/json"}})
              .status == 404);
}

TEST_CASE("The access log escapes what it quotes and marks a client's request id", "[security][logs]") {
    test::Daemon d;
    const std::string answer = raw_exchange(
        d.url().port, "GET /nothing?q=\"a\"\xff\\ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"s);
    INFO(answer.substr(0, 200));
    CHECK(answer.rfind("HTTP/1.1 ", 0) == 0);
    const auto r = d.client().get("/healthz", {{"X-Request-Id", "client-chosen-42"}});
    CHECK(*r.header("x-request-id") == "client-chosen-42");
    REQUIRE(test::eventually([&] { return d.log().find("client-chosen-42") != std::string::npos; }, 2s));
    const std::string log = d.log();
    std::istringstream in(log);
    bool quoted = false, marked = false;
    for (std::string line; std::getline(in, line);) {
        if (line.find(" access ") == std::string::npos) continue;
        INFO(line);
        // Between the quotes of the request line: no raw quote, byte 0xFF or control character.
        if (line.find("/nothing") != std::string::npos) {
            quoted = true;
            const auto open = line.find('"');
            const auto close = line.find('"', open + 1);
            REQUIRE(close != std::string::npos);
            const std::string inside = line.substr(open + 1, close - open - 1);
            CHECK(inside.find("/nothing?q=") != std::string::npos);
            CHECK(inside.find("\\x22a\\x22\\xff\\x5c") != std::string::npos);
            CHECK(line.find('\xff') == std::string::npos);
            CHECK(std::count(line.begin(), line.end(), '"') == 2);
        }
        if (line.find("client-chosen-42") != std::string::npos) {
            marked = true;
            CHECK(line.find("access req=client-chosen-42") == std::string::npos);
            CHECK(std::regex_search(line, std::regex(R"(access req=[0-9a-f]{16} client_req=client-chosen-42 )")));
        }
    }
    CHECK(quoted);
    CHECK(marked);
    check_log_hygiene(log, {d.token()});
}
