// Instances through the HTTP API of the built snapvirtd, against the real libvirtd and QEMU.

#include "tests/e2e/helpers.hpp"
#include "tests/support/libvirtd.hpp"

#include <unistd.h>
#include <libvirt/libvirt.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
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

// libvirt's encoding (major * 1,000,000 + minor * 1,000 + micro), as the API spells it.
std::string dotted(unsigned long v) {
    return std::to_string(v / 1000000) + "." + std::to_string(v / 1000 % 1000) + "." + std::to_string(v % 1000);
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

TEST_CASE("The host reports the versions the connected libvirtd reports", "[e2e][host]") {
    // What the libvirtd says on a connection of the test's own.
    virConnectPtr direct = virConnectOpen(libvirt_uri().c_str());
    REQUIRE(direct);
    unsigned long lib = 0;
    unsigned long hyp = 0;
    CHECK(virConnectGetLibVersion(direct, &lib) == 0);
    CHECK(virConnectGetVersion(direct, &hyp) == 0);
    char name[256] = {};  // snapvirtd runs on libvirt's host: the host's name as its kernel knows it
    REQUIRE(::gethostname(name, sizeof name - 1) == 0);
    const std::string hostname = name;
    virConnectClose(direct);
    REQUIRE(lib > 0);

    Daemon d;
    const auto r = d.client().get("/v1/host");
    INFO(r.body);
    REQUIRE(r.status == 200);
    const auto host = r.json();
    CHECK(host["libvirt_version"] == dotted(lib));
    CHECK(host["qemu_version"] == dotted(hyp));
    CHECK(host["hostname"] == hostname);
    CHECK(host["stale"] == false);
    CHECK(host["snapvirt_version"] == d.client().get("/healthz").json()["version"]);
    // Reverting external snapshots came with libvirt 9.7.0.
    CHECK(host["capabilities"]["external_revert"] == (lib >= 9007000));
    CHECK(host["capabilities"]["modes"] == nlohmann::json{"memory", "stopped"});
    CHECK(host["capabilities"]["methods"] ==
          (lib >= 9007000 ? nlohmann::json{"internal", "external"} : nlohmann::json{"internal"}));

    // A read token is enough; no token is not.
    CHECK(client::Client(d.url()).get("/v1/host").status == 401);
}
