// What snapvirtd.service relies on: SIGTERM stops gracefully within the configured grace and
// exits 0, SIGHUP re-reads the log level, tokens change without a restart, and the sd_notify
// protocol (STATUS, READY, WATCHDOG, STOPPING) as Type=notify with WatchdogSec expects it.

#include "tests/e2e/helpers.hpp"
#include "tests/packaging/proc.hpp"

#include <cstdio>
#include <sys/socket.h>

using namespace snapvirt;
using namespace snapvirt::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

struct Accepted {
    std::string job;
    std::string snapshot;
};

Accepted post_stopped_snapshot(const client::Client& c, const std::string& instance, const std::string& name) {
    auto r = c.post("/v1/instances/" + client::escape(instance) + "/snapshots", {{"mode", "stopped"}, {"name", name}});
    INFO(r.body);
    REQUIRE(r.status == 202);
    auto j = r.json();
    return {j["job"]["id"], j["snapshot"]["id"]};
}

// Waits until the job reports the given phase (it then sleeps there for SNAPVIRT_TEST_DELAYS).
void wait_phase(const client::Client& c, const std::string& job, const std::string& phase) {
    nlohmann::json last;
    const bool reached = eventually(
        [&] {
            last = c.get("/v1/jobs/" + job).json();
            return last["progress"]["phase"] == phase;
        },
        60s, 50ms);
    INFO(last.dump());
    REQUIRE(reached);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string run(const std::string& cmd) {
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    char buf[512];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    REQUIRE(::pclose(p) == 0);
    return out;
}

std::string last_line(const std::string& text) {
    std::string s = text;
    while (!s.empty() && s.back() == '\n') s.pop_back();
    const auto nl = s.rfind('\n');
    return nl == std::string::npos ? s : s.substr(nl + 1);
}

}  // namespace

TEST_CASE("SIGTERM lets a running job finish, then exits 0", "[signals]") {
    TestGuest g({.tag = "term", .running = false});
    Daemon d({.env = {{"SNAPVIRT_TEST_DELAYS", "snapshotting=3000"}}});
    auto c = d.client();
    const auto a = post_stopped_snapshot(c, g.name(), "during-term");
    wait_phase(c, a.job, "snapshotting");

    const auto t0 = std::chrono::steady_clock::now();
    const int rc = d.stop(60s);
    const double took = seconds_since(t0);
    INFO(d.log());
    CHECK(rc == 0);
    CHECK(took < 20.0);  // the job had about 3 s left, the grace is 30 s
    CHECK(d.log().find("Stopping: no new connections") != std::string::npos);
    CHECK_FALSE(fs::exists(d.socket_path()));  // the Unix socket is removed
    CHECK(g.has_snapshot("during-term"));     // the job really finished before the exit

    d.start();
    auto job = wait_job(d.client(), a.job, 60s);
    INFO(job.dump());
    CHECK(job["state"] == "succeeded");
    CHECK_FALSE(job.contains("recovered"));  // finished by the first process, not by recovery
}

TEST_CASE("SIGTERM with a job longer than the shutdown grace exits 0 in time, recovery ends the job", "[signals]") {
    TestGuest g({.tag = "grace", .running = false});
    const std::string config = "[jobs]\nshutdown_grace_s = 1\n";
    Daemon d({.env = {{"SNAPVIRT_TEST_DELAYS", "snapshotting=20000"}}, .config = config});
    auto c = d.client();
    const auto a = post_stopped_snapshot(c, g.name(), "too-slow");
    wait_phase(c, a.job, "snapshotting");

    const auto t0 = std::chrono::steady_clock::now();
    const int rc = d.stop(30s);
    const double took = seconds_since(t0);
    INFO(d.log());
    CHECK(rc == 0);
    CHECK(took >= 0.9);  // it did wait for the job
    CHECK(took < 5.0);   // grace 1 s + a few
    CHECK_FALSE(fs::exists(d.socket_path()));

    // The next process (without the delay) recovers the job and the instance is usable again.
    Daemon again({.config = config}, d.state_dir());
    auto c2 = again.client();
    auto job = wait_job(c2, a.job, 120s);
    INFO(job.dump());
    CHECK(job["recovered"] == true);
    CHECK((job["state"] == "succeeded" || job["state"] == "failed" || job["state"] == "cancelled"));
    auto next = take_snapshot(c2, g.name(), {{"mode", "stopped"}, {"name", "after-recovery"}});
    INFO(next.job.dump());
    CHECK(next.job["state"] == "succeeded");
}

