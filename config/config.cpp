#include "config/config.hpp"

#include <arpa/inet.h>
#include <grp.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <toml++/toml.h>

namespace snapvirt::config {

namespace {

[[noreturn]] void fail(const std::string& key, const std::string& problem) {
    throw ConfigError("Setting '" + key + "' " + problem);
}

std::string type_name(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a number";
        case toml::node_type::boolean: return "a boolean";
        case toml::node_type::array: return "an array";
        case toml::node_type::table: return "a table";
        default: return "a date or time";
    }
}

std::int64_t get_int(const toml::node& node, const std::string& key, std::int64_t min, std::int64_t max) {
    auto v = node.value<std::int64_t>();
    if (!node.is_integer() || !v) fail(key, "must be an integer, not " + type_name(node) + ".");
    if (*v < min || *v > max)
        fail(key, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", not " +
                      std::to_string(*v) + ".");
    return *v;
}

std::string get_string(const toml::node& node, const std::string& key) {
    if (!node.is_string()) fail(key, "must be a string, not " + type_name(node) + ".");
    return *node.value<std::string>();
}

// One recognised key of a section: how to apply its value to the struct.
using Setter = std::function<void(Config&, const toml::node&, const std::string& key)>;

const std::map<std::string, std::map<std::string, Setter>>& schema() {
    static const std::map<std::string, std::map<std::string, Setter>> s = {
        {"server",
         {
             {"listen",
              [](Config& c, const toml::node& n, const std::string& key) {
                  const auto* arr = n.as_array();
                  if (!arr) fail(key, "must be an array of strings, not " + type_name(n) + ".");
                  c.server.listen.clear();
                  for (std::size_t i = 0; i < arr->size(); ++i) {
                      const std::string item_key = key + "[" + std::to_string(i) + "]";
                      const std::string text = get_string((*arr)[i], item_key);
                      try {
                          c.server.listen.push_back(ListenAddress::parse(text));
                      } catch (const ConfigError& e) {
                          fail(item_key, e.what());
                      }
                  }
              }},
             {"io_threads",
              [](Config& c, const toml::node& n, const std::string& k) { c.server.io_threads = get_int(n, k, 1, 64); }},
             {"max_connections",
              [](Config& c, const toml::node& n, const std::string& k) {
                  c.server.max_connections = get_int(n, k, 1, 1'000'000);
              }},
             {"max_connections_per_client",
              [](Config& c, const toml::node& n, const std::string& k) {
                  c.server.max_connections_per_client = get_int(n, k, 1, 1'000'000);
              }},
             {"max_unix_connections",
              [](Config& c, const toml::node& n, const std::string& k) {
                  c.server.max_unix_connections = get_int(n, k, 1, 1'000'000);
              }},
             {"handshake_timeout_s",
              [](Config& c, const toml::node& n, const std::string& k) {
                  c.server.handshake_timeout = std::chrono::seconds(get_int(n, k, 1, 3600));
              }},
             {"max_header_bytes",
              [](Config& c, const toml::node& n, const std::string& k) {
                  c.server.max_header_bytes = get_int(n, k, 1024, 1 << 20);
              }},
             {"max_body_bytes",
              [](Config& c, const toml::node& n, const std::string& k) {
                  c.server.max_body_bytes = get_int(n, k, 1024, 16 << 20);
              }},
             {"header_timeout_s",
              [](Config& c, const toml::node& n, const std::string& k) {
                  c.server.header_timeout = std::chrono::seconds(get_int(n, k, 1, 3600));
              }},
             {"request_timeout_s",
              [](Config& c, const toml::node& n, const std::string& k) {
                  c.server.request_timeout = std::chrono::seconds(get_int(n, k, 1, 3600));
              }},
             {"idle_timeout_s",
              [](Config& c, const toml::node& n, const std::string& k) {
                  c.server.idle_timeout = std::chrono::seconds(get_int(n, k, 1, 86400));
              }},
             {"socket_group",
              [](Config& c, const toml::node& n, const std::string& k) { c.server.socket_group = get_string(n, k); }},
             {"socket_mode",
              [](Config& c, const toml::node& n, const std::string& k) {
                  const std::string text = get_string(n, k);
                  unsigned mode = 0;
                  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), mode, 8);
                  if (ec != std::errc() || end != text.data() + text.size() || text.empty() || mode > 0777)
                      fail(k, "must be an octal file mode such as \"0660\", not \"" + text + "\".");
                  c.server.socket_mode = mode;
              }},
             {"tls_cert",
              [](Config& c, const toml::node& n, const std::string& k) { c.server.tls_cert = get_string(n, k); }},
             {"tls_key",
              [](Config& c, const toml::node& n, const std::string& k) { c.server.tls_key = get_string(n, k); }},
             {"tls_client_ca",
              [](Config& c, const toml::node& n, const std::string& k) { c.server.tls_client_ca = get_string(n, k); }},
         }},
        {"libvirt",
         {
             {"uri", [](Config& c, const toml::node& n, const std::string& k) { c.libvirt_uri = get_string(n, k); }},
         }},
        {"state",
         {
             {"dir", [](Config& c, const toml::node& n, const std::string& k) { c.state_dir = get_string(n, k); }},
         }},
        {"snapshots",
         {
             {"max_snapshots_per_instance",
              [](Config& c, const toml::node& n, const std::string& k) {
                  c.snapshots.max_snapshots_per_instance = get_int(n, k, 0, 100'000);
              }},
             {"shutdown_timeout_s",
              [](Config& c, const toml::node& n, const std::string& k) {
                  c.snapshots.shutdown_timeout_s = get_int(n, k, SnapshotConfig::shutdown_timeout_min_s,
                                                           SnapshotConfig::shutdown_timeout_max_s);
              }},
             {"external_dir",
              [](Config& c, const toml::node& n, const std::string& k) { c.snapshots.external_dir = get_string(n, k); }},
             {"external_headroom_mib",
              [](Config& c, const toml::node& n, const std::string& k) {
                  c.snapshots.external_headroom_mib = get_int(n, k, 0, 1'048'576);
              }},
             {"external_writeback_ms",
              [](Config& c, const toml::node& n, const std::string& k) {
                  c.snapshots.external_writeback_ms = get_int(n, k, 0, 60'000);
              }},
         }},
        {"jobs",
         {
             {"workers", [](Config& c, const toml::node& n, const std::string& k) { c.jobs.workers = get_int(n, k, 1, 64); }},
             {"history_days",
              [](Config& c, const toml::node& n, const std::string& k) { c.jobs.history_days = get_int(n, k, 1, 3650); }},
             {"shutdown_grace_s",
              [](Config& c, const toml::node& n, const std::string& k) {
                  c.jobs.shutdown_grace = std::chrono::seconds(get_int(n, k, 0, 3600));
              }},
         }},
        {"schedules",
         {
             {"busy_retry_s",
              [](Config& c, const toml::node& n, const std::string& k) { c.schedules.busy_retry_s = get_int(n, k, 1, 3600); }},
             {"busy_window_s",
              [](Config& c, const toml::node& n, const std::string& k) {
                  c.schedules.busy_window_s = get_int(n, k, 0, 86400);
              }},
             {"catch_up_window_s",
              [](Config& c, const toml::node& n, const std::string& k) {
                  c.schedules.catch_up_window_s = get_int(n, k, 0, 31'536'000);
              }},
             {"max_per_instance",
              [](Config& c, const toml::node& n, const std::string& k) {
                  c.schedules.max_per_instance = get_int(n, k, 1, 1000);
              }},
         }},
        {"reconcile",
         {
             {"interval_s",
              [](Config& c, const toml::node& n, const std::string& k) {
                  c.reconcile_interval = std::chrono::seconds(get_int(n, k, 1, 86400));
              }},
         }},
        {"log",
         {
             {"level",
              [](Config& c, const toml::node& n, const std::string& k) {
                  c.log_level = get_string(n, k);
                  if (!is_log_level(c.log_level))
                      fail(k, "must be one of trace, debug, info, warn, error, critical, off, not \"" + c.log_level +
                                  "\".");
              }},
             {"format",
              [](Config& c, const toml::node& n, const std::string& k) {
                  c.log_format = get_string(n, k);
                  if (c.log_format != "text" && c.log_format != "json")
                      fail(k, "must be \"text\" or \"json\", not \"" + c.log_format + "\".");
              }},
         }},
    };
    return s;
}

bool parse_port(std::string_view text, std::uint16_t& port) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || value > 65535) return false;
    port = static_cast<std::uint16_t>(value);
    return true;
}

}  // namespace

