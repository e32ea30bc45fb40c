#include "tests/support/daemon.hpp"

#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#ifndef SNAPVIRT_DAEMON_PATH
#error "SNAPVIRT_DAEMON_PATH must name the built snapvirtd"
#endif

namespace snapvirt::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

fs::path make_temp_dir(const std::string& prefix) {
    std::string tmpl = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    return tmpl;
}

fs::path Daemon::binary() { return SNAPVIRT_DAEMON_PATH; }

Daemon::Daemon(DaemonOptions options, fs::path state_dir) : opts_(std::move(options)), state_dir_(std::move(state_dir)) {
    if (state_dir_.empty()) {
        state_dir_ = make_temp_dir("snapvirt-e2e");
        owns_dir_ = true;
    }
    start();
}

Daemon::~Daemon() {
    if (running()) {
        try {
            stop(20s);
        } catch (...) {
        }
        if (running()) kill();
    }
    if (owns_dir_) {
        std::error_code ec;
        if (std::getenv("SNAPVIRT_KEEP_TEST_STATE") == nullptr) fs::remove_all(state_dir_, ec);
    }
}

bool Daemon::running() const {
    if (pid_ <= 0) return false;
    int status = 0;
    return ::waitpid(pid_, &status, WNOHANG) == 0;
}

void Daemon::start() {
    fs::create_directories(state_dir_);
    std::vector<std::string> args = {binary().string(), "--state-dir", state_dir_.string(), "--libvirt-uri",
                                     opts_.libvirt_uri, "--log-level", "debug"};
    if (opts_.tcp) args.insert(args.end(), {"--listen", "127.0.0.1:0"});
    if (opts_.unix_socket) args.insert(args.end(), {"--listen", "unix:" + socket_path().string()});
    if (!opts_.config.empty()) {
        const fs::path cfg = state_dir_ / "snapvirtd.toml";
        std::ofstream(cfg) << opts_.config;
        args.insert(args.end(), {"--config", cfg.string()});
    }
    args.insert(args.end(), opts_.extra_args.begin(), opts_.extra_args.end());

    const fs::path log_path = state_dir_ / "daemon.log";
    {
        std::ifstream in(log_path, std::ios::ate);
        log_offset_ = in ? static_cast<std::size_t>(in.tellg()) : 0;
    }
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        ::dup2(fd, STDOUT_FILENO);
        ::dup2(fd, STDERR_FILENO);
        ::unsetenv("JOURNAL_STREAM");
        for (const auto& [k, v] : opts_.env) ::setenv(k.c_str(), v.c_str(), 1);
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execv(argv[0], argv.data());
        _exit(127);
    }

    // The daemon logs "Listening on http://127.0.0.1:PORT." once its listeners are bound.
    const std::regex listening(R"(Listening on (https?)://127\.0\.0\.1:(\d+)\.)");
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    bool bound = false;
    while (std::chrono::steady_clock::now() < deadline) {
        if (!running()) throw std::runtime_error("snapvirtd exited during start-up:\n" + log());
        std::smatch m;
        const std::string text = log();
        if (std::regex_search(text, m, listening)) {
            url_ = client::Url::parse(m[1].str() + "://127.0.0.1:" + m[2].str());
            bound = true;
        }
        if (!opts_.tcp && text.find("Listening on unix:") != std::string::npos) bound = true;
        if (bound) break;
        std::this_thread::sleep_for(20ms);
    }
    if (!bound) throw std::runtime_error("snapvirtd did not start listening:\n" + log());
    std::ifstream tok(state_dir_ / "admin.token");
    std::getline(tok, token_);
    if (opts_.wait_ready) {
        const bool ready = eventually(
            [&] {
                try {
                    return (opts_.tcp ? client() : unix_client()).get("/readyz").status == 200;
                } catch (const client::TransportError&) {
                    return false;
                }
            },
            30s);
        if (!ready) throw std::runtime_error("snapvirtd did not become ready:\n" + log());
    }
}

int Daemon::stop(std::chrono::seconds timeout) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline) {
        const pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
            pid_ = -1;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        std::this_thread::sleep_for(20ms);
    }
    kill();
    return -1;
}

void Daemon::kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
}

client::Client Daemon::client() const { return client::Client(url_, token_); }
client::Client Daemon::client(const std::string& token) const { return client::Client(url_, token); }
client::Client Daemon::unix_client() const { return client::Client(client::Url::parse("unix:" + socket_path().string())); }

std::string Daemon::log() const {
    std::ifstream in(state_dir_ / "daemon.log");
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string all = ss.str();
    return all.size() >= log_offset_ ? all.substr(log_offset_) : all;
}

nlohmann::json wait_job(const client::Client& c, const std::string& job_id, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto r = c.get("/v1/jobs/" + job_id + "?wait=20");
        if (r.status != 200) throw std::runtime_error("GET job answered " + std::to_string(r.status) + ": " + r.body);
        auto j = r.json();
        const std::string state = j["state"];
        if (state == "succeeded" || state == "failed" || state == "cancelled") return j;
        if (std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error("Job " + job_id + " did not end in time: " + j.dump());
    }
}

bool eventually(const std::function<bool()>& fn, std::chrono::milliseconds timeout, std::chrono::milliseconds every) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (fn()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(every);
    }
}

}  // namespace snapvirt::test
