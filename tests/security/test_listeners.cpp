// Listeners: non-loopback TCP needs TLS, broken TLS settings stop the start, and on the Unix
// socket the file's group and mode decide (checked as real users in and outside the group).

#include "tests/security/security_support.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <regex>

using namespace snapvirt;
using namespace snapvirt::sec;
using namespace std::chrono_literals;

namespace {

// snapvirtd run to its (expected) refusal; `timeout` kills one that starts serving instead.
CommandResult start_expecting_refusal(const std::vector<std::string>& args, const std::string& config = {}) {
    const auto dir = test::make_temp_dir("snapvirt-sec-refuse");
    std::vector<std::string> full = {"--state-dir", dir.string(), "--libvirt-uri", "test:///default"};
    if (!config.empty()) {
        std::ofstream(dir / "snapvirtd.toml") << config;
        full.insert(full.end(), {"--config", (dir / "snapvirtd.toml").string()});
    }
    full.insert(full.end(), args.begin(), args.end());
    std::string cmd = "timeout -s KILL 20 '" + test::Daemon::binary().string() + "'";
    for (const auto& a : full) cmd += " '" + a + "'";
    CommandResult r;
    r.status = sh(cmd, &r.output);
    std::filesystem::remove_all(dir);
    return r;
}

std::string tls_config(const std::string& cert, const std::string& key, const std::string& ca = {}) {
    std::string c = "[server]\n";
    if (!cert.empty()) c += "tls_cert = \"" + cert + "\"\n";
    if (!key.empty()) c += "tls_key = \"" + key + "\"\n";
    if (!ca.empty()) c += "tls_client_ca = \"" + ca + "\"\n";
    return c;
}

// A group and two users made for the test (useradd/groupadd), removed afterwards.
struct SystemUsers {
    std::string group, inside, outside;
    SystemUsers() {
        const std::string id = std::to_string(::getpid());
        group = "svtsec-g" + id;
        inside = "svtsec-i" + id;
        outside = "svtsec-o" + id;
        std::string out;
        if (sh("groupadd " + group, &out) != 0) throw std::runtime_error("groupadd failed: " + out);
        if (sh("useradd -M -N -s /usr/sbin/nologin -G " + group + " " + inside, &out) != 0)
            throw std::runtime_error("useradd failed: " + out);
        if (sh("useradd -M -N -s /usr/sbin/nologin " + outside, &out) != 0)
            throw std::runtime_error("useradd failed: " + out);
    }
    ~SystemUsers() {
        sh("userdel " + inside);
        sh("userdel " + outside);
        sh("groupdel " + group);
    }
};

struct AsUser {
    int connect_errno = -1;  // 0: connected
    std::string status_line;
};

// In a forked child that takes the user's uid, primary gid and supplementary groups (as a
// login would), connects to the socket and, if that works, sends one GET.
AsUser connect_as(const std::string& user, const std::filesystem::path& socket, const std::string& target) {
    passwd* pw = ::getpwnam(user.c_str());
    REQUIRE(pw);
    const uid_t uid = pw->pw_uid;
    const gid_t gid = pw->pw_gid;
    std::vector<gid_t> groups(64);
    int n = static_cast<int>(groups.size());
    REQUIRE(::getgrouplist(user.c_str(), gid, groups.data(), &n) >= 0);
    groups.resize(static_cast<std::size_t>(n));

    int pipefd[2];
    REQUIRE(::pipe(pipefd) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(pipefd[0]);
        auto report = [&](const std::string& s) {
            (void)!::write(pipefd[1], s.data(), s.size());
            ::_exit(0);
        };
        if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0)
            report("setup " + std::to_string(errno));
        if (::getuid() != uid || ::geteuid() != uid) report("setup still-root");
        const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, socket.c_str(), sizeof a.sun_path - 1);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) report("errno " + std::to_string(errno));
        const std::string req = "GET " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        (void)!::write(fd, req.data(), req.size());
        char buf[256] = {};
        std::size_t got = 0;
        while (got < sizeof buf - 1) {
            const ssize_t r = ::read(fd, buf + got, sizeof buf - 1 - got);
            if (r <= 0) break;
            got += static_cast<std::size_t>(r);
        }
        std::string text(buf, got);
        report("ok " + text.substr(0, text.find("\r\n")));
    }
    ::close(pipefd[1]);
    std::string msg;
    char buf[512];
    ssize_t r;
    while ((r = ::read(pipefd[0], buf, sizeof buf)) > 0) msg.append(buf, static_cast<std::size_t>(r));
    ::close(pipefd[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    INFO("child: " << msg);
    AsUser out;
    if (msg.rfind("errno ", 0) == 0) {
        out.connect_errno = std::stoi(msg.substr(6));
    } else if (msg.rfind("ok ", 0) == 0) {
        out.connect_errno = 0;
        out.status_line = msg.substr(3);
    } else {
        FAIL("the child could not take the user's identity: " << msg);
    }
    return out;
}

}  // namespace

