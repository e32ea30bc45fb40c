// snapvirtd: the host-side VM snapshot daemon. Wires config, catalog, hypervisor, engine and
// HTTP server together, and runs the `token` administration commands.

#include "api/event_hub.hpp"
#include "api/metrics.hpp"
#include "api/json.hpp"
#include "api/routes.hpp"
#include "api/server.hpp"
#include "api/web.hpp"
#include "config/config.hpp"
#include "daemon/catalog.hpp"
#include "daemon/engine.hpp"
#include "daemon/logging.hpp"
#include "daemon/notify.hpp"
#include "daemon/tokens.hpp"
#include "hypervisor/hypervisor.hpp"

#include <CLI/CLI.hpp>
#include <grp.h>
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace {

using namespace snapvirt;

struct Flags {
    std::string config_file;
    std::vector<std::string> listen;
    std::string libvirt_uri;
    std::string state_dir;
    std::string log_level;
};

[[noreturn]] void die(const std::string& message, int code = 1) {
    std::cerr << "snapvirtd: " << message << std::endl;
    std::exit(code);
}

config::Config load_config(const Flags& flags) {
    config::Config cfg;
    std::string file = flags.config_file;
    if (file.empty() && access("/etc/snapvirt/snapvirtd.toml", R_OK) == 0) file = "/etc/snapvirt/snapvirtd.toml";
    if (!file.empty()) cfg = config::load_file(file);
    else cfg.server.listen = {config::ListenAddress::parse(std::string("unix:") + config::default_socket_path)};
    if (!flags.listen.empty()) {
        cfg.server.listen.clear();
        for (const auto& l : flags.listen) {
            try {
                cfg.server.listen.push_back(config::ListenAddress::parse(l));
            } catch (const config::ConfigError& e) {
                throw config::ConfigError(std::string("--listen: ") + e.what());
            }
        }
    }
    if (!flags.libvirt_uri.empty()) cfg.libvirt_uri = flags.libvirt_uri;
    if (!flags.state_dir.empty()) cfg.state_dir = std::filesystem::absolute(flags.state_dir);
    if (!flags.log_level.empty()) {
        if (!config::is_log_level(flags.log_level))
            throw config::ConfigError("--log-level must be one of trace, debug, info, warn, error, critical, off, not '" +
                                      flags.log_level + "'.");
        cfg.log_level = flags.log_level;
    }
    config::validate(cfg);
    return cfg;
}

api::ServerOptions server_options(const config::Config& cfg) {
    api::ServerOptions o;
    for (const auto& l : cfg.server.listen) {
        api::Endpoint ep;
        if (l.kind == config::ListenAddress::Kind::unix_socket) {
            ep.kind = api::Endpoint::Kind::unix_socket;
            ep.path = l.path;
        } else {
            ep.host = l.host;
            ep.port = l.port;
            ep.tls = !cfg.server.tls_cert.empty();
        }
        o.endpoints.push_back(ep);
    }
    o.io_threads = cfg.server.io_threads;
    o.max_connections = cfg.server.max_connections;
    o.max_connections_per_client = cfg.server.max_connections_per_client;
    o.max_unix_connections = cfg.server.max_unix_connections;
    o.handshake_timeout = cfg.server.handshake_timeout;
    o.max_header_bytes = cfg.server.max_header_bytes;
    o.max_body_bytes = cfg.server.max_body_bytes;
    o.header_timeout = cfg.server.header_timeout;
    o.request_timeout = cfg.server.request_timeout;
    o.idle_timeout = cfg.server.idle_timeout;
    o.socket_mode = cfg.server.socket_mode;
    if (!cfg.server.socket_group.empty()) o.socket_gid = getgrnam(cfg.server.socket_group.c_str())->gr_gid;
    o.tls_cert = cfg.server.tls_cert;
    o.tls_key = cfg.server.tls_key;
    o.tls_client_ca = cfg.server.tls_client_ca;
    o.server_name = std::string("snapvirtd/") + SNAPVIRT_VERSION;
    return o;
}

// The soft descriptor limit up to the hard one (1024 by default, below the connection budgets);
// the server sizes its budgets to whatever limit there is.
void raise_descriptor_limit() {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == lim.rlim_max) return;
    const rlim_t was = lim.rlim_cur;
    lim.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &lim) == 0)
        spdlog::debug("Raised the descriptor limit from {} to {}.", was, lim.rlim_max);
    else
        spdlog::debug("Could not raise the descriptor limit from {}: {}.", was, std::strerror(errno));
}

bool has_tcp_listener(const config::Config& cfg) {
    for (const auto& l : cfg.server.listen)
        if (l.kind == config::ListenAddress::Kind::tcp) return true;
    return false;
}

