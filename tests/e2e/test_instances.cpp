// Instances through the HTTP API of the built snapvirtd, against the real libvirtd and QEMU.

#include "tests/e2e/helpers.hpp"

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

using namespace snapvirt;
using namespace snapvirt::test;
using namespace std::chrono_literals;

namespace {

nlohmann::json find_instance(const nlohmann::json& items, const std::string& name) {
    for (const auto& i : items)
        if (i["name"] == name) return i;
    return nullptr;
}

}  // namespace

TEST_CASE("Instances list running and shut-off domains with their state, memory and vCPUs", "[e2e][instances]") {
    TestGuest running({.tag = "run", .memory_mib = 96});
    TestGuest off({.tag = "off", .memory_mib = 128, .running = false});
    Daemon d;
    auto c = d.client();

    nlohmann::json items;
    REQUIRE(eventually(
        [&] {
            items = c.get("/v1/instances").json()["items"];
            return !find_instance(items, running.name()).is_null() && !find_instance(items, off.name()).is_null();
        },
        10s));
    const auto r = find_instance(items, running.name());
    CHECK(r["uuid"] == running.uuid());
    CHECK(r["state"] == "running");
    CHECK(r["memory_mib"] == 96);
    CHECK(r["vcpus"] == 1);
    CHECK(r["snapshot_count"] == 0);
    CHECK(r["current_snapshot_id"].is_null());
    CHECK(r["busy_job_id"].is_null());
    const auto o = find_instance(items, off.name());
    CHECK(o["state"] == "shutoff");
    CHECK(o["memory_mib"] == 128);

    auto one = c.get("/v1/instances/" + running.name());
    REQUIRE(one.status == 200);
    CHECK(one.json()["uuid"] == running.uuid());
    auto by_uuid = c.get("/v1/instances/" + off.uuid());
    REQUIRE(by_uuid.status == 200);
    CHECK(by_uuid.json()["name"] == off.name());
    CHECK(by_uuid.json()["state"] == "shutoff");

    auto missing = c.get("/v1/instances/svt-no-such-domain");
    CHECK(missing.status == 404);
    CHECK(error_code(missing) == "instance_not_found");

    // The Unix socket serves the same without a token; TCP without one is refused.
    CHECK(d.unix_client().get("/v1/instances/" + running.name()).status == 200);
    CHECK(d.client("").get("/v1/instances").status == 401);
}

TEST_CASE("A domain started, stopped or defined after start-up shows without a restart", "[e2e][instances]") {
    TestGuest g({.tag = "events", .running = false});
    Daemon d;
    auto c = d.client();
    REQUIRE(eventually([&] { return c.get("/v1/instances/" + g.name()).json()["state"] == "shutoff"; }, 10s));
    g.start();
    CHECK(eventually([&] { return c.get("/v1/instances").json().dump().find(g.name()) != std::string::npos &&
                                  find_instance(c.get("/v1/instances").json()["items"], g.name())["state"] == "running"; },
                     10s));
    TestGuest later({.tag = "later", .running = false});
    CHECK(eventually([&] { return !find_instance(c.get("/v1/instances").json()["items"], later.name()).is_null(); }, 10s));
}

TEST_CASE("A malformed config or an unknown flag stops start-up with a one-line error", "[e2e][config]") {
    auto run = [](const std::string& args) {
        std::string out;
        const std::string cmd = Daemon::binary().string() + " " + args + " 2>&1";
        FILE* p = ::popen(cmd.c_str(), "r");
        char buf[4096];
        while (std::fgets(buf, sizeof buf, p)) out += buf;
        const int status = ::pclose(p);
        return std::pair<int, std::string>{WEXITSTATUS(status), out};
    };
    const auto dir = make_temp_dir("snapvirt-config");
    {
        std::ofstream(dir / "bad.toml") << "[server]\nlisten = [\"127.0.0.1:8080\"]\nworkers = 3\n";
        auto [code, out] = run("--config " + (dir / "bad.toml").string() + " --state-dir " + (dir / "s").string());
        CHECK(code == 2);
        CHECK_THAT(out, Catch::Contains("unknown setting 'server.workers'"));
        CHECK(std::count(out.begin(), out.end(), '\n') == 1);
    }
    {
        std::ofstream(dir / "broken.toml") << "[snapshots\nmax = 1\n";
        auto [code, out] = run("--config " + (dir / "broken.toml").string());
        CHECK(code == 2);
        CHECK_THAT(out, Catch::Contains("broken.toml:1"));
        CHECK(std::count(out.begin(), out.end(), '\n') == 1);
    }
    {
        auto [code, out] = run("--no-such-flag");
        CHECK(code == 2);
        CHECK_THAT(out, Catch::Contains("--no-such-flag"));
        CHECK(std::count(out.begin(), out.end(), '\n') == 1);
    }
    {
        auto [code, out] = run("--listen 0.0.0.0:8443 --state-dir " + (dir / "s").string());
        CHECK(code == 2);
        CHECK_THAT(out, Catch::Contains("needs TLS"));
    }
    {
        auto [code, out] = run("--version");
        CHECK(code == 0);
        CHECK_THAT(out, Catch::StartsWith("snapvirtd "));
    }
    std::filesystem::remove_all(dir);
}