TEST_CASE("A non-loopback TCP listener without TLS refuses to start with a clear error", "[security][listeners]") {
    for (const std::string addr : {"0.0.0.0:0", "[::]:0", "192.0.2.10:8443", "10.1.2.3:0"}) {
        INFO(addr);
        const auto r = start_expecting_refusal({"--listen", addr});
        INFO(r.output);
        CHECK(r.status == 2);
        CHECK(r.output.find("needs TLS") != std::string::npos);
        CHECK(r.output.find("tls_cert") != std::string::npos);
        CHECK(r.output.find("Listening on") == std::string::npos);
    }
    // The same from the configuration file.
    const auto r = start_expecting_refusal({}, "[server]\nlisten = [\"0.0.0.0:8080\"]\n");
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK(r.output.find("0.0.0.0:8080") != std::string::npos);
    CHECK(r.output.find("needs TLS") != std::string::npos);
}

TEST_CASE("With TLS a non-loopback listener starts and serves TLS only", "[security][listeners][tls]") {
    const Pki& p = pki();
    test::DaemonOptions o;
    o.tcp = false;
    o.extra_args = {"--listen", "0.0.0.0:0"};
    o.config = tls_config(p.server_crt.string(), p.server_key.string());
    test::Daemon d(o);
    std::smatch m;
    std::string log;
    const std::regex re(R"(Listening on https://0\.0\.0\.0:(\d+)\.)");
    REQUIRE(test::eventually([&] { return std::regex_search(log = d.log(), m, re); }, 10s));
    client::TlsOptions tls;
    tls.ca_file = p.ca_crt.string();
    const auto url = client::Url::parse("https://127.0.0.1:" + m[1].str());
    CHECK(client::Client(url, "", tls).get("/healthz").status == 200);
    CHECK(client::Client(url, "", tls).get("/v1/instances").status == 401);
    const std::string admin = read_admin_token(d.state_dir());
    CHECK(client::Client(url, admin, tls).get("/v1/instances").status == 200);
    check_log_hygiene(d.log(), {admin});
}

