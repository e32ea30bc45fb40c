#include "tests/security/security_support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

namespace snapvirt::sec {

using namespace std::chrono_literals;

namespace {

std::string quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') out += "'\\''";
        else out += c;
    }
    return out + "'";
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct PkiHolder {
    Pki pki;
    PkiHolder() {
        pki.dir = test::make_temp_dir("snapvirt-pki");
        const fs::path d = pki.dir;
        pki.ca_crt = d / "ca.crt";
        pki.ca_key = d / "ca.key";
        pki.server_crt = d / "server.crt";
        pki.server_key = d / "server.key";
        pki.client_crt = d / "client.crt";
        pki.client_key = d / "client.key";
        pki.rogue_crt = d / "rogue.crt";
        pki.rogue_key = d / "rogue.key";
        pki.other_key = d / "other.key";
        std::ofstream(d / "server.ext") << "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                                           "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n";
        std::ofstream(d / "client.ext") << "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                                           "extendedKeyUsage=clientAuth\n";
        const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes ";
        const std::string q = quote(d.string());
        const std::vector<std::string> steps = {
            "openssl req -x509" + ec + "-keyout " + q + "/ca.key -out " + q +
                "/ca.crt -days 3 -subj /CN=snapvirt-test-ca -addext basicConstraints=critical,CA:TRUE "
                "-addext keyUsage=critical,keyCertSign,cRLSign",
            "openssl req" + ec + "-keyout " + q + "/server.key -out " + q + "/server.csr -subj /CN=127.0.0.1",
            "openssl x509 -req -in " + q + "/server.csr -CA " + q + "/ca.crt -CAkey " + q + "/ca.key -set_serial 2 -days 3 -out " +
                q + "/server.crt -extfile " + q + "/server.ext",
            "openssl req" + ec + "-keyout " + q + "/client.key -out " + q + "/client.csr -subj /CN=snapvirt-test-client",
            "openssl x509 -req -in " + q + "/client.csr -CA " + q + "/ca.crt -CAkey " + q + "/ca.key -set_serial 3 -days 3 -out " +
                q + "/client.crt -extfile " + q + "/client.ext",
            "openssl req -x509" + ec + "-keyout " + q + "/rogue.key -out " + q +
                "/rogue.crt -days 3 -subj /CN=snapvirt-test-client -addext extendedKeyUsage=clientAuth",
            "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " + q + "/other.key",
        };
        for (const auto& step : steps) {
            std::string out;
            if (sh(step, &out) != 0) throw std::runtime_error("openssl failed: " + step + "\n" + out);
        }
        for (const auto& key : {pki.ca_key, pki.server_key, pki.client_key, pki.rogue_key, pki.other_key})
            fs::permissions(key, fs::perms::owner_read | fs::perms::owner_write);
    }
    ~PkiHolder() {
        std::error_code ec;
        fs::remove_all(pki.dir, ec);
    }
};

}  // namespace