ListenAddress ListenAddress::parse(const std::string& text) {
    ListenAddress a;
    if (text.rfind("unix:", 0) == 0) {
        a.kind = Kind::unix_socket;
        a.path = text.substr(5);
        if (a.path.empty() || a.path.front() != '/')
            throw ConfigError("a Unix socket address must be \"unix:\" and an absolute path, not \"" + text + "\".");
        if (a.path.size() >= 108) throw ConfigError("the Unix socket path \"" + a.path + "\" is too long.");
        return a;
    }
    std::string host;
    std::string port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
            throw ConfigError("\"" + text + "\" is not an address of the form [IPv6]:PORT.");
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string::npos || colon == 0)
            throw ConfigError("\"" + text + "\" is not an address of the form HOST:PORT or unix:/PATH.");
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    if (!parse_port(port, a.port)) throw ConfigError("\"" + port + "\" in \"" + text + "\" is not a port number.");
    if (host == "localhost") host = "127.0.0.1";
    in6_addr buf6{};
    in_addr buf4{};
    if (inet_pton(AF_INET, host.c_str(), &buf4) != 1 && inet_pton(AF_INET6, host.c_str(), &buf6) != 1)
        throw ConfigError("\"" + host + "\" in \"" + text + "\" is not an IP address.");
    a.host = host;
    return a;
}

