#pragma once
// Runs the built snapvirtd as a child process for end-to-end tests: its own state directory,
// a TCP port chosen by the kernel, its log in the state directory. Stopped (SIGTERM, then
// SIGKILL) when the object goes away, also when a test fails.

#include "cli/client.hpp"
#include "tests/support/libvirtd.hpp"

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <sys/types.h>
#include <vector>

namespace snapvirt::test {

struct DaemonOptions {
    std::vector<std::string> extra_args;             // e.g. {"--config", path}
    std::map<std::string, std::string> env;          // e.g. SNAPVIRT_TEST_DELAYS
    std::string config;                              // TOML written to <state>/snapvirtd.toml and passed with --config
    bool tcp = true;                                 // listen on 127.0.0.1:0
    bool unix_socket = true;                         // listen on <state>/snapvirtd.sock
    bool wait_ready = true;                          // wait until /readyz answers 200
    std::string libvirt_uri = test::libvirt_uri();     // the lane's libvirt (SNAPVIRT_TEST_LIBVIRT_URI)
};

class Daemon {
public:
    explicit Daemon(DaemonOptions options = {}, std::filesystem::path state_dir = {});
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    void start();
    // Options for the next start() (e.g. to drop test delays before a restart).
    DaemonOptions& options() { return opts_; }
    // SIGTERM and wait for exit; returns the exit status.
    int stop(std::chrono::seconds timeout = std::chrono::seconds(60));
    // SIGKILL, as a crash.
    void kill();
    void restart() {
        stop();
        start();
    }
    bool running() const;

    client::Client client() const;                 // TCP with the admin token
    client::Client client(const std::string& token) const;
    client::Client unix_client() const;            // the Unix socket, no token
    client::Url url() const { return url_; }
    const std::string& token() const { return token_; }
    const std::filesystem::path& state_dir() const { return state_dir_; }
    std::filesystem::path socket_path() const { return state_dir_ / "snapvirtd.sock"; }
    std::string log() const;
    pid_t pid() const { return pid_; }

    static std::filesystem::path binary();

private:
    DaemonOptions opts_;
    std::filesystem::path state_dir_;
    bool owns_dir_ = false;
    pid_t pid_ = -1;
    client::Url url_;
    std::string token_;
    std::size_t log_offset_ = 0;
};

// Waits for a job to end (long-polling) and returns it.
nlohmann::json wait_job(const client::Client& c, const std::string& job_id,
                        std::chrono::seconds timeout = std::chrono::seconds(120));
// Polls `fn` until it returns true or `timeout` passes.
bool eventually(const std::function<bool()>& fn, std::chrono::milliseconds timeout,
                std::chrono::milliseconds every = std::chrono::milliseconds(100));

std::filesystem::path make_temp_dir(const std::string& prefix);

}  // namespace snapvirt::test
