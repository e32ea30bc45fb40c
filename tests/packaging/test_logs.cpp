// Log output as the journal and log shippers see it: syslog priority prefixes when stderr is
// the journal stream systemd names in $JOURNAL_STREAM, readable text otherwise, JSON lines
// with [log] format = "json".

#include "tests/packaging/proc.hpp"

#include <nlohmann/json.hpp>

using namespace snapvirt;
using namespace snapvirt::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// Starts snapvirtd on a TCP port (so that the first start warns about the admin token it
// writes) and a Unix socket, with the libvirt test driver, then stops it with SIGTERM. Returns
// the lines it wrote to stderr.
std::vector<std::string> run_once(const fs::path& dir, const std::string& config,
                                  const std::function<std::map<std::string, std::string>(const fs::path&)>& env) {
    const fs::path cfg = dir / "snapvirtd.toml";
    std::ofstream(cfg) << config;
    const fs::path log = dir / "stderr.log";
    std::ofstream(log).flush();  // exists before the start, for its dev:ino
    Proc p({Daemon::binary().string(), "--config", cfg.string(), "--state-dir", (dir / "state").string(), "--listen",
            "127.0.0.1:0", "--listen", "unix:" + (dir / "api.sock").string(), "--libvirt-uri", "test:///default"},
           log, env(log));
    INFO(p.log());
    REQUIRE(p.wait_log(R"(Listening on unix:)", 30s));
    p.signal(SIGTERM);
    REQUIRE(p.wait_exit(20s) == std::optional<int>(0));
    return p.lines();
}

}  // namespace

TEST_CASE("Log lines carry syslog priority prefixes when stderr is the journal", "[logs]") {
    const fs::path dir = make_temp_dir("snapvirt-journal");
    const auto lines = run_once(dir, "[log]\nlevel = \"info\"\n",
                                [](const fs::path& log) { return std::map<std::string, std::string>{{"JOURNAL_STREAM", dev_ino(log)}}; });
    REQUIRE(lines.size() >= 4);
    const std::regex prefixed(R"(^<[0-7]>\S)");
    for (const auto& l : lines) {
        INFO(l);
        CHECK(std::regex_search(l, prefixed));
    }
    CHECK(lines.front().rfind("<6>snapvirtd ", 0) == 0);  // info -> 6, no timestamp of its own
    CHECK(std::any_of(lines.begin(), lines.end(),
                      [](const std::string& l) { return l.rfind("<4>Created a write token named 'admin'", 0) == 0; }));
    CHECK(lines.back() == "<6>Stopped.");
    std::error_code ec;
    fs::remove_all(dir, ec);
}

TEST_CASE("Log lines are readable text with timestamps when stderr is not the journal", "[logs]") {
    const fs::path dir = make_temp_dir("snapvirt-text");
    // JOURNAL_STREAM inherited from a parent whose stderr was the journal, but ours is a file.
    const fs::path other = dir / "other";
    std::ofstream(other).flush();
    const auto lines = run_once(dir, "[log]\nlevel = \"info\"\nformat = \"text\"\n", [&](const fs::path&) {
        return std::map<std::string, std::string>{{"JOURNAL_STREAM", dev_ino(other)}};
    });
    REQUIRE(lines.size() >= 4);
    const std::regex text(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (trace|debug|info|warning|error|critical) \S)");
    for (const auto& l : lines) {
        INFO(l);
        CHECK(std::regex_search(l, text));
    }
    CHECK(std::any_of(lines.begin(), lines.end(),
                      [](const std::string& l) { return l.find(" warning Created a write token named 'admin'") != std::string::npos; }));
    std::error_code ec;
    fs::remove_all(dir, ec);
}

TEST_CASE("With log format json every line is one JSON object", "[logs]") {
    const fs::path dir = make_temp_dir("snapvirt-json");
    const auto lines = run_once(dir, "[log]\nlevel = \"info\"\nformat = \"json\"\n",
                                [](const fs::path&) { return std::map<std::string, std::string>{}; });
    REQUIRE(lines.size() >= 4);
    bool warned = false;
    for (const auto& l : lines) {
        INFO(l);
        nlohmann::json j;
        REQUIRE_NOTHROW(j = nlohmann::json::parse(l));
        REQUIRE(j.is_object());
        CHECK(j["ts"].is_string());
        CHECK(j["level"].is_string());
        CHECK(j["msg"].is_string());
        if (j["level"] == "warning" && j["msg"].get<std::string>().find("admin") != std::string::npos) warned = true;
    }
    CHECK(warned);
    CHECK(nlohmann::json::parse(lines.back())["msg"] == "Stopped.");
    std::error_code ec;
    fs::remove_all(dir, ec);
}
