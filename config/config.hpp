#pragma once
// The daemon's configuration: parsed once at start-up from a TOML file, overridden by flags,
// validated as a whole. Immutable afterwards, so any thread may read it.

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace snapvirt::config {

// Values that are not settings but that several layers state: each written once, here.
inline constexpr std::chrono::hours idempotency_ttl{24};          // how long an Idempotency-Key is remembered
inline constexpr const char* default_socket_path = "/run/snapvirt/snapvirtd.sock";

// Thrown for any invalid setting; the message names the key (`section.key`) and the problem.
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Where the HTTP API listens: a TCP address and port, or a Unix socket path.
struct ListenAddress {
    enum class Kind { tcp, unix_socket };
    Kind kind = Kind::tcp;
    std::string host;      // tcp: an IPv4/IPv6 literal or "localhost"
    std::uint16_t port = 0;
    std::string path;      // unix_socket

    // "127.0.0.1:8080", "[::1]:8080", "unix:/run/snapvirt/snapvirtd.sock"
    static ListenAddress parse(const std::string& text);
    std::string to_string() const;
    bool is_loopback() const;
};

struct ServerConfig {
    std::vector<ListenAddress> listen;
    unsigned io_threads = 2;
    unsigned max_connections = 1024;            // TCP connections at once, all TCP listeners together
    unsigned max_connections_per_client = 256;  // TCP connections at once from one client address
    unsigned max_unix_connections = 128;        // Unix-socket connections: a budget of their own
    std::uint32_t max_header_bytes = 16 * 1024;
    std::uint32_t max_body_bytes = 64 * 1024;
    std::chrono::seconds header_timeout{10};
    std::chrono::seconds handshake_timeout{5};  // TLS handshake, and a new connection's first request headers
    std::chrono::seconds request_timeout{30};   // reading a body, writing a response
    std::chrono::seconds idle_timeout{60};      // keep-alive between requests
    std::string socket_group;                   // group of the Unix socket ("" = the daemon's)
    std::uint32_t socket_mode = 0660;
    // TLS for TCP listeners. A non-loopback TCP listener requires cert and key.
    std::filesystem::path tls_cert;
    std::filesystem::path tls_key;
    std::filesystem::path tls_client_ca;        // set: clients must present a certificate
};

struct SnapshotConfig {
    unsigned max_snapshots_per_instance = 10;   // 0 = unlimited
    unsigned shutdown_timeout_s = 120;          // a stopped snapshot's wait for an ACPI shutdown
    // The range a shutdown timeout may take, in this file and in a create request.
    static constexpr unsigned shutdown_timeout_min_s = 1;
    static constexpr unsigned shutdown_timeout_max_s = 86400;
    // External snapshots' files where they cannot go next to the disk (block devices, a
    // directory snapvirtd may not write): {external_dir}/{instance uuid}/. Empty: {state dir}/external.
    std::string external_dir;
    // Free space an external snapshot needs beyond its memory state: this much per overlay.
    unsigned external_headroom_mib = 256;
    // An external memory snapshot's state file is written back to disk this often while the
    // guest still runs (0: not at all, libvirt flushes it all inside the guest's pause).
    unsigned external_writeback_ms = 100;
};

struct JobConfig {
    unsigned workers = 4;
    unsigned history_days = 30;
    std::chrono::seconds shutdown_grace{30};    // SIGTERM: how long running jobs may finish
};

// Schedules (docs/api.md, "Schedules").
struct ScheduleConfig {
    unsigned busy_retry_s = 10;        // a run that finds its instance busy tries again after this
    unsigned busy_window_s = 600;      // ... until this has passed (at most until the next slot): missed
    unsigned catch_up_window_s = 0;    // after downtime, a missed slot this young runs once; 0 = one period
    unsigned max_per_instance = 32;    // schedules one instance may have
    static constexpr unsigned jitter_max_s = 3600;
    // A run's display name when the schedule gives no template, and the placeholders a template
    // may hold (`{schedule}`...); the API refuses any other.
    static constexpr const char* default_display_name_template = "{schedule} {datetime}";
    static constexpr std::array<const char*, 5> display_name_placeholders{"schedule", "instance", "date", "time",
                                                                          "datetime"};
};

struct Config {
    ServerConfig server;
    std::string libvirt_uri = "qemu:///system";
    std::filesystem::path state_dir = "/var/lib/snapvirt";
    SnapshotConfig snapshots;
    JobConfig jobs;
    ScheduleConfig schedules;
    std::chrono::seconds reconcile_interval{60};
    std::string log_level = "info";
    std::string log_format = "text";            // text | json
};

// Parses a TOML document. `origin` names it in error messages (a path or "<string>").
Config parse_toml(const std::string& text, const std::string& origin);
Config load_file(const std::filesystem::path& path);

// Checks the settings that depend on each other; throws ConfigError naming the key.
void validate(const Config& cfg);

// The accepted log levels, in spdlog's names.
bool is_log_level(const std::string& level);

}  // namespace snapvirt::config