TEST_CASE("SIGHUP re-reads the log level from the configuration file", "[signals][logs]") {
    const fs::path dir = make_temp_dir("snapvirt-hup");
    const fs::path cfg = dir / "snapvirtd.toml";
    const fs::path sock = dir / "api.sock";
    auto write_config = [&](const std::string& level) {
        std::ofstream(cfg, std::ios::trunc) << "[log]\nlevel = \"" << level << "\"\n";
    };
    write_config("warn");
    Proc p({Daemon::binary().string(), "--config", cfg.string(), "--state-dir", (dir / "state").string(), "--listen",
            "unix:" + sock.string(), "--libvirt-uri", "test:///default"},
           dir / "stderr.log");
    // At warn nothing is logged on a clean start; the socket answering says it is up.
    const auto unix_client = client::Client(client::Url::parse("unix:" + sock.string()));
    REQUIRE(eventually(
        [&] {
            try {
                return unix_client.get("/readyz").status == 200;
            } catch (const client::TransportError&) {
                return false;
            }
        },
        30s));
    CHECK(p.log().find("starting") == std::string::npos);

    write_config("info");
    p.signal(SIGHUP);
    CHECK(p.wait_log(R"(SIGHUP: log level info)", 10s));

    // Back to warn: the SIGHUP line itself (info) is no longer written ...
    write_config("warn");
    p.signal(SIGHUP);
    std::this_thread::sleep_for(1s);  // nothing to wait for: at warn the reload logs nothing
    // ... but errors are: an invalid file is reported and the running configuration kept.
    std::ofstream(cfg, std::ios::trunc) << "[log]\nlevel = \"loud\"\n";
    p.signal(SIGHUP);
    CHECK(p.wait_log(R"(SIGHUP: the configuration is invalid, keeping the current one: .*log\.level)", 10s));
    CHECK(p.log().find("SIGHUP: log level warn") == std::string::npos);
    CHECK(unix_client.get("/healthz").status == 200);

    p.signal(SIGTERM);
    CHECK(p.wait_exit(20s) == std::optional<int>(0));
    CHECK(p.log().find("Stopped.") == std::string::npos);  // info, below warn
    INFO(p.log());
    std::error_code ec;
    fs::remove_all(dir, ec);
}

TEST_CASE("A token created or revoked while the daemon runs takes effect without a restart", "[signals]") {
    Daemon d({.libvirt_uri = "test:///default"});
    // --state-dir is an option of snapvirtd itself; before the subcommand it works in every version.
    const std::string admin = Daemon::binary().string() + " --state-dir " + d.state_dir().string() + " token ";
    const std::string token = last_line(run(admin + "create --scope read --name ops-reader"));
    REQUIRE(token.size() > 16);
    CHECK(eventually([&] { return d.client(token).get("/v1/instances").status == 200; }, 5s));
    run(admin + "revoke ops-reader");
    CHECK(eventually([&] { return d.client(token).get("/v1/instances").status == 401; }, 5s));
    CHECK(d.client().get("/v1/instances").status == 200);  // the admin token is untouched
}

TEST_CASE("sd_notify: STATUS while starting, READY once listening, WATCHDOG pings, STOPPING on SIGTERM", "[signals][notify]") {
    const fs::path dir = make_temp_dir("snapvirt-notify");
    NotifySocket notify(dir / "notify.sock");
    const fs::path sock = dir / "api.sock";
    Proc p({Daemon::binary().string(), "--state-dir", (dir / "state").string(), "--listen", "unix:" + sock.string(),
            "--libvirt-uri", "test:///default", "--log-level", "info"},
           dir / "stderr.log", {{"NOTIFY_SOCKET", notify.path().string()}, {"WATCHDOG_USEC", "1500000"}});

    std::vector<std::string> before_ready;
    bool ready = false;
    while (!ready) {
        auto m = notify.next(30s);
        INFO(p.log());
        REQUIRE(m);
        if (m->find("READY=1") != std::string::npos) {
            ready = true;
            // Type=notify: by READY the listeners are bound and the API answers.
            CHECK(client::Client(client::Url::parse("unix:" + sock.string())).get("/healthz").status == 200);
        } else {
            before_ready.push_back(*m);
        }
    }
    // Start-up steps in order; the engine may already report the libvirt connection.
    REQUIRE(before_ready.size() >= 2);
    CHECK(before_ready[0] == "STATUS=Opening the catalog");
    CHECK(before_ready[1] == "STATUS=Connecting to libvirt");
    for (const auto& m : before_ready) CHECK(m.rfind("STATUS=", 0) == 0);
    // After READY the status says what it is doing.
    bool serving = false;
    for (int i = 0; i < 10 && !serving; ++i) {
        auto m = notify.next(1000ms);
        if (!m) continue;
        serving = m->rfind("STATUS=Serving the API", 0) == 0;
    }
    if (!serving)
        for (const auto& m : before_ready) serving = serving || m.rfind("STATUS=Serving the API", 0) == 0;
    CHECK(serving);

    // WatchdogSec=1.5 s: pings every 0.5 s from the event loop.
    int pings = 0;
    const auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t0 < 2500ms) {
        auto m = notify.next(1000ms);
        REQUIRE(m);
        if (*m == "WATCHDOG=1") ++pings;
    }
    CHECK(pings >= 3);

    const auto t1 = std::chrono::steady_clock::now();
    p.signal(SIGTERM);
    bool stopping = false;
    for (int i = 0; i < 20 && !stopping; ++i) {
        auto m = notify.next(5s);
        if (!m) break;
        if (m->find("STOPPING=1") != std::string::npos) stopping = true;
    }
    CHECK(stopping);
    CHECK(p.wait_exit(20s) == std::optional<int>(0));
    // No jobs: the stop takes at most one watchdog period (the ping thread's sleep) and a bit.
    CHECK(seconds_since(t1) < 0.5 + 2.0);
    CHECK_FALSE(fs::exists(sock));
    std::error_code ec;
    fs::remove_all(dir, ec);
}