int sh(const std::string& command, std::string* output) {
    const std::string full = "(" + command + ") 2>&1";
    FILE* p = ::popen(full.c_str(), "r");
    if (!p) return -1;
    std::string out;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int st = ::pclose(p);
    if (output) *output = out;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

std::vector<std::string> Pki::key_bodies() const {
    std::vector<std::string> out;
    for (const auto& key : {ca_key, server_key, client_key, rogue_key, other_key}) {
        std::istringstream in(read_file(key));
        std::string line;
        while (std::getline(in, line))
            if (line.rfind("-----", 0) != 0 && line.size() >= 16) out.push_back(line);
    }
    return out;
}

const Pki& pki() {
    static PkiHolder holder;
    return holder.pki;
}

CommandResult snapvirtd_cli(const std::vector<std::string>& args) {
    std::string cmd = quote(test::Daemon::binary().string());
    for (const auto& a : args) cmd += " " + quote(a);
    CommandResult r;
    r.status = sh(cmd, &r.output);
    return r;
}

std::string create_token(const fs::path& state_dir, const std::string& scope, const std::string& name) {
    // --state-dir before the subcommand works with every version; the documented order after it
    // is checked in test_tokens.cpp.
    const auto r = snapvirtd_cli({"--state-dir", state_dir.string(), "token", "create", "--scope", scope, "--name", name});
    INFO(r.output);
    REQUIRE(r.status == 0);
    std::string out = r.output;
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    const auto nl = out.rfind('\n');
    const std::string token = nl == std::string::npos ? out : out.substr(nl + 1);
    REQUIRE(token.size() >= 32);
    REQUIRE(token.find(' ') == std::string::npos);
    return token;
}

void revoke_token(const fs::path& state_dir, const std::string& name) {
    const auto r = snapvirtd_cli({"--state-dir", state_dir.string(), "token", "revoke", name});
    INFO(r.output);
    REQUIRE(r.status == 0);
}

std::string read_admin_token(const fs::path& state_dir) {
    std::string token = read_file(state_dir / "admin.token");
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
    return token;
}

std::optional<client::Url> listening_url(const test::Daemon& d, const std::string& scheme) {
    const std::regex re("Listening on " + scheme + R"(://127\.0\.0\.1:(\d+)\.)");
    std::smatch m;
    const std::string log = d.log();
    if (!std::regex_search(log, m, re)) return std::nullopt;
    return client::Url::parse(scheme + "://127.0.0.1:" + m[1].str());
}

TlsDaemon start_tls_daemon(bool mtls, const std::string& extra_server_config) {
    const Pki& p = pki();
    test::DaemonOptions o;
    // The support class looks for "Listening on http://"; the TLS listener is added here and
    // found in the log, readiness is checked on the Unix socket.
    o.tcp = false;
    o.unix_socket = true;
    o.extra_args = {"--listen", "127.0.0.1:0"};
    o.config = "[server]\ntls_cert = \"" + p.server_crt.string() + "\"\ntls_key = \"" + p.server_key.string() + "\"\n";
    if (mtls) o.config += "tls_client_ca = \"" + p.ca_crt.string() + "\"\n";
    o.config += extra_server_config;
    TlsDaemon t;
    t.daemon = std::make_unique<test::Daemon>(o);
    std::optional<client::Url> url;
    REQUIRE(test::eventually([&] { return (url = listening_url(*t.daemon, "https")).has_value(); }, 10s));
    t.url = *url;
    t.admin_token = read_admin_token(t.daemon->state_dir());
    REQUIRE(!t.admin_token.empty());
    t.tls.ca_file = p.ca_crt.string();
    if (mtls) {
        t.tls.cert_file = p.client_crt.string();
        t.tls.key_file = p.client_key.string();
    }
    return t;
}

int connect_tcp(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

bool peer_closed(int fd, std::chrono::milliseconds wait) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
        pollfd pfd{fd, POLLIN, 0};
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        const int r = ::poll(&pfd, 1, static_cast<int>(std::max<long>(0, left.count())));
        if (r > 0) {
            char buf[4096];
            const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n == 0) return true;
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return true;
            // Data (e.g. an error response): keep reading until the close.
            continue;
        }
        if (std::chrono::steady_clock::now() >= deadline) return false;
    }
}

void check_log_hygiene(const std::string& log, const std::vector<std::string>& secrets) {
    for (const auto& s : secrets) {
        if (s.empty()) continue;
        INFO("a secret of " << s.size() << " characters starting with '" << s.substr(0, 6) << "'");
        CHECK(log.find(s) == std::string::npos);
    }
    for (const auto& body : pki().key_bodies()) {
        INFO("a line of a private key's PEM");
        CHECK(log.find(body) == std::string::npos);
    }
    CHECK(log.find("PRIVATE KEY") == std::string::npos);
    std::istringstream in(log);
    std::string line;
    const std::regex access(R"( access req=[!-~]{1,64} )");
    int access_lines = 0;
    while (std::getline(in, line)) {
        if (line.find(" access ") == std::string::npos) continue;
        ++access_lines;
        INFO(line);
        CHECK(std::regex_search(line, access));
    }
    CHECK(access_lines > 0);
}

Outcome call(const client::Client& c, const std::string& method, const std::string& target, const std::string& body) {
    Outcome o;
    try {
        client::Response r;
        if (method == "GET" && target.rfind("/v1/events", 0) == 0) {
            client::Connection conn(c.url(), c.tls(), 10s);
            client::Headers h;
            if (!c.token().empty()) h.emplace_back("Authorization", "Bearer " + c.token());
            r = conn.open_stream(target, h);
        } else {
            r = c.send(method, target, body, {});
        }
        o.status = r.status;
        o.www_authenticate = r.header("www-authenticate") != nullptr;
        if (r.status >= 400) {
            try {
                o.code = r.json()["error"]["code"].get<std::string>();
            } catch (const std::exception&) {
                o.code = "<no error body>";
            }
        }
    } catch (const client::TransportError& e) {
        o.transport_error = e.what();
    }
    return o;
}

}  // namespace snapvirt::sec
