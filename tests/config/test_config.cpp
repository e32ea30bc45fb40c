#include "config/config.hpp"

#include "tests/support/catch.hpp"

using snapvirt::config::ConfigError;
using snapvirt::config::ListenAddress;
using snapvirt::config::parse_toml;
using snapvirt::config::validate;

namespace {
std::string error_of(const std::string& toml) {
    try {
        validate(parse_toml(toml, "test.toml"));
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}
}  // namespace

TEST_CASE("An empty file gives the documented defaults", "[config]") {
    const auto cfg = parse_toml("", "test.toml");
    REQUIRE(cfg.server.listen.size() == 1);
    CHECK(cfg.server.listen[0].to_string() == "unix:/run/snapvirt/snapvirtd.sock");
    CHECK(cfg.libvirt_uri == "qemu:///system");
    CHECK(cfg.state_dir == "/var/lib/snapvirt");
    CHECK(cfg.snapshots.max_snapshots_per_instance == 10);
    CHECK(cfg.snapshots.shutdown_timeout_s == 120);
    CHECK(cfg.snapshots.external_dir.empty());  // {state dir}/external
    CHECK(cfg.snapshots.external_headroom_mib == 256);
    CHECK(cfg.snapshots.external_writeback_ms == 100);
    CHECK(cfg.server.socket_mode == 0660);
    CHECK_NOTHROW(validate(cfg));
}

TEST_CASE("The commented example config is valid and equals the defaults", "[config]") {
    const auto cfg = snapvirt::config::load_file(SNAPVIRT_SOURCE_DIR "/config/snapvirtd.toml");
    CHECK(cfg.server.io_threads == 2);
    CHECK(cfg.jobs.workers == 4);
    CHECK(cfg.reconcile_interval == std::chrono::seconds(60));
    CHECK_NOTHROW(validate(cfg));
}

TEST_CASE("Settings are read into the typed struct", "[config]") {
    const auto cfg = parse_toml(R"(
[server]
listen = ["127.0.0.1:8080", "[::1]:9000", "unix:/tmp/x.sock"]
socket_mode = "0600"
[libvirt]
uri = "test:///default"
[snapshots]
max_snapshots_per_instance = 0
shutdown_timeout_s = 5
external_dir = "/srv/snapvirt-external"
external_headroom_mib = 64
external_writeback_ms = 0
[log]
level = "debug"
)",
                                "test.toml");
    REQUIRE(cfg.server.listen.size() == 3);
    CHECK(cfg.server.listen[0].host == "127.0.0.1");
    CHECK(cfg.server.listen[0].port == 8080);
    CHECK(cfg.server.listen[1].host == "::1");
    CHECK(cfg.server.listen[1].is_loopback());
    CHECK(cfg.server.listen[2].path == "/tmp/x.sock");
    CHECK(cfg.server.socket_mode == 0600);
    CHECK(cfg.libvirt_uri == "test:///default");
    CHECK(cfg.snapshots.max_snapshots_per_instance == 0);
    CHECK(cfg.snapshots.external_dir == "/srv/snapvirt-external");
    CHECK(cfg.snapshots.external_headroom_mib == 64);
    CHECK(cfg.snapshots.external_writeback_ms == 0);
    CHECK(cfg.log_level == "debug");
}

TEST_CASE("A bad key or value is refused with a message naming it", "[config]") {
    CHECK_THAT(error_of("[server]\nlistn = []\n"), Catch::Contains("unknown setting 'server.listn'"));
    CHECK_THAT(error_of("[sever]\n"), Catch::Contains("unknown section 'sever'"));
    CHECK_THAT(error_of("[jobs]\nworkers = \"four\"\n"), Catch::Contains("'jobs.workers' must be an integer"));
    CHECK_THAT(error_of("[jobs]\nworkers = 0\n"), Catch::Contains("'jobs.workers' must be between 1 and 64"));
    CHECK_THAT(error_of("[snapshots]\nexternal_writeback_ms = -1\n"), Catch::Contains("'snapshots.external_writeback_ms'"));
    CHECK_THAT(error_of("[log]\nlevel = \"loud\"\n"), Catch::Contains("'log.level'"));
    CHECK_THAT(error_of("[server]\nlisten = [\"nonsense\"]\n"), Catch::Contains("server.listen[0]"));
    CHECK_THAT(error_of("[server]\nlisten = [\"127.0.0.1:99999\"]\n"), Catch::Contains("not a port number"));
    CHECK_THAT(error_of("[server]\nsocket_mode = \"rw\"\n"), Catch::Contains("'server.socket_mode'"));
    CHECK_THAT(error_of("[server]\nsocket_group = \"no-such-group-here\"\n"), Catch::Contains("'server.socket_group'"));
    CHECK_THAT(error_of("this is = = not toml"), Catch::Contains("test.toml:1"));
}

TEST_CASE("A non-loopback TCP listener without TLS is refused", "[config]") {
    CHECK_THAT(error_of("[server]\nlisten = [\"0.0.0.0:8443\"]\n"), Catch::Contains("needs TLS"));
    CHECK(error_of("[server]\nlisten = [\"0.0.0.0:8443\"]\ntls_cert = \"/c\"\ntls_key = \"/k\"\n").empty());
    CHECK_THAT(error_of("[server]\ntls_cert = \"/c\"\n"), Catch::Contains("server.tls_key"));
    CHECK_THAT(error_of("[server]\ntls_client_ca = \"/ca\"\n"), Catch::Contains("server.tls_client_ca"));
}

TEST_CASE("Listen addresses parse and print", "[config]") {
    CHECK(ListenAddress::parse("localhost:80").host == "127.0.0.1");
    CHECK(ListenAddress::parse("[::1]:80").to_string() == "[::1]:80");
    CHECK_FALSE(ListenAddress::parse("10.0.0.1:80").is_loopback());
    CHECK_THROWS_AS(ListenAddress::parse("unix:relative"), ConfigError);
    CHECK_THROWS_AS(ListenAddress::parse("example.com:80"), ConfigError);
}