// On the first start with a TCP listener and no token, an admin token is written to a file
// only root can read; its path is logged, never the token.
void ensure_admin_token(daemon::Catalog& catalog, const config::Config& cfg) {
    if (!has_tcp_listener(cfg) || !catalog.tokens().empty()) return;
    const auto path = cfg.state_dir / "admin.token";
    // The file first, then the catalog: a token is never stored that nobody can read. A file
    // left by an earlier failed start is replaced; a symlink there is not followed.
    const std::string token = daemon::generate_token();
    ::unlink(path.c_str());
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) die("Cannot write the admin token to '" + path.string() + "': " + std::strerror(errno) + ".");
    const std::string line = token + "\n";
    const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!written) {
        ::unlink(path.c_str());
        die("Cannot write the admin token to '" + path.string() + "'.");
    }
    try {
        daemon::add_token(catalog, "admin", "write", token);
    } catch (const std::exception& e) {
        ::unlink(path.c_str());
        die(e.what());
    }
    spdlog::warn("Created a write token named 'admin' for the TCP API; it is in {} (readable by root only).", path.string());
}

daemon::EngineOptions engine_options(const config::Config& cfg, daemon::Notifier& notifier) {
    daemon::EngineOptions eopts;
    eopts.workers = cfg.jobs.workers;
    eopts.max_snapshots_per_instance = cfg.snapshots.max_snapshots_per_instance;
    eopts.shutdown_timeout_s = cfg.snapshots.shutdown_timeout_s;
    eopts.external_dir = cfg.snapshots.external_dir.empty() ? (cfg.state_dir / "external").string()
                                                            : cfg.snapshots.external_dir;
    eopts.external_headroom_mib = cfg.snapshots.external_headroom_mib;
    eopts.external_writeback_ms = cfg.snapshots.external_writeback_ms;
    eopts.reconcile_interval = cfg.reconcile_interval;
    eopts.history_days = cfg.jobs.history_days;
    eopts.schedules = cfg.schedules;
    eopts.test_delays = daemon::parse_test_delays(std::getenv("SNAPVIRT_TEST_DELAYS"));
    eopts.status = [&notifier](const std::string& line) { notifier.status(line); };
    return eopts;
}

sigset_t block_signals() {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    return signals;
}

// Serves SIGHUP (log level, reconciliation) until SIGTERM or SIGINT.
void wait_for_stop(const sigset_t& signals, const Flags& flags, daemon::Engine& engine) {
    for (;;) {
        int sig = 0;
        sigwait(&signals, &sig);
        if (sig != SIGHUP) return;
        try {
            const auto fresh = load_config(flags);
            daemon::set_log_level(fresh.log_level);
            spdlog::info("SIGHUP: log level {}; tokens are re-read on change; reconciling.", fresh.log_level);
        } catch (const config::ConfigError& e) {
            spdlog::error("SIGHUP: the configuration is invalid, keeping the current one: {}", e.what());
        }
        engine.request_reconcile();
    }
}

int run_daemon(const Flags& flags) {
    config::Config cfg;
    try {
        cfg = load_config(flags);
    } catch (const config::ConfigError& e) {
        die(e.what(), 2);
    }
    daemon::setup_logging(cfg.log_level, cfg.log_format == "json" ? daemon::LogFormat::json : daemon::LogFormat::text);
    raise_descriptor_limit();

    // Signals are taken by sigwait() below; every thread started from here on inherits the mask.
    const sigset_t signals = block_signals();

    spdlog::info("snapvirtd {} starting; state in {}, libvirt at {}.", SNAPVIRT_VERSION, cfg.state_dir.string(),
                 cfg.libvirt_uri);
    daemon::Notifier notifier;
    notifier.status("Opening the catalog");
    std::unique_ptr<daemon::Catalog> catalog;
    try {
        catalog = std::make_unique<daemon::Catalog>(cfg.state_dir);
    } catch (const std::exception& e) {
        die(e.what());
    }
    ensure_admin_token(*catalog, cfg);

    notifier.status("Connecting to libvirt");
    hv::LibvirtOptions hv_opts;
    hv_opts.uri = cfg.libvirt_uri;
    auto hypervisor = hv::make_libvirt_hypervisor(hv_opts);

    api::EventHub hub;
    api::Metrics metrics;
    daemon::Engine engine(engine_options(cfg, notifier), *catalog, *hypervisor, hub);
    engine.start();
    metrics.add_collector([&engine](std::string& out) { engine.collect_metrics(out); });
    metrics.add_collector([&hub](std::string& out) {
        out += "# HELP snapvirt_event_subscribers Event-stream consumers connected now.\n";
        out += "# TYPE snapvirt_event_subscribers gauge\n";
        out += "snapvirt_event_subscribers " + std::to_string(hub.subscriber_count()) + "\n";
    });

    api::Router router;
    api::RouteOptions ropts;
    ropts.version = SNAPVIRT_VERSION;
    ropts.metrics = [&metrics] { return metrics.render(); };
    ropts.openapi_json = api::openapi_document();
    ropts.web = api::serve_web;
    api::add_routes(router, engine, ropts);

    api::Server server(server_options(cfg), router, engine, hub, metrics);
    try {
        server.start();
    } catch (const std::exception& e) {
        engine.stop(std::chrono::seconds(0));
        die(e.what());
    }
    for (const auto& ep : server.endpoints()) spdlog::info("Listening on {}.", ep);
    notifier.send("READY=1");
    notifier.set_loop([&server](std::function<void()> fn) { server.post(std::move(fn)); });
    engine.report_status();

    wait_for_stop(signals, flags, engine);
    spdlog::info("Stopping: no new connections; waiting up to {} s for running jobs.", cfg.jobs.shutdown_grace.count());
    notifier.send("STOPPING=1");
    notifier.status("Stopping: waiting for running jobs");
    server.stop_accepting();
    engine.stop(cfg.jobs.shutdown_grace);
    notifier.stop(std::chrono::milliseconds(500));
    server.stop();
    spdlog::info("Stopped.");
    spdlog::shutdown();
    // Threads blocked in libvirt calls (jobs past the grace period) must not delay the exit;
    // recovery at the next start finishes their jobs.
    std::_Exit(0);
}