std::string ListenAddress::to_string() const {
    if (kind == Kind::unix_socket) return "unix:" + path;
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

bool ListenAddress::is_loopback() const {
    if (kind == Kind::unix_socket) return true;
    in_addr a4{};
    if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    in6_addr a6{};
    if (inet_pton(AF_INET6, host.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

bool is_log_level(const std::string& level) {
    static const char* const levels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
    return std::find(std::begin(levels), std::end(levels), level) != std::end(levels);
}

Config parse_toml(const std::string& text, const std::string& origin) {
    toml::table root;
    try {
        root = toml::parse(text, origin);
    } catch (const toml::parse_error& e) {
        std::ostringstream msg;
        msg << origin << ":" << e.source().begin.line << ":" << e.source().begin.column << ": " << e.description();
        throw ConfigError(msg.str());
    }
    Config cfg;
    cfg.server.listen = {ListenAddress::parse(std::string("unix:") + default_socket_path)};
    const auto& sections = schema();
    for (const auto& [section_name, section_node] : root) {
        const std::string section{section_name.str()};
        const auto known = sections.find(section);
        if (known == sections.end())
            throw ConfigError(origin + ": unknown section '" + section + "' (known: server, libvirt, state, "
                                       "snapshots, jobs, schedules, reconcile, log).");
        const auto* table = section_node.as_table();
        if (!table) throw ConfigError(origin + ": '" + section + "' must be a table ([" + section + "]).");
        for (const auto& [key_name, value] : *table) {
            const std::string key = section + "." + std::string(key_name.str());
            const auto setter = known->second.find(std::string(key_name.str()));
            if (setter == known->second.end()) throw ConfigError(origin + ": unknown setting '" + key + "'.");
            try {
                setter->second(cfg, value, key);
            } catch (const ConfigError& e) {
                throw ConfigError(origin + ": " + e.what());
            }
        }
    }
    return cfg;
}

Config load_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ConfigError("Cannot read the configuration file '" + path.string() + "'.");
    std::ostringstream buf;
    buf << in.rdbuf();
    return parse_toml(buf.str(), path.string());
}

void validate(const Config& cfg) {
    if (cfg.server.listen.empty()) fail("server.listen", "must name at least one address.");
    for (const auto& l : cfg.server.listen) {
        if (l.kind != ListenAddress::Kind::tcp || l.is_loopback()) continue;
        if (cfg.server.tls_cert.empty() || cfg.server.tls_key.empty())
            fail("server.listen",
                 "has the non-loopback address " + l.to_string() +
                     ", which needs TLS: set server.tls_cert and server.tls_key, or listen on loopback.");
    }
    if (cfg.server.tls_cert.empty() != cfg.server.tls_key.empty())
        fail(cfg.server.tls_cert.empty() ? "server.tls_cert" : "server.tls_key",
             "must be set together with the other of server.tls_cert and server.tls_key.");
    if (!cfg.server.tls_client_ca.empty() && cfg.server.tls_cert.empty())
        fail("server.tls_client_ca", "needs server.tls_cert and server.tls_key (mutual TLS is TLS).");
    if (!cfg.server.socket_group.empty() && getgrnam(cfg.server.socket_group.c_str()) == nullptr)
        fail("server.socket_group", "names the group \"" + cfg.server.socket_group + "\", which does not exist.");
    if (cfg.libvirt_uri.empty()) fail("libvirt.uri", "must not be empty.");
    if (cfg.state_dir.empty())
        fail("state.dir", "must not be empty.");
    if (!is_log_level(cfg.log_level)) fail("log.level", "must be one of trace, debug, info, warn, error, critical, off.");
}

}  // namespace snapvirt::config