TEST_CASE("TLS settings that cannot work stop the start with a clear error", "[security][listeners][tls]") {
    const Pki& p = pki();
    const std::vector<std::string> tcp = {"--listen", "127.0.0.1:0"};
    SECTION("a certificate without a key") {
        const auto r = start_expecting_refusal(tcp, tls_config(p.server_crt.string(), ""));
        INFO(r.output);
        CHECK(r.status == 2);
        CHECK(r.output.find("server.tls_key") != std::string::npos);
    }
    SECTION("a client CA without a certificate") {
        const auto r = start_expecting_refusal(tcp, tls_config("", "", p.ca_crt.string()));
        INFO(r.output);
        CHECK(r.status == 2);
        CHECK(r.output.find("server.tls_client_ca") != std::string::npos);
    }
    SECTION("a certificate file that does not exist") {
        const auto r = start_expecting_refusal(tcp, tls_config("/nonexistent/server.crt", p.server_key.string()));
        INFO(r.output);
        CHECK(r.status != 0);
        CHECK(r.status != 137);
        CHECK(r.output.find("/nonexistent/server.crt") != std::string::npos);
        CHECK(r.output.find("Listening on https") == std::string::npos);
    }
    SECTION("a key that does not belong to the certificate") {
        const auto r = start_expecting_refusal(tcp, tls_config(p.server_crt.string(), p.other_key.string()));
        INFO(r.output);
        CHECK(r.status != 0);
        CHECK(r.status != 137);
        CHECK(r.output.find(p.other_key.string()) != std::string::npos);
        CHECK(r.output.find("Listening on https") == std::string::npos);
        CHECK(r.output.find("PRIVATE KEY") == std::string::npos);
    }
    SECTION("a client CA file that does not exist") {
        const auto r = start_expecting_refusal(tcp, tls_config(p.server_crt.string(), p.server_key.string(), "/nonexistent/ca.crt"));
        INFO(r.output);
        CHECK(r.status != 0);
        CHECK(r.status != 137);
        CHECK(r.output.find("/nonexistent/ca.crt") != std::string::npos);
    }
    SECTION("a socket group that does not exist") {
        const auto r = start_expecting_refusal({"--listen", "unix:/tmp/svtsec-nogroup.sock"},
                                               "[server]\nsocket_group = \"svtsec-no-such-group\"\n");
        INFO(r.output);
        CHECK(r.status == 2);
        CHECK(r.output.find("server.socket_group") != std::string::npos);
    }
}

TEST_CASE("On the Unix socket the file's group and mode decide", "[security][listeners][unix]") {
    if (::geteuid() != 0) {
        WARN("needs root (to create users and give the socket to a group); not run");
        return;
    }
    SystemUsers users;
    group* g = ::getgrnam(users.group.c_str());
    REQUIRE(g);
    const gid_t gid = g->gr_gid;
    // The catalog makes the state directory 0700, so the socket goes into a directory of its
    // own that everyone may traverse: only the socket's own mode and group decide.
    const auto dir = test::make_temp_dir("snapvirt-sec-unix");
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all | std::filesystem::perms::group_exec |
                                          std::filesystem::perms::others_exec);
    struct Cleanup {
        std::filesystem::path dir;
        ~Cleanup() { std::filesystem::remove_all(dir); }
    } cleanup{dir};
    const auto socket = dir / "api.sock";
    auto options = [&](const std::string& server_config) {
        test::DaemonOptions o;
        o.unix_socket = false;
        o.extra_args = {"--listen", "unix:" + socket.string()};
        o.config = "[server]\n" + server_config;
        return o;
    };

    SECTION("default mode 0660 with the configured group") {
        test::Daemon d(options("socket_group = \"" + users.group + "\"\n"));
        struct stat st {};
        REQUIRE(::stat(socket.c_str(), &st) == 0);
        CHECK(S_ISSOCK(st.st_mode));
        CHECK((st.st_mode & 0777) == 0660);
        CHECK(st.st_gid == gid);

        const auto out = connect_as(users.outside, socket, "/healthz");
        CHECK(out.connect_errno == EACCES);
        const auto in = connect_as(users.inside, socket, "/v1/instances");
        CHECK(in.connect_errno == 0);
        CHECK(in.status_line == "HTTP/1.1 200 OK");
        // The log names the peer's uid, not a token.
        CHECK(d.log().find("uid=" + std::to_string(::getpwnam(users.inside.c_str())->pw_uid)) != std::string::npos);
        check_log_hygiene(d.log(), {d.token()});
    }
    SECTION("socket_mode 0600 keeps the group out too") {
        test::Daemon d(options("socket_group = \"" + users.group + "\"\nsocket_mode = \"0600\"\n"));
        struct stat st {};
        REQUIRE(::stat(socket.c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
        CHECK(connect_as(users.inside, socket, "/healthz").connect_errno == EACCES);
        CHECK(connect_as(users.outside, socket, "/healthz").connect_errno == EACCES);
        // Root (the daemon's own user) still gets in.
        CHECK(client::Client(client::Url::parse("unix:" + socket.string())).get("/v1/instances").status == 200);
    }
}
