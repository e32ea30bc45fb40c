#pragma once
#include <mutex>
#include <deque>
#include <condition_variable>
#include <atomic>
// A snapvirtd (or any program) run by hand, for the cases snapvirt::test::Daemon does not cover:
// a chosen environment (JOURNAL_STREAM, NOTIFY_SOCKET, WATCHDOG_USEC), no --log-level flag, a
// wrapper such as strace. stdout and stderr go to one file; the process is killed in the
// destructor if it still runs.

#include "tests/support/daemon.hpp"

#include "tests/support/catch.hpp"

#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace snapvirt::test {

class Proc {
public:
    Proc(std::vector<std::string> args, std::filesystem::path log, std::map<std::string, std::string> env = {},
         std::vector<std::string> unset = {"JOURNAL_STREAM", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                                           "SNAPVIRT_TEST_DELAYS"})
        : log_(std::move(log)) {
        // Created before fork so that tests can stat() it for JOURNAL_STREAM.
        const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) throw std::runtime_error("cannot open " + log_.string());
        pid_ = ::fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            ::dup2(fd, STDOUT_FILENO);
            ::dup2(fd, STDERR_FILENO);
            for (const auto& u : unset) ::unsetenv(u.c_str());
            for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execvp(argv[0], argv.data());
            _exit(127);
        }
        ::close(fd);
    }
    ~Proc() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int st = 0;
            ::waitpid(pid_, &st, 0);
        }
    }
    Proc(const Proc&) = delete;
    Proc& operator=(const Proc&) = delete;

    pid_t pid() const { return pid_; }
    void signal(int sig) const { ::kill(pid_, sig); }

    std::string log() const {
        std::ifstream in(log_);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }
    std::vector<std::string> lines() const {
        std::vector<std::string> out;
        std::istringstream in(log());
        for (std::string l; std::getline(in, l);) out.push_back(l);
        return out;
    }
    // Waits until the log matches `re`; returns the match and its groups (nullopt on timeout or
    // when the process ended without it).
    std::optional<std::vector<std::string>> wait_log(const std::string& re, std::chrono::milliseconds timeout) const {
        const std::regex rx(re);
        std::optional<std::vector<std::string>> found;
        eventually(
            [&] {
                const std::string text = log();
                std::smatch m;
                if (std::regex_search(text, m, rx)) {
                    found.emplace(m.begin(), m.end());
                    return true;
                }
                return !running_unreaped();
            },
            timeout, std::chrono::milliseconds(20));
        return found;
    }
    // Waits for the exit; returns the exit status (128+signal if killed), nullopt on timeout.
    std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
        if (exit_) return exit_;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            int st = 0;
            const pid_t r = ::waitpid(pid_, &st, WNOHANG);
            if (r == pid_) {
                pid_ = -1;
                exit_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                return exit_;
            }
            if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }

private:
    bool running_unreaped() const {
        if (pid_ <= 0) return false;
        siginfo_t info{};
        return ::waitid(P_PID, pid_, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == 0;
    }

    std::filesystem::path log_;
    pid_t pid_ = -1;
    std::optional<int> exit_;
};

// "DEV:INO" of a file, as systemd puts it in $JOURNAL_STREAM for the stream it connects.
inline std::string dev_ino(const std::filesystem::path& p) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) throw std::runtime_error("stat " + p.string());
    return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

// A datagram socket standing in for systemd's $NOTIFY_SOCKET.
// A stand-in for systemd's notification socket. Like systemd it reads all the time (a thread
// drains it into a queue), so a sender never finds it full (the kernel holds only
// net.unix.max_dgram_qlen = 10 datagrams for a reader that does not read).
class NotifySocket {
public:
    explicit NotifySocket(std::filesystem::path path) : path_(std::move(path)) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path_.c_str());
        if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
            throw std::runtime_error("cannot bind " + path_.string());
        timeval tv{0, 100 * 1000};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        reader_ = std::thread([this] {
            char buf[4096];
            while (!stop_) {
                const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
                if (n < 0) continue;
                std::lock_guard lock(mu_);
                queue_.emplace_back(buf, static_cast<std::size_t>(n));
                cv_.notify_all();
            }
        });
    }
    ~NotifySocket() {
        stop_ = true;
        reader_.join();
        ::close(fd_);
        ::unlink(path_.c_str());
    }
    const std::filesystem::path& path() const { return path_; }
    // The next message, or nullopt after `timeout`.
    std::optional<std::string> next(std::chrono::milliseconds timeout) {
        std::unique_lock lock(mu_);
        if (!cv_.wait_for(lock, timeout, [&] { return !queue_.empty(); })) return std::nullopt;
        std::string m = std::move(queue_.front());
        queue_.pop_front();
        return m;
    }

private:
    std::filesystem::path path_;
    int fd_ = -1;
    std::atomic<bool> stop_{false};
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::string> queue_;
    std::thread reader_;
};

}  // namespace snapvirt::test