std::filesystem::path state_dir_for(const Flags& flags) {
    if (!flags.state_dir.empty()) return flags.state_dir;
    try {
        Flags f = flags;
        f.listen = {std::string("unix:") + config::default_socket_path};
        return load_config(f).state_dir;
    } catch (const config::ConfigError& e) {
        die(e.what(), 2);
    }
}

}  // namespace

int main(int argc, char** argv) {
    // A daemon with a few busy threads does not need glibc's arena per thread (RSS).
    mallopt(M_ARENA_MAX, 2);
    CLI::App app{"snapvirtd — host-side VM snapshot engine for libvirt.\n"
                 "Serves the snapvirt HTTP API; see /openapi.json and the README."};
    app.set_version_flag("--version", std::string("snapvirtd ") + SNAPVIRT_VERSION);
    Flags flags;
    app.add_option("--config", flags.config_file, "TOML configuration file (default /etc/snapvirt/snapvirtd.toml if present)")
        ->check(CLI::ExistingFile);
    app.add_option("--listen", flags.listen, "Listen on ADDR:PORT or unix:/PATH (repeatable; replaces server.listen)");
    app.add_option("--libvirt-uri", flags.libvirt_uri, "libvirt connection URI (default qemu:///system)");
    app.add_option("--state-dir", flags.state_dir, "Directory for the catalog and tokens (default /var/lib/snapvirt)");
    app.add_option("--log-level", flags.log_level, "trace, debug, info, warn, error, critical or off");

    auto* token = app.add_subcommand("token", "Manage API bearer tokens (works while the daemon runs)");
    token->require_subcommand(1);
    std::string scope, name;
    auto* create = token->add_subcommand("create", "Create a token and print it once (alone on the last line)");
    create->add_option("--scope", scope, "read or write")->required()->check(CLI::IsMember({"read", "write"}));
    create->add_option("--name", name, "A unique name for the token")->required();
    auto* list = token->add_subcommand("list", "List tokens (names and scopes, never the secrets)");
    auto* revoke = token->add_subcommand("revoke", "Revoke a token by name");
    revoke->add_option("name", name, "The token's name")->required();
    // --state-dir and --config may also follow the subcommand: `token create ... --state-dir DIR`.
    for (auto* sub : {token, create, list, revoke}) sub->fallthrough();

    try {
        app.parse(argc, argv);
    } catch (const CLI::Success& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::cerr << "snapvirtd: " << e.what() << " (see snapvirtd --help)" << std::endl;
        return 2;
    }

    if (!token->parsed()) return run_daemon(flags);

    try {
        daemon::Catalog catalog(state_dir_for(flags));
        if (create->parsed()) {
            const std::string secret = daemon::create_token(catalog, name, scope);
            std::cout << "Created " << scope << " token '" << name << "'. It is shown only now; keep it secret:\n"
                      << secret << std::endl;
        } else if (list->parsed()) {
            for (const auto& t : catalog.tokens())
                std::cout << t.name << "\t" << t.scope << "\t" << api::format_time(t.created_at) << "\n";
        } else if (revoke->parsed()) {
            if (!catalog.revoke_token(name)) die("There is no token named '" + name + "'.");
            std::cout << "Revoked token '" << name << "'." << std::endl;
        }
    } catch (const std::exception& e) {
        die(e.what());
    }
    return 0;
}
