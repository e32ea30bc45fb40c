// Tokens: `snapvirtd token create|list|revoke` against a running daemon, hashes only on disk,
// the admin token of the first start, SIGHUP.

#include "tests/security/security_support.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <regex>
#include <sstream>

using namespace snapvirt;
using namespace snapvirt::sec;
using namespace std::chrono_literals;

namespace {

std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Every file under `dir` whose bytes contain `needle`.
std::vector<std::string> files_containing(const std::filesystem::path& dir, const std::string& needle) {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
        if (!e.is_regular_file()) continue;
        if (slurp(e.path()).find(needle) != std::string::npos) out.push_back(e.path().filename().string());
    }
    return out;
}

const std::regex token_form(R"(svt_[A-Za-z0-9_-]{43})");

}  // namespace

TEST_CASE("token create, list and revoke work against a running daemon", "[security][tokens]") {
    test::Daemon d;
    const auto dir = d.state_dir();

    const auto created = snapvirtd_cli({"--state-dir", dir.string(), "token", "create", "--scope", "read", "--name", "ops-read"});
    INFO(created.output);
    REQUIRE(created.status == 0);
    std::string out = created.output;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    const std::string read = out.substr(out.rfind('\n') + 1);
    CHECK(std::regex_match(read, token_form));
    // Printed once: exactly one line holds the secret, the last one.
    CHECK(out.find(read) == out.rfind('\n') + 1);

    // Picked up without a restart.
    CHECK(test::eventually([&] { return d.client(read).get("/v1/instances").status == 200; }, 2s, 50ms));
    CHECK(d.client(read).post("/v1/instances/svt-sec-absent/snapshots", {{"mode", "memory"}}).status == 403);
    const std::string write = create_token(dir, "write", "ops-write");
    CHECK(test::eventually([&] { return d.client(write).get("/v1/instances").status == 200; }, 2s, 50ms));
    CHECK(d.client(write).post("/v1/instances/svt-sec-absent/snapshots", {{"mode", "memory"}}).status == 404);

    SECTION("list shows names and scopes, never a secret") {
        const auto listed = snapvirtd_cli({"--state-dir", dir.string(), "token", "list"});
        INFO(listed.output);
        CHECK(listed.status == 0);
        CHECK(listed.output.find("admin\twrite") != std::string::npos);
        CHECK(listed.output.find("ops-read\tread") != std::string::npos);
        CHECK(listed.output.find("ops-write\twrite") != std::string::npos);
        CHECK(listed.output.find("svt_") == std::string::npos);
    }
    SECTION("the state directory holds hashes only (the admin token file aside)") {
        CHECK(files_containing(dir, read).empty());
        CHECK(files_containing(dir, write).empty());
        CHECK(files_containing(dir, d.token()) == std::vector<std::string>{"admin.token"});
    }
    SECTION("a taken name, a bad scope and a bad name are refused without printing a token") {
        auto dup = snapvirtd_cli({"--state-dir", dir.string(), "token", "create", "--scope", "write", "--name", "ops-read"});
        CHECK(dup.status != 0);
        CHECK(dup.output.find("exists") != std::string::npos);
        CHECK(dup.output.find("svt_") == std::string::npos);
        auto scope = snapvirtd_cli({"--state-dir", dir.string(), "token", "create", "--scope", "admin", "--name", "x"});
        CHECK(scope.status != 0);
        CHECK(scope.output.find("svt_") == std::string::npos);
        auto name = snapvirtd_cli({"--state-dir", dir.string(), "token", "create", "--scope", "read", "--name", std::string(65, 'n')});
        CHECK(name.status != 0);
        CHECK(name.output.find("svt_") == std::string::npos);
    }
    SECTION("revoke: refused within about a second, gone from the list, a second revoke fails") {
        revoke_token(dir, "ops-read");
        const auto t0 = std::chrono::steady_clock::now();
        CHECK(test::eventually([&] { return d.client(read).get("/v1/instances").status == 401; }, 3s, 50ms));
        CHECK(std::chrono::steady_clock::now() - t0 < 1500ms);
        CHECK(d.client(write).get("/v1/instances").status == 200);
        const auto listed = snapvirtd_cli({"--state-dir", dir.string(), "token", "list"});
        CHECK(listed.output.find("ops-read") == std::string::npos);
        const auto again = snapvirtd_cli({"--state-dir", dir.string(), "token", "revoke", "ops-read"});
        CHECK(again.status != 0);
    }
    SECTION("--state-dir after the subcommand, as documented (token create ... --state-dir DIR)") {
        const auto made = snapvirtd_cli({"token", "create", "--scope", "read", "--name", "after", "--state-dir", dir.string()});
        INFO(made.output);
        CHECK(made.status == 0);
        const auto listed = snapvirtd_cli({"token", "list", "--state-dir", dir.string()});
        INFO(listed.output);
        CHECK(listed.status == 0);
        CHECK(listed.output.find("ops-read\tread") != std::string::npos);
        const auto revoked = snapvirtd_cli({"token", "revoke", "ops-read", "--state-dir", dir.string()});
        INFO(revoked.output);
        CHECK(revoked.status == 0);
    }
    SECTION("SIGHUP keeps the daemon and its tokens; tokens made afterwards work too") {
        REQUIRE(::kill(d.pid(), SIGHUP) == 0);
        CHECK(test::eventually([&] { return d.log().find("SIGHUP") != std::string::npos; }, 5s));
        CHECK(d.running());
        CHECK(d.client(read).get("/v1/instances").status == 200);
        const std::string later = create_token(dir, "read", "after-hup");
        ::kill(d.pid(), SIGHUP);
        CHECK(test::eventually([&] { return d.client(later).get("/v1/instances").status == 200; }, 2s, 50ms));
    }
    check_log_hygiene(d.log(), {d.token(), read, write});
}

TEST_CASE("The first start with a TCP listener writes admin.token (0600) and logs its path, never the token",
          "[security][tokens]") {
    test::Daemon d;
    const auto path = d.state_dir() / "admin.token";
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(st.st_uid == ::geteuid());
    const std::string content = slurp(path);
    CHECK(content == d.token() + "\n");
    CHECK(std::regex_match(d.token(), token_form));

    const std::string log = d.log();
    CHECK(log.find(path.string()) != std::string::npos);
    CHECK(log.find(d.token()) == std::string::npos);
    // A write token.
    CHECK(d.client().post("/v1/instances/svt-sec-absent/snapshots", {{"mode", "memory"}}).status == 404);

    SECTION("a restart keeps it and creates no other") {
        d.restart();
        CHECK(slurp(path) == content);
        CHECK(d.log().find("Created a write token") == std::string::npos);
        const auto listed = snapvirtd_cli({"--state-dir", d.state_dir().string(), "token", "list"});
        CHECK(std::count(listed.output.begin(), listed.output.end(), '\n') == 1);
    }
    check_log_hygiene(d.log(), {d.token()});
}

TEST_CASE("A daemon with only the Unix socket writes no admin token", "[security][tokens]") {
    test::DaemonOptions o;
    o.tcp = false;
    test::Daemon d(o);
    CHECK(!std::filesystem::exists(d.state_dir() / "admin.token"));
    const auto listed = snapvirtd_cli({"--state-dir", d.state_dir().string(), "token", "list"});
    CHECK(listed.status == 0);
    CHECK(listed.output.empty());
}
